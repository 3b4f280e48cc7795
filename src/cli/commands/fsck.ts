// `coffer fsck`: checks a vault's metadata against its chunk files, straight from the stores (like `audit
// verify`, it does not go through the service it checks, and it needs no key). The chunk store is the one the
// service is configured with: COFFER_CHUNK_STORE=s3://bucket/prefix, otherwise the data directory's files.
// Exits non-zero when a problem of severity error remains; the report goes to stdout either way.
import type { Command } from 'commander';
import { openVaultChunkStore } from '../../chunk-store-config.js';
import { CofferError, ErrorCode } from '../../errors.js';
import type { MetadataStore } from '../../metadata/types.js';
import { fsckStores, type FsckReport } from '../../vault/index.js';
import { dataDirOption, intFlag, jsonOption, mongoUriOption } from '../options.js';
import { print } from '../output.js';
import { openVaultMetadata } from '../vault-metadata.js';
import { formatBytes, progressBar } from '../progress.js';

interface FsckFlags {
  dataDir: string;
  mongodbUri?: string;
  readData?: boolean;
  repair?: boolean;
  concurrency: string;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('fsck')
    .description('check that every file is reachable and its chunk files are present and intact; --repair reattaches unreachable subtrees under /lost+found')
    .addOption(dataDirOption())
    .addOption(mongoUriOption())
    .option('--read-data', 'read every chunk file and compare its SHA-256 with the one recorded at commit')
    .option('--repair', 'reattach unreachable files and directories under /lost+found (nothing else is changed)')
    .option('--concurrency <n>', 'chunk files checked at once', '4')
    .addOption(jsonOption())
    .action(async (opts: FsckFlags) => {
      const concurrency = intFlag('--concurrency', opts.concurrency, 1, 64);
      const store = await openVaultMetadata(opts.dataDir, opts.mongodbUri);
      try {
        // the chunk store the service is configured with: COFFER_CHUNK_STORE (s3://…) or the data directory's
        const chunks = await openVaultChunkStore(opts.dataDir);
        try {
          const bar = opts.readData && process.stderr.isTTY && !process.env.COFFER_NO_PROGRESS
            ? progressBar('fsck --read-data', await sealedBytesOfCommittedBlobs(store))
            : null;
          // not Vault.open: that recreates a missing root, which fsck must report (and recreate only with --repair)
          const report = await fsckStores(store, chunks, {
            readData: opts.readData === true, repair: opts.repair === true, concurrency, onBytes: (n) => bar?.add(n),
          });
          bar?.done();
          print(opts, report, () => describe(report, opts.readData === true));
          if (report.errors > 0) {
            throw new CofferError(ErrorCode.INTEGRITY, `fsck found ${report.errors} problem(s)${opts.repair ? ' it cannot repair' : ''} (listed on stdout)`);
          }
        } finally {
          await chunks.close();
        }
      } finally {
        await store.close();
      }
    });
}

function describe(r: FsckReport, readData: boolean): string {
  const lines = r.problems.map((p) => `${p.severity.padEnd(7)} ${p.kind.padEnd(17)} ${p.message}${p.paths ? ` (file${p.paths.length > 1 ? 's' : ''}: ${p.paths.join(', ')})` : ''}${p.repaired ? ` [repaired: ${p.repaired}]` : ''}`);
  const data = readData ? `, ${formatBytes(r.bytesRead)} read and hashed` : ' (sizes only; --read-data hashes them)';
  lines.push(
    `${r.nodes} node(s): ${r.directories} directories, ${r.files} files, ${r.unreachable} unreachable; ` +
      `blobs: ${r.blobs.committed} committed (${r.unreferencedBlobs} unreferenced, released by GC after the grace period), ` +
      `${r.blobs.uploading} uploading, ${r.blobs.deleting} deleting; ${r.chunksChecked} chunk file(s) checked${data}`,
  );
  lines.push(r.errors === 0 ? 'fsck: no errors' : `fsck: ${r.errors} error(s)`);
  return lines.join('\n');
}

/** What --read-data will read, for the progress bar: every committed blob's chunk files (64 bytes per chunk on top). */
async function sealedBytesOfCommittedBlobs(store: MetadataStore): Promise<number> {
  let total = 0;
  let after: string | undefined;
  for (;;) {
    const page = await store.listBlobs({ after, limit: 1000 });
    for (const b of page.items) if (b.state === 'committed') total += (b.size ?? 0) + 64 * (b.chunkCount ?? 0);
    if (page.next === null) return total;
    after = page.next;
  }
}
