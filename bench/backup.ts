// `coffer bench backup`: one run, every figure measured in it (docs/benchmarks.md "Backup"). A vault is built
// in a scratch directory straight through the stores (real sealed chunks and committed blob records: one big
// file of --size bytes plus --files small files, stored as `put -r` stores them: packs of BATCH_FILES chunks, or
// with --small-files files one chunk file each as before packs), then, all through the real `coffer` command:
//   backup create vs `cp -r chunks` + `sync`; an incremental create with nothing changed; verify vs the
//   SHA-256 speed of this machine on the same chunk files; restore; and restic's backup, check --read-data and
//   restore of the same chunk directory when restic is installed. Ratios are printed; nothing is asserted.
// COFFER_BENCH_CLI_B=/other/tree/bin/coffer.mjs adds that tree's full create of the same vault (its own target),
// then cp -r + sync once more, then A's create again: an A/B of two builds in one run, each next to a cp.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CHUNK_SIZE, blobIdFromHex, expectedChunkLayout, sealChunk } from '../src/crypto/index.js';
import { openMetadataStore } from '../src/metadata/index.js';
import { ROOT_ID, type MetadataStore } from '../src/metadata/types.js';
import { openFsChunkStore, type ChunkStore } from '../storage-backend/index.js';
import { BATCH_FILES } from '../src/client/file-batcher.js';
import { runCliProcess } from './cli-process.js';
import { mbps, median, timed, type Timing } from './measure.js';

export interface BackupBenchOptions {
  size: number;
  files: number;
  /** How the small files are stored: packs (as `put -r` stores them; the default) or one chunk file each. */
  smallFiles?: 'packs' | 'files';
  dir?: string;
  keep?: boolean;
  /** Rounds of create against cp -r + sync (the order swapped each round); 1 by default. */
  rounds?: number;
  log?: (line: string) => void;
}

