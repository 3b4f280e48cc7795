// `coffer backup create|verify|restore|list|prune`: snapshots of a vault's sealed chunks and metadata at a
// directory or s3://bucket/prefix (docs/backup.md). Reads the stores directly, like fsck; needs no key.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { Option, type Command } from 'commander';
import type { ChunkStore } from '../../../storage-backend/index.js';
import {
  COPY_CONCURRENCY, VERIFY_CONCURRENCY, createSnapshot, findSnapshot, listSnapshots, openBackupTarget, parseRate, pruneSnapshots, RateLimiter, restoreSnapshot, verifySnapshot,
  type BackupTarget, type RestoreDestination,
} from '../../backup/index.js';
import { openVaultChunkStore } from '../../chunk-store-config.js';
import { CofferError, ErrorCode } from '../../errors.js';
import { loadMongoAdapter, openMetadataStore } from '../../metadata/index.js';
import { dataDirOption, intFlag, jsonOption, mongoUriOption } from '../options.js';
import { print } from '../output.js';
import { formatBytes, progressBar, type Progress } from '../progress.js';
import { openVaultMetadata } from '../vault-metadata.js';

interface CommonFlags {
  json?: boolean;
  concurrency: string;
  rateLimit?: string;
}

const concurrencyOption = (fallback: number): Option => new Option('--concurrency <n>', 'chunk files transferred at once').default(String(fallback));
const rateOption = (): Option => new Option('--rate-limit <rate>', 'at most this many bytes per second, e.g. 50MiB').env('COFFER_BACKUP_RATE_LIMIT');

function rateOf(opts: CommonFlags): RateLimiter | undefined {
  return opts.rateLimit ? new RateLimiter(parseRate('--rate-limit', opts.rateLimit)) : undefined;
}

function bar(label: string): { progress: Progress | null; plan(total: number): void; add(n: number): void } {
  let progress: Progress | null = null;
  return {
    get progress() {
      return progress;
    },
    plan(total) {
      progress?.done();
      progress = process.stderr.isTTY && !process.env.COFFER_NO_PROGRESS ? progressBar(label, total) : null;
    },
    add(n) {
      progress?.add(n);
    },
  };
}

async function withTarget<T>(spec: string, create: boolean, fn: (t: BackupTarget) => Promise<T>): Promise<T> {
  const target = await openBackupTarget(spec, { create });
  try {
    return await fn(target);
  } finally {
    await target.close();
  }
}

