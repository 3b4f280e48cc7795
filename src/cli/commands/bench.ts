// `coffer bench ingest|metadata|all`: benchmarks that print figures and ratios measured in one run
// (docs/benchmarks.md). Never used as pass/fail tests.
import type { Command } from 'commander';
import { benchIngest } from '../../../bench/ingest.js';
import { benchMetadata } from '../../../bench/metadata.js';
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

  metaOpts(bench.command('metadata').description('creates/s, listing a big directory, stat p50/p99 on SQLite and MongoDB'))
    .addOption(jsonOption())
    .action(async (opts: MetaFlags) => {
      const log = opts.json ? () => undefined : undefined;
      const r = await benchMetadata({ mongoUri: opts.mongodbUri ?? null, mongoWire: opts.mongoWire === true, listEntries: intFlag('--entries', opts.entries, 1, 10_000_000), creates: intFlag('--creates', opts.creates, 1, 10_000_000), log });
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

  metaOpts(ingestOpts(bench.command('all').description('every benchmark')))
    .action(async (opts: IngestFlags & MetaFlags) => {
      await benchIngest({ size: parseSize(opts.size), rounds: intFlag('--rounds', opts.rounds, 1, 20), dir: opts.dir, keep: opts.keep });
      await benchMetadata({ mongoUri: opts.mongodbUri ?? null, mongoWire: opts.mongoWire === true, listEntries: intFlag('--entries', opts.entries, 1, 10_000_000), creates: intFlag('--creates', opts.creates, 1, 10_000_000) });
    });
}