export async function benchBackup(options: BackupBenchOptions): Promise<Record<string, unknown>> {
  const log = options.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const work = await mkdtemp(path.join(options.dir ?? os.tmpdir(), 'coffer-bench-backup-'));
  const smallFiles = options.smallFiles ?? 'packs';
  const results: Record<string, unknown> = { size: options.size, files: options.files, smallFiles };
  try {
    const dataDir = path.join(work, 'vault');
    const t0 = Date.now();
    const bytes = await buildVault(dataDir, options.size, options.files, smallFiles);
    log(`backup benchmark: vault of ${(bytes / 2 ** 20).toFixed(0)} MiB sealed (1 file of ${(options.size / 2 ** 20).toFixed(0)} MiB + ${options.files} small files in ${smallFiles === 'packs' ? `packs of ${BATCH_FILES}, as put -r stores them` : 'one chunk file each'}) built in ${((Date.now() - t0) / 1000).toFixed(1)} s in ${work}`);
    log(`uptime: ${os.loadavg().map((l) => l.toFixed(2)).join(', ')} (load average 1, 5, 15 min; ${os.availableParallelism()} cores)`);
    dropCaches();

    // the baseline copies every chunk byte the vault holds: chunk files and, when small files are packed, packs
    const cpAndSync = async (into: string): Promise<void> => {
      await mkdir(into);
      await sh('cp', ['-r', ...(await chunkDirs(dataDir)), into]);
      await sh('sync', []);
    };
    const cp = await timed(bytes, () => cpAndSync(path.join(work, 'cp-copy')));
    log(row(`baseline: cp -r ${(await chunkDirs(dataDir)).map((d) => path.basename(d)).join(' ')} + sync`, cp));
    dropCaches();
    const target = path.join(work, 'target');
    const create = await timed(bytes, () => coffer(['backup', 'create', '--to', target, '--data-dir', dataDir]));
    log(row('coffer backup create (full)', create, cp, 'of cp -r + sync (target ≥ 0.8)'));
    // more rounds: a create and a cp -r + sync each, the order swapped every round (whichever writes first after
    // the previous round's deletion ran slower here, docs/benchmarks.md); the ratio is the median of the rounds'
    const createVsCp = [create.rate / cp.rate];
    for (let r = 1; r < (options.rounds ?? 1); r++) {
      const copy = path.join(work, `cp-copy-r${r}`);
      const into = path.join(work, `target-r${r}`);
      const one = { cp: null as Timing | null, create: null as Timing | null };
      for (const step of r % 2 === 1 ? (['create', 'cp'] as const) : (['cp', 'create'] as const)) {
        dropCaches();
        one[step] = step === 'cp'
          ? await timed(bytes, () => cpAndSync(copy))
          : await timed(bytes, () => coffer(['backup', 'create', '--to', into, '--data-dir', dataDir]));
      }
      const [c, k] = [one.create as Timing, one.cp as Timing];
      createVsCp.push(c.rate / k.rate);
      log(row(`round ${r + 1} (${r % 2 === 1 ? 'create first' : 'cp first'}): coffer backup create`, c, k, `of cp -r + sync (${k.seconds.toFixed(2)} s)`));
      await rm(copy, { recursive: true, force: true });
      await rm(into, { recursive: true, force: true });
    }
    const createVsCpMedian = median(createVsCp);
    if (createVsCp.length > 1) log(`coffer backup create: ${createVsCpMedian.toFixed(2)}× cp -r + sync, median of ${createVsCp.length} rounds [${createVsCp.map((x) => x.toFixed(2)).join(', ')}] (target ≥ 0.8)`);
    const cliB = process.env.COFFER_BENCH_CLI_B;
    if (cliB) {
      // A, B, cp, A again: each create next to a cp, and A on both sides of B (the disk's speed drifts)
      dropCaches();
      const b = await timed(bytes, () => coffer(['backup', 'create', '--to', path.join(work, 'target-b'), '--data-dir', dataDir], cliB));
      log(row('coffer backup create (full), build B', b, cp, `of cp -r + sync; B/A wall ${(b.seconds / create.seconds).toFixed(2)}`));
      dropCaches();
      const cp2 = await timed(bytes, () => cpAndSync(path.join(work, 'cp-copy-2')));
      log(row('baseline again: cp -r + sync', cp2));
      dropCaches();
      const a2 = await timed(bytes, () => coffer(['backup', 'create', '--to', path.join(work, 'target-a2'), '--data-dir', dataDir]));
      log(row('coffer backup create (full), A again', a2, cp2, 'of the second cp -r + sync'));
      Object.assign(results, { createBMBps: b.rate / 1e6, createBVsCp: b.rate / cp.rate, cp2MBps: cp2.rate / 1e6, createA2VsCp2: a2.rate / cp2.rate });
    }
    const incremental = await timed(bytes, () => coffer(['backup', 'create', '--to', target, '--data-dir', dataDir]));
    log(`${'coffer backup create (nothing changed)'.padEnd(44)} ${incremental.seconds.toFixed(2).padStart(7)} s  (${options.files + 1} files; target < 3 s)`);

    dropCaches();
    const sha = await timed(bytes, async () => {
      for (const d of await chunkDirs(target)) await hashTree(d);
    });
    log(row('SHA-256 of the same chunk files (1 thread)', sha));
    dropCaches();
    const verify = await timed(bytes, () => coffer(['backup', 'verify', target]));
    log(row('coffer backup verify', verify, sha, 'of SHA-256 speed (target ≥ 0.8)'));
    dropCaches();
    const restore = await timed(bytes, () => coffer(['backup', 'restore', target, '--to', path.join(work, 'restored')]));
    log(row('coffer backup restore', restore, cp, 'of cp -r + sync'));

    Object.assign(results, {
      vaultBytes: bytes, cpMBps: cp.rate / 1e6, createMBps: create.rate / 1e6, createVsCp: createVsCpMedian, createVsCpRounds: createVsCp,
      incrementalSeconds: incremental.seconds, sha256MBps: sha.rate / 1e6, verifyMBps: verify.rate / 1e6, verifyVsSha256: verify.rate / sha.rate,
      restoreMBps: restore.rate / 1e6,
    });

    const restic = await resticFigures(await chunkDirs(dataDir), path.join(work, 'restic'), path.join(work, 'restic-restored'), bytes, log);
    if (restic) {
      log(row('restic backup', restic.backup, cp, 'of cp -r + sync'));
      log(row('restic check --read-data', restic.check, sha, 'of SHA-256 speed'));
      log(row('restic restore', restic.restore, cp, 'of cp -r + sync'));
      const ratios = { backup: create.rate / restic.backup.rate, verify: verify.rate / restic.check.rate, restore: restore.rate / restic.restore.rate };
      log(`coffer vs restic (target ≥ 1 each): backup ${ratios.backup.toFixed(2)}×, verify ${ratios.verify.toFixed(2)}×, restore ${ratios.restore.toFixed(2)}×`);
      Object.assign(results, { resticBackupMBps: restic.backup.rate / 1e6, resticCheckMBps: restic.check.rate / 1e6, resticRestoreMBps: restic.restore.rate / 1e6, vsRestic: ratios });
    } else {
      log('restic: not installed (apt-get install restic) — comparison skipped');
    }
    log(`summary: create ${createVsCpMedian.toFixed(2)}× cp -r + sync (≥ 0.8${createVsCp.length > 1 ? `; median of ${createVsCp.length} rounds` : ''}); incremental ${incremental.seconds.toFixed(2)} s (< 3 s); verify ${(verify.rate / sha.rate).toFixed(2)}× SHA-256 (≥ 0.8)`);
    return results;
  } finally {
    if (!options.keep) await rm(work, { recursive: true, force: true });
  }
}