export function register(program: Command): void {
  const backup = program.command('backup').description('snapshots of the vault\'s encrypted chunks and metadata (no key needed)');

  backup
    .command('create')
    .description('take a snapshot (incremental: only chunk files the latest snapshot lacks are copied); run it again to resume after a kill')
    .requiredOption('--to <target>', 'a directory or s3://bucket/prefix')
    .addOption(dataDirOption())
    .addOption(mongoUriOption())
    .addOption(concurrencyOption(COPY_CONCURRENCY))
    .addOption(rateOption())
    .addOption(jsonOption())
    .action(async (opts: CommonFlags & { to: string; dataDir: string; mongodbUri?: string }) => {
      const concurrency = intFlag('--concurrency', opts.concurrency, 1, 64);
      const rate = rateOf(opts);
      const store = await openVaultMetadata(opts.dataDir, opts.mongodbUri);
      try {
        const chunks = await openVaultChunkStore(opts.dataDir);
        try {
          const progress = bar('backup create');
          const r = await withTarget(opts.to, true, (t) => createSnapshot(store, chunks, t, { concurrency, rate, onPlan: progress.plan, onBytes: progress.add }));
          progress.progress?.done();
          print(opts, r, () => [
            ...r.skipped.map((s) => `skipped ${s}`),
            `snapshot ${r.snapshot.slice(0, 12)}: ${r.files} files, ${r.directories} directories, ${formatBytes(r.bytes)} in ${r.chunks} chunk files; ` +
              `copied ${r.chunksCopied} (${formatBytes(r.bytesCopied)}), ${r.chunksUnchanged} unchanged, ${r.chunksResumed} already there; ${r.seconds.toFixed(1)} s`,
          ].join('\n'));
        } finally {
          await chunks.close();
        }
      } finally {
        await store.close();
      }
    });

  backup
    .command('verify <target>')
    .description('check a snapshot without any key: every chunk file present, its SHA-256 and header as recorded; exits non-zero on any problem')
    .option('--snapshot <id>', 'snapshot id or unique prefix (default: the latest)')
    .addOption(concurrencyOption(VERIFY_CONCURRENCY))
    .addOption(jsonOption())
    .action(async (spec: string, opts: CommonFlags & { snapshot?: string }) => {
      const concurrency = intFlag('--concurrency', opts.concurrency, 1, 64);
      await withTarget(spec, false, async (target) => {
        const ref = await findSnapshot(target, opts.snapshot);
        const progress = bar('backup verify');
        const r = await verifySnapshot(target, ref, { concurrency, onBytes: (n) => progress.add(n) });
        progress.progress?.done();
        print(opts, r, () => [
          ...r.problems.map((p) => `${p.kind.padEnd(13)} blob ${p.blob}${p.index === null ? '' : ` chunk ${p.index}`}: ${p.message}${p.files.length ? ` — affects ${p.files.join(', ')}` : ''}`),
          `snapshot ${r.snapshot.slice(0, 12)} (${r.createdAt}): ${r.chunksChecked} chunk files checked, ${formatBytes(r.bytesRead)} read; ` +
            (r.ok ? 'no problems' : `${r.problems.length} problem(s), ${r.affectedFiles.length} file(s) affected`),
        ].join('\n'));
        if (!r.ok) {
          throw new CofferError(ErrorCode.INTEGRITY, `snapshot ${r.snapshot.slice(0, 12)} has ${r.problems.length} problem(s) affecting ${r.affectedFiles.length} file(s) (listed on stdout)`);
        }
      });
    });

  backup
    .command('restore <target>')
    .description('restore a snapshot into an empty vault: a data dir (SQLite + chunk files) or a MongoDB URI (chunk files in --data-dir)')
    .requiredOption('--to <dest>', 'data directory, or mongodb://… (then the chunk files go to --data-dir)')
    .option('--snapshot <id>', 'snapshot id or unique prefix (default: the latest)')
    .addOption(dataDirOption())
    .option('--force', 'replace the contents of a non-empty destination')
    .addOption(concurrencyOption(COPY_CONCURRENCY))
    .addOption(rateOption())
    .addOption(jsonOption())
    .action(async (spec: string, opts: CommonFlags & { to: string; snapshot?: string; dataDir: string; force?: boolean }) => {
      const concurrency = intFlag('--concurrency', opts.concurrency, 1, 64);
      const rate = rateOf(opts);
      await withTarget(spec, false, async (target) => {
        const ref = await findSnapshot(target, opts.snapshot);
        const isMongo = /^mongodb(\+srv)?:\/\//.test(opts.to);
        const chunkDir = path.resolve(isMongo ? opts.dataDir : opts.to);
        const chunks = await openVaultChunkStore(chunkDir, { create: true, bulk: true });
        try {
          const dest = destination(opts.to, isMongo, chunkDir, chunks);
          const progress = bar('backup restore');
          const r = await restoreSnapshot(target, ref, dest, { force: opts.force === true, concurrency, rate, onPlan: progress.plan, onBytes: progress.add });
          progress.progress?.done();
          print(opts, r, () => `restored snapshot ${r.snapshot.slice(0, 12)} into ${r.destination}: ${r.files} files, ${r.directories} directories, ` +
            `${r.chunksCopied} chunk files copied (${formatBytes(r.bytesCopied)})${r.resumed ? `, resumed (${r.chunksResumed} already there)` : ''}; ${r.seconds.toFixed(1)} s`);
        } finally {
          await chunks.close();
        }
      });
    });

  backup
    .command('list <target>')
    .description('the snapshots at a target, oldest first')
    .addOption(jsonOption())
    .action(async (spec: string, opts: { json?: boolean }) => {
      const list = await withTarget(spec, false, (t) => listSnapshots(t));
      print(opts, list, () => list.length === 0 ? 'no snapshots'
        : list.map((s) => `${s.id.slice(0, 12)}  ${s.createdAt}  ${String(s.files).padStart(7)} files  ${formatBytes(s.bytes).padStart(10)}  ${s.host}`).join('\n'));
    });

  backup
    .command('prune <target>')
    .description('remove old snapshots and the chunk files no remaining snapshot uses')
    .option('--keep-last <n>', 'keep the n most recent snapshots', '0')
    .option('--keep-daily <n>', 'keep the latest snapshot of each of the n most recent days that have one', '0')
    .option('--dry-run', 'only say what would be removed')
    .addOption(jsonOption())
    .action(async (spec: string, opts: { keepLast: string; keepDaily: string; dryRun?: boolean; json?: boolean }) => {
      const policy = { keepLast: intFlag('--keep-last', opts.keepLast, 0, 1_000_000), keepDaily: intFlag('--keep-daily', opts.keepDaily, 0, 1_000_000) };
      const r = await withTarget(spec, false, (t) => pruneSnapshots(t, policy, { dryRun: opts.dryRun === true }));
      print(opts, r, () => `${r.dryRun ? 'would remove' : 'removed'} ${r.removed.length} snapshot(s), kept ${r.kept.length}` +
        (r.dryRun ? '' : `; deleted ${r.chunksDeleted} chunk file(s) of ${r.blobsDeleted} blob(s) and ${r.exportsDeleted} metadata export(s)`));
    });
}

function destination(to: string, isMongo: boolean, chunkDir: string, chunks: ChunkStore): RestoreDestination {
  const markerFile = path.join(chunkDir, 'restore-in-progress.json');
  if (isMongo) {
    return {
      description: `${to.replace(/\/\/[^@/]*@/, '//…@')} (chunk files in ${chunkDir})`, chunks, markerFile,
      openStore: () => openMetadataStore({ kind: 'mongo', uri: to }),
      async wipeStore() {
        const s = await (await loadMongoAdapter()).MongoMetadataStore.connect(to);
        try {
          await s.dropDatabase();
        } finally {
          await s.close();
        }
      },
    };
  }
  const dbPath = path.join(chunkDir, 'metadata.sqlite');
  return {
    description: chunkDir, chunks, markerFile,
    openStore: () => openMetadataStore({ kind: 'sqlite', path: dbPath }),
    async wipeStore() {
      for (const suffix of ['', '-wal', '-shm']) await rm(dbPath + suffix, { force: true });
    },
  };
}
