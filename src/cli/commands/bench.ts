// `coffer bench ingest|metadata|files|net|gateway|backup|s3|all`: benchmarks that print figures and ratios measured in one run
// (docs/benchmarks.md). Never used as pass/fail tests.
import { Option, type Command } from 'commander';
import { benchFiles } from '../../../bench/files.js';
import { benchBackup } from '../../../bench/backup.js';
import { benchIngest } from '../../../bench/ingest.js';
import { benchMetadata } from '../../../bench/metadata.js';
import { benchNet } from '../../../bench/net.js';
import { parseSize } from '../../../bench/measure.js';
import { intFlag, jsonOption, mongoUriOption } from '../options.js';

interface IngestFlags {
  size: string;
  rounds: string;
  dir?: string;
  keep?: boolean;
  json?: boolean;
}

interface MetaFlags {
  mongodbUri?: string;
  mongoWire?: boolean;
  entries: string;
  creates: string;
  json?: boolean;
}

export function register(program: Command): void {
  const bench = program.command('bench').description('measure throughput, latency and memory (one run, ratios to a baseline)');
  const ingestOpts = (c: Command): Command =>
    c
      .option('--size <size>', 'file size (e.g. 1GiB, 256MiB)', '1GiB')
      .option('--dir <dir>', 'scratch directory on the disk to measure (default: the system temp dir)')
      .option('--rounds <n>', 'rounds of the download measurements (medians and ranges are reported)', '3')
      .option('--keep', 'keep the scratch files');
  const metaOpts = (c: Command): Command =>
    c
      .addOption(mongoUriOption())
      .option('--mongo-wire', 'also run on the MongoDB-wire test server (FerretDB harness) when no URI is given')
      .option('--entries <n>', 'entries in the big directory', '100000')
      .option('--creates <n>', 'file creates', '10000');

  ingestOpts(bench.command('ingest').description('upload/download throughput vs plain fsynced writes, peak RSS, restic'))
    .addOption(jsonOption())
    .action(async (opts: IngestFlags) => {
      const log = opts.json ? () => undefined : undefined;
      const r = await benchIngest({ size: parseSize(opts.size), rounds: intFlag('--rounds', opts.rounds, 1, 20), dir: opts.dir, keep: opts.keep, log });
      if (opts.json) process.stdout.write(`${JSON.stringify(r)}\n`);
    });

  bench.command('backup').description('backup create/verify/restore vs cp -r + sync, SHA-256 speed and restic; incremental over many files')
    .option('--size <size>', 'size of the big file in the vault (e.g. 2GiB)', '2GiB')
    .option('--files <n>', 'small files in the vault (the incremental run walks them all)', '10000')
    .option('--dir <dir>', 'scratch directory on the disk to measure (default: the system temp dir)')
    .addOption(new Option('--small-files <layout>', 'how the vault holds the small files: packs (as put -r stores them) or files (one chunk file each, as before packs)').choices(['packs', 'files']).default('packs'))
    .option('--keep', 'keep the scratch files')
    .option('--rounds <n>', 'rounds of create against cp -r + sync, the order swapped each round (ratio: their median)', '1')
    .addOption(jsonOption())
    .action(async (opts: { size: string; files: string; smallFiles: 'packs' | 'files'; dir?: string; keep?: boolean; rounds: string; json?: boolean }) => {
      const log = opts.json ? () => undefined : undefined;
      const r = await benchBackup({ size: parseSize(opts.size), files: intFlag('--files', opts.files, 0, 10_000_000), smallFiles: opts.smallFiles, dir: opts.dir, keep: opts.keep, rounds: intFlag('--rounds', opts.rounds, 1, 20), log });
      if (opts.json) process.stdout.write(`${JSON.stringify(r)}\n`);
    });

  metaOpts(bench.command('metadata').description('creates/s, listing a big directory, stat p50/p99 on SQLite and MongoDB'))
    .addOption(jsonOption())
    .action(async (opts: MetaFlags) => {
      const log = opts.json ? () => undefined : undefined;
      const r = await benchMetadata({ mongoUri: opts.mongodbUri ?? null, mongoWire: opts.mongoWire === true, listEntries: intFlag('--entries', opts.entries, 1, 10_000_000), creates: intFlag('--creates', opts.creates, 1, 10_000_000), log });
      if (opts.json) process.stdout.write(`${JSON.stringify(r)}\n`);
    });

  bench
    .command('net')
    .description('network flow compiler: 1,000 ports / 10 networks / 20 hosts, one-rule change, 100 vs 10,000 ports')
    .option('--ports <n>', 'ports in the main run', '1000')
    .option('--rounds <n>', 'rounds per compile figure (the median is reported)', '5')
    .addOption(jsonOption())
    .action(async (opts: { ports: string; rounds: string; json?: boolean }) => {
      const log = opts.json ? () => undefined : undefined;
      const r = await benchNet({ ports: intFlag('--ports', opts.ports, 1, 100_000), rounds: intFlag('--rounds', opts.rounds, 1, 50), log });
      if (opts.json) process.stdout.write(`${JSON.stringify(r)}\n`);
    });

  bench.command('gateway')
    .description('the enclave gateway (pinned curl up/down) vs coffer put/get in one run, and concurrent clients')
    .option('--size <size>', 'file size (e.g. 1GiB, 256MiB)', '1GiB')
    .option('--clients <n>', 'concurrent clients', '16')
    .option('--rounds <n>', 'interleaved rounds of the four transfers (medians reported)', '1')
    .option('--compare-size <size>', 'run everything again at this size with a fresh coffer dev and print peak RSS of both (e.g. 256MiB)')
    .option('--dir <dir>', 'scratch directory (default: the system temp dir)')
    .option('--keep', 'keep the scratch files')
    .addOption(jsonOption())
    .action(async (opts: { size: string; clients: string; rounds: string; compareSize?: string; dir?: string; keep?: boolean; json?: boolean }) => {
      const { benchGateway } = await import('../../../bench/gateway.js');
      const log = opts.json ? () => undefined : undefined;
      const r = await benchGateway({
        size: parseSize(opts.size), clients: intFlag('--clients', opts.clients, 1, 256), rounds: intFlag('--rounds', opts.rounds, 1, 20),
        ...(opts.compareSize ? { compareSize: parseSize(opts.compareSize) } : {}), dir: opts.dir, keep: opts.keep, log,
      });
      if (opts.json) process.stdout.write(`${JSON.stringify(r)}\n`);
    });

  bench
    .command('files')
    .description('many small files: put -r / get -r against restic backup / restore (cold and warm page cache) on the same tree and disk, re-runs, peak RSS')
    .option('--files <n>', 'files in the tree (0: the large file alone)', '10000')
    .option('--file-size <size>', 'size of each file', '16KiB')
    .option('--rounds <n>', 'interleaved rounds (medians and ranges are reported)', '3')
    .option('--concurrency <n>', 'files in flight for put -r / get -r (default: the CLI\'s)')
    .option('--large-size <size>', 'then a large file: coffer put/get against restic backup and age (0 skips)', '512MiB')
    .option('--no-restic', 'leave restic out (e.g. --files 100000: coffer alone, its memory, listing and re-run times)')
    .option('--no-fsync-too', 'time get -r in its default mode only (not also get -r --fsync, the durable mode)')
    .option('--no-warm', 'cold runs only: not also restic restore and get -r again with their stores in the page cache')
    .option('--dir <dir>', 'scratch directory on the disk to measure (default: the system temp dir)')
    .option('--keep', 'keep the scratch files')
    .addOption(jsonOption())
    .action(async (opts: { files: string; fileSize: string; rounds: string; concurrency?: string; largeSize: string; restic: boolean; fsyncToo: boolean; warm: boolean; dir?: string; keep?: boolean; json?: boolean }) => {
      const log = opts.json ? () => undefined : undefined;
      const r = await benchFiles({
        files: intFlag('--files', opts.files, 0, 10_000_000), fileSize: parseSize(opts.fileSize), rounds: intFlag('--rounds', opts.rounds, 1, 20),
        concurrency: opts.concurrency === undefined ? undefined : intFlag('--concurrency', opts.concurrency, 1, 256), largeSize: parseSize(opts.largeSize),
        dir: opts.dir, keep: opts.keep, restic: opts.restic, fsyncToo: opts.fsyncToo, warm: opts.warm, log,
      });
      if (opts.json) process.stdout.write(`${JSON.stringify(r)}\n`);
    });

  bench.command('s3').description('aws s3 cp and rclone up/down through the S3 endpoint vs the same clients on moto (in the same run)')
    .option('--size <size>', 'file size (e.g. 1GiB, 256MiB)', '1GiB')
    .option('--rounds <n>', 'interleaved rounds of every transfer (medians and ranges are reported)', '1')
    .option('--clients <list>', 'comma-separated: aws,rclone', 'aws,rclone')
    .option('--concurrent <n>', 'instead: N concurrent aws s3 cp uploads of --size each, every object read back and SHA-256 checked')
    .option('--stall-seconds <n>', 'kill a client command still running after this long, drop its round and end the run (default: 300, or the time at 2 MB/s if longer)')
    .addOption(jsonOption())
    .action(async (opts: { size: string; clients: string; rounds: string; concurrent?: string; stallSeconds?: string; json?: boolean }) => {
      if (opts.concurrent !== undefined) {
        const { benchS3Concurrent } = await import('../../../bench/s3-concurrent.js');
        const r = await benchS3Concurrent({ concurrent: intFlag('--concurrent', opts.concurrent, 1, 256), size: parseSize(opts.size), ...(opts.json ? { log: () => undefined } : {}) });
        if (opts.json) process.stdout.write(`${JSON.stringify(r)}\n`);
        if (r.uploadErrors + r.downloadErrors + r.digestMismatches > 0) process.exitCode = 1;
        return;
      }
      const clients = opts.clients.split(',').map((c) => c.trim()) as Array<'aws' | 'rclone'>;
      const { benchS3 } = await import('../../../bench/s3.js');
      const r = await benchS3({
        size: parseSize(opts.size), clients, rounds: intFlag('--rounds', opts.rounds, 1, 20),
        ...(opts.stallSeconds === undefined ? {} : { stallSeconds: intFlag('--stall-seconds', opts.stallSeconds, 1, 86_400) }),
        ...(opts.json ? { log: () => undefined } : {}),
      });
      if (opts.json) process.stdout.write(`${JSON.stringify(r)}\n`);
    });

  metaOpts(ingestOpts(bench.command('all').description('every benchmark')))
    .action(async (opts: IngestFlags & MetaFlags) => {
      await benchIngest({ size: parseSize(opts.size), rounds: intFlag('--rounds', opts.rounds, 1, 20), dir: opts.dir, keep: opts.keep });
      await benchMetadata({ mongoUri: opts.mongodbUri ?? null, mongoWire: opts.mongoWire === true, listEntries: intFlag('--entries', opts.entries, 1, 10_000_000), creates: intFlag('--creates', opts.creates, 1, 10_000_000) });
    });
}