function row(label: string, t: Timing, base?: Timing, what = ''): string {
  const ratio = base ? `  ${(t.rate / base.rate).toFixed(2)}× ${what}` : '';
  return `${label.padEnd(44)} ${t.seconds.toFixed(2).padStart(7)} s  ${mbps(t.rate).padStart(10)}${ratio}`;
}

/** Best effort (needs root): so each measurement reads from the disk, not from the page cache of the previous one. */
function dropCaches(): void {
  spawnSync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches'], { stdio: 'ignore' });
}

async function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const r = spawnSync(cmd, args, { env, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.error?.message}`);
}

async function coffer(args: string[], cli?: string): Promise<void> {
  const r = await runCliProcess(args, {}, undefined, cli);
  if (r.code !== 0) throw new Error(`coffer ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
}

/** `chunks` and, when it exists, `packs` of a store's root. */
async function chunkDirs(root: string): Promise<string[]> {
  const names = new Set(await readdir(root));
  return ['chunks', 'packs'].filter((n) => names.has(n)).map((n) => path.join(root, n));
}

async function hashTree(dir: string): Promise<void> {
  const buf = Buffer.allocUnsafe(1 << 20);
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const fh = await open(path.join(e.parentPath, e.name), 'r');
    const h = createHash('sha256');
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.byteLength, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
    }
    h.digest();
    await fh.close();
  }
}

/**
 * A vault straight through the stores: committed blobs with real sealed chunks, file nodes under /bench. Small
 * files in packs of BATCH_FILES (what `put -r` leaves: one putPack per batch request), or one chunk file each.
 */
export async function buildVault(dataDir: string, size: number, files: number, smallFiles: 'packs' | 'files' = 'packs'): Promise<number> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const store = await openMetadataStore({ kind: 'sqlite', path: path.join(dataDir, 'metadata.sqlite') });
  const chunks = await openFsChunkStore({ root: dataDir, deferSync: true }); // one syncfs at the end
  const now = new Date();
  let bytes = 0;
  try {
    await store.insertNode({ id: ROOT_ID, parentId: null, name: '', type: 'dir', blobId: null, size: 0, owner: '', createdAt: now, modifiedAt: now, version: 1 });
    await store.insertNode({ id: 'bench-dir', parentId: ROOT_ID, name: 'bench', type: 'dir', blobId: null, size: 0, owner: 'bench', createdAt: now, modifiedAt: now, version: 1 });
    const dek = new Uint8Array(randomBytes(32));
    const plain = Buffer.allocUnsafe(CHUNK_SIZE);
    randomFillSync(plain);
    bytes += await addFile(store, chunks, dek, plain, 'big.bin', size);
    if (smallFiles === 'packs') {
      for (let i = 0; i < files; i += BATCH_FILES) bytes += await addPackedFiles(store, chunks, dek, plain, i, Math.min(BATCH_FILES, files - i), 1024);
    } else {
      const jobs: Array<Promise<number>> = [];
      for (let i = 0; i < files; i++) {
        jobs.push(addFile(store, chunks, dek, plain, `small-${i}.bin`, 1024));
        if (jobs.length >= 16) bytes += (await Promise.all(jobs.splice(0))).reduce((a, b) => a + b, 0);
      }
      bytes += (await Promise.all(jobs)).reduce((a, b) => a + b, 0);
    }
    await chunks.flush();
  } finally {
    await chunks.close();
    await store.close();
  }
  return bytes;
}

async function addFile(store: MetadataStore, chunks: ChunkStore, dek: Uint8Array, plain: Buffer, name: string, size: number): Promise<number> {
  const id = randomBytes(16).toString('hex');
  const layout = expectedChunkLayout(size);
  const sums: string[] = [];
  let bytes = 0;
  for (let i = 0; i < layout.chunkCount; i++) {
    const sealed = await sealChunk(dek, { blobId: blobIdFromHex(id), index: i, keyGeneration: 1, final: i === layout.chunkCount - 1 }, plain.subarray(0, layout.plaintextLengthOf(i)));
    const r = await chunks.put({ blobId: id, index: i }, (async function* () {
      yield sealed;
    })());
    sums.push(r.sha256);
    bytes += r.size;
  }
  const now = new Date();
  await store.insertBlob({ id, state: 'committed', owner: 'bench', keyGeneration: 1, keyRecord: { scheme: 'bench' }, size, chunkCount: layout.chunkCount, chunkSha256: sums, createdAt: now, updatedAt: now, attrs: {} });
  await store.insertNode({ id: `n-${id}`, parentId: 'bench-dir', name, type: 'file', blobId: id, size, owner: 'bench', createdAt: now, modifiedAt: now, version: 1 });
  return bytes;
}

/** `count` one-chunk files small-<first>… sealed and stored as one pack, then recorded (as a batch request does). */
async function addPackedFiles(store: MetadataStore, chunks: ChunkStore, dek: Uint8Array, plain: Buffer, first: number, count: number, size: number): Promise<number> {
  if (!chunks.putPack) throw new Error('the chunk store has no packs');
  const ids = Array.from({ length: count }, () => randomBytes(16).toString('hex'));
  const sealed = await Promise.all(ids.map((id) => sealChunk(dek, { blobId: blobIdFromHex(id), index: 0, keyGeneration: 1, final: true }, plain.subarray(0, size))));
  const stored = (await chunks.putPack(ids.map((id, i) => ({ ref: { blobId: id, index: 0 }, data: sealed[i] as Uint8Array })))).chunks;
  const now = new Date();
  let bytes = 0;
  for (const [i, id] of ids.entries()) {
    const r = stored[i] as { size: number; sha256: string };
    await store.insertBlob({ id, state: 'committed', owner: 'bench', keyGeneration: 1, keyRecord: { scheme: 'bench' }, size, chunkCount: 1, chunkSha256: [r.sha256], createdAt: now, updatedAt: now, attrs: {} });
    await store.insertNode({ id: `n-${id}`, parentId: 'bench-dir', name: `small-${first + i}.bin`, type: 'file', blobId: id, size, owner: 'bench', createdAt: now, modifiedAt: now, version: 1 });
    bytes += r.size;
  }
  return bytes;
}

async function resticFigures(chunkDirs: string[], repo: string, restoreDir: string, bytes: number, log: (l: string) => void): Promise<{ backup: Timing; check: Timing; restore: Timing } | null> {
  if (spawnSync('sh', ['-c', 'command -v restic'], { encoding: 'utf8' }).status !== 0) return null;
  const env = { ...process.env, RESTIC_PASSWORD: 'coffer-bench', RESTIC_REPOSITORY: repo };
  await sh('restic', ['init', '--quiet'], env);
  dropCaches();
  const backup = await timed(bytes, () => sh('restic', ['backup', '--quiet', ...chunkDirs], env));
  dropCaches();
  const check = await timed(bytes, () => sh('restic', ['check', '--read-data', '--quiet'], env));
  dropCaches();
  const restore = await timed(bytes, () => sh('restic', ['restore', 'latest', '--quiet', '--target', restoreDir], env));
  log(`restic ${spawnSync('restic', ['version'], { encoding: 'utf8' }).stdout.trim()}`);
  return { backup, check, restore };
}
