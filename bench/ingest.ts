// `coffer bench ingest`: one run, every figure measured in it. Baseline = the same bytes written as 8 MiB files
// with fsync and no crypto; then seal + chunk store in-process; then the full path `coffer put` → HTTP →
// `coffer serve` → store → commit, and `coffer get` against reading the chunk files raw; peak RSS of both
// processes; and `restic backup` of the same file when restic is installed.
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BufferPool, alignUp, alignedAllocator } from '../src/buffer-pool.js';
import { MAX_SEALED_SIZE, blobIdToHex, newBlobId, newDataKey, sealStream } from '../src/crypto/index.js';
import { openFsChunkStore } from '../storage-backend/index.js';
import { VaultClient } from '../src/client/vault-client.js';
import { runCliProcess, startServerProcess } from './cli-process.js';
import { peakRss, row, timed, watchPeakRss, type Timing } from './measure.js';

const CHUNK = 8 * 1024 * 1024;

export interface IngestOptions {
  size: number;
  dir?: string;
  keep?: boolean;
  log?: (line: string) => void;
}

export async function benchIngest(options: IngestOptions): Promise<Record<string, unknown>> {
  const log = options.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const work = await mkdtemp(path.join(options.dir ?? os.tmpdir(), 'coffer-bench-'));
  const size = options.size;
  const results: Record<string, unknown> = { size };
  try {
    const source = path.join(work, 'source.bin');
    await writeRandomFile(source, size);
    log(`ingest benchmark: ${size} bytes (${(size / 2 ** 20).toFixed(0)} MiB) in ${work}`);

    const baseline = await timed(size, () => writeBaseline(source, path.join(work, 'baseline')));
    log(row('baseline: 8 MiB files + fsync, no crypto', baseline));
    const directBaseline = await timed(size, () => writeBaseline(source, path.join(work, 'baseline-direct'), true));
    log(row('  for reference: the same with O_DIRECT, as the store writes', directBaseline, baseline, 'of baseline'));

    const sealStore = await timed(size, () => sealAndStore(source, path.join(work, 'sealstore')));
    log(row('seal + fs chunk store (in-process)', sealStore, baseline, 'of baseline'));

    const dataDir = path.join(work, 'server');
    const keyFile = path.join(work, 'bench.key');
    await runOk(['keygen', '--out', keyFile]);
    const token = (await runOk(['token', '--data-dir', dataDir, '--user', 'bench', '--admin'])).trim();
    const server = await startServerProcess(['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0']);
    let putRss = 0;
    let getRss = 0;
    let serverRss = 0;
    let full: Timing;
    let download: Timing;
    let rawRead: Timing;
    let rawReadDirect: Timing;
    /** The faster raw read from disk: the download target's reference. */
    let reference: Timing;
    let rawReadWarm: Timing;
    let verify: Timing;
    let rawFetch: Timing;
    let rawCopy: Timing;
    let rawCopyDirect: Timing;
    /** The faster raw copy: the reference for `coffer get`, which also writes the file. */
    let copyReference: Timing;
    let verifyRss = 0;
    try {
      const env = { COFFER_SERVER: server.url, COFFER_TOKEN: token, COFFER_KEY_FILE: keyFile };
      full = await timed(size, async () => {
        putRss = await runWatched(['put', source, '/bench.bin', '--json'], env);
      });
      log(row('full path: coffer put → HTTP → store → commit', full, baseline, `of baseline, client peak RSS ${mib(putRss)}`));

      const stat = JSON.parse(await runOk(['stat', '/bench.bin', '--json'], env)) as { blobId: string };
      const blobDir = path.join(dataDir, 'chunks', stat.blobId.slice(0, 2), stat.blobId.slice(2, 4), stat.blobId);
      // "Reading the chunk files raw" (the download target's reference) is read from the disk: the service
      // writes chunks with O_DIRECT, so right after the upload they are not in the page cache, and a download of
      // a large file never comes from memory either. Two ways of reading them raw are timed, a buffered read
      // (as cat does) and an O_DIRECT read (as the service does), and the faster is the reference. A third read
      // comes from the page cache: memory bandwidth, printed for information only (docs/benchmarks.md).
      rawRead = await timed(size, () => readFilesRaw(blobDir, false));
      log(row('raw read of the chunk files from disk, buffered', rawRead));
      rawReadDirect = await timed(size, () => readFilesRaw(blobDir, true));
      log(row('raw read of the chunk files from disk, O_DIRECT', rawReadDirect));
      rawReadWarm = await timed(size, () => readFilesRaw(blobDir, false));
      log(row('raw read again, from the page cache (information)', rawReadWarm));
      reference = rawRead.rate >= rawReadDirect.rate ? rawRead : rawReadDirect;
      rawFetch = await timed(size, () => fetchSealedChunks(server.url, token, stat.blobId));
      log(row('raw fetch of the sealed chunks over HTTP (no open)', rawFetch));
      verify = await timed(size, async () => {
        verifyRss = await runWatched(['get', '--verify-only', '/bench.bin', '--json'], env);
      });
      log(row('download + open, no write: get --verify-only', verify, reference, `of the raw read from disk (the faster one), ${(verify.rate / rawReadWarm.rate).toFixed(2)}× the page-cache read, ${(verify.rate / rawFetch.rate).toFixed(2)}× raw fetch, client peak RSS ${mib(verifyRss)}`));
      const out = path.join(work, 'downloaded.bin');
      rawCopy = await timed(size, () => copyAllFiles(blobDir, path.join(work, 'raw-copy.bin'), false));
      log(row('raw copy: chunk files → one file + fsync, buffered', rawCopy));
      rawCopyDirect = await timed(size, () => copyAllFiles(blobDir, path.join(work, 'raw-copy-direct.bin'), true));
      log(row('raw copy: the same with O_DIRECT, 4 chunks at a time', rawCopyDirect));
      copyReference = rawCopy.rate >= rawCopyDirect.rate ? rawCopy : rawCopyDirect;
      await rm(path.join(work, 'raw-copy.bin'));
      await rm(path.join(work, 'raw-copy-direct.bin'));
      download = await timed(size, async () => {
        getRss = await runWatched(['get', '/bench.bin', out, '--json'], env);
      });
      log(row('download + open + write: coffer get', download, copyReference, `of the raw copy (the faster one), ${(download.rate / reference.rate).toFixed(2)}× the raw read from disk, client peak RSS ${mib(getRss)}`));
      serverRss = (await peakRss(server.child.pid as number)) ?? 0; // VmHWM is already the peak
      log(`storage service peak RSS: ${mib(serverRss)}`);
      if (!(await sameFile(source, out))) throw new Error('downloaded file differs from the source');
    } finally {
      await server.stop();
    }

    const restic = await resticBackup(source, path.join(work, 'restic'));
    if (restic) log(row('restic backup (same file, same disk)', restic, baseline, `of baseline; coffer full path = ${(full.rate / restic.rate).toFixed(2)}× restic`));
    else log('restic: not installed (apt-get install restic) — comparison skipped');

    Object.assign(results, {
      baselineMBps: baseline.rate / 1e6,
      directBaselineMBps: directBaseline.rate / 1e6,
      fullPathVsDirectBaseline: full.rate / directBaseline.rate,
      sealStoreMBps: sealStore.rate / 1e6,
      fullPathMBps: full.rate / 1e6,
      fullPathRatio: full.rate / baseline.rate,
      downloadMBps: download.rate / 1e6,
      rawReadMBps: rawRead.rate / 1e6,
      rawReadDirectMBps: rawReadDirect.rate / 1e6,
      rawReadWarmMBps: rawReadWarm.rate / 1e6,
      referenceReadMBps: reference.rate / 1e6,
      verifyOnlyMBps: verify.rate / 1e6,
      verifyOnlyRatio: verify.rate / reference.rate,
      verifyOnlyVsWarmRead: verify.rate / rawReadWarm.rate,
      downloadRatio: download.rate / reference.rate,
      downloadVsWarmRead: download.rate / rawReadWarm.rate,
      rawFetchMBps: rawFetch.rate / 1e6,
      verifyOnlyVsRawFetch: verify.rate / rawFetch.rate,
      rawCopyMBps: rawCopy.rate / 1e6,
      rawCopyDirectMBps: rawCopyDirect.rate / 1e6,
      downloadVsRawCopy: download.rate / copyReference.rate,
      putPeakRssBytes: putRss,
      getPeakRssBytes: getRss,
      serverPeakRssBytes: serverRss,
      resticMBps: restic ? restic.rate / 1e6 : null,
      vsRestic: restic ? full.rate / restic.rate : null,
    });
    log(`summary: full path ${(full.rate / baseline.rate).toFixed(2)}× baseline (target ≥ 0.7); download + open ${(verify.rate / reference.rate).toFixed(2)}× the raw read of the chunk files from disk (target ≥ 0.7; ${(verify.rate / rawReadWarm.rate).toFixed(2)}× a page-cache read); coffer get, which also writes the file, ${(download.rate / copyReference.rate).toFixed(2)}× a raw copy of the chunk files into one file and ${(download.rate / reference.rate).toFixed(2)}× the raw read; peak RSS put ${mib(putRss)} / get ${mib(getRss)} / serve ${mib(serverRss)} (target < 300 MB)${restic ? `; ${(full.rate / restic.rate).toFixed(2)}× restic (target ≥ 2)` : ''}`);
    return results;
  } finally {
    if (!options.keep) await rm(work, { recursive: true, force: true });
  }
}

function mib(n: number): string {
  return `${(n / 2 ** 20).toFixed(0)} MiB`;
}

async function runOk(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await runCliProcess(args, env);
  if (r.code !== 0) throw new Error(`coffer ${args[0]} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

async function runWatched(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let watcher: { stop(): Promise<number> } | undefined;
  const r = await runCliProcess(args, env, (child) => {
    watcher = watchPeakRss(child.pid as number, 20);
  });
  const peak = (await watcher?.stop()) ?? 0;
  if (r.code !== 0) throw new Error(`coffer ${args[0]} failed (${r.code}): ${r.stderr.trim()}`);
  return peak;
}

async function writeRandomFile(file: string, size: number): Promise<void> {
  const fh = await open(file, 'w');
  const buf = Buffer.allocUnsafe(CHUNK);
  try {
    for (let off = 0; off < size; off += CHUNK) {
      const n = Math.min(CHUNK, size - off);
      randomFillSync(buf, 0, n);
      await fh.write(buf, 0, n);
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Baseline writes: one 8 MiB file after the other, fsynced; `direct`: with O_DIRECT (whole 4 KiB blocks, cut). */
async function writeBaseline(source: string, dir: string, direct = false): Promise<void> {
  await mkdir(dir, { recursive: true });
  const src = await open(source, 'r');
  const buf = direct ? alignedAllocator(CHUNK, 1)() : Buffer.allocUnsafe(CHUNK);
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | (direct ? constants.O_DIRECT : 0);
  try {
    for (let i = 0; ; i++) {
      const { bytesRead } = await src.read(buf, 0, CHUNK, null);
      if (bytesRead === 0) break;
      const fh = await open(path.join(dir, i.toString(16).padStart(8, '0')), flags, 0o600);
      const len = direct ? alignUp(bytesRead) : bytesRead;
      buf.fill(0, bytesRead, len);
      await fh.write(buf, 0, len, 0);
      if (len !== bytesRead) await fh.truncate(bytesRead);
      await fh.sync();
      await fh.close();
    }
    const d = await open(dir, 'r');
    await d.sync();
    await d.close();
  } finally {
    await src.close();
  }
}

async function sealAndStore(source: string, root: string): Promise<void> {
  const store = await openFsChunkStore({ root });
  const blobId = newBlobId();
  const blobIdHex = blobIdToHex(blobId);
  const inFlight = new Set<Promise<unknown>>();
  try {
    const buffers = new BufferPool(MAX_SEALED_SIZE, 5);
    for await (const chunk of sealStream(createReadStream(source, { highWaterMark: 1024 * 1024 }), newDataKey(), { blobId, keyGeneration: 1 }, { buffers })) {
      const p: Promise<unknown> = store.put({ blobId: blobIdHex, index: chunk.index }, oneShot(chunk.bytes)).then(() => chunk.release()).finally(() => inFlight.delete(p));
      inFlight.add(p);
      if (inFlight.size >= 4) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
  } finally {
    await store.close();
  }
}

async function* oneShot(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

/**
 * Reads a blob's chunk files in order into one reused buffer, as `cat` would (buffered) or as the service does
 * (O_DIRECT: whole 4 KiB blocks into an aligned buffer, bypassing the page cache).
 */
async function readFilesRaw(dir: string, direct: boolean): Promise<void> {
  const size = alignUp(MAX_SEALED_SIZE);
  const buf = direct ? alignedAllocator(size, 1)() : Buffer.allocUnsafeSlow(size);
  const flags = constants.O_RDONLY | (direct ? constants.O_DIRECT : 0);
  for (const name of (await readdir(dir)).sort()) {
    const fh = await open(path.join(dir, name), flags);
    try {
      while ((await fh.read(buf, 0, buf.length, null)).bytesRead === buf.length);
    } finally {
      await fh.close();
    }
  }
}

/** Fetches every sealed chunk of a blob over HTTP, 4 at a time, into reused buffers, without opening them: the transport alone. */
async function fetchSealedChunks(server: string, token: string, blobId: string): Promise<void> {
  const client = new VaultClient({ server, token, maxSockets: 6 });
  try {
    const manifest = await client.manifest(blobId);
    let next = 0;
    await Promise.all(Array.from({ length: 4 }, async () => {
      const buf = Buffer.allocUnsafeSlow(MAX_SEALED_SIZE);
      while (next < manifest.chunkCount) await client.getChunkInto(blobId, next++, buf);
    }));
  } finally {
    client.close();
  }
}

/**
 * Reads the chunk files and writes them into one file, fsynced: the I/O of a download, no crypto. Buffered: in
 * order, one reused buffer. O_DIRECT: as the service reads and `coffer get` writes, 4 chunks at a time.
 */
async function copyAllFiles(dir: string, dest: string, direct: boolean): Promise<void> {
  const names = (await readdir(dir)).sort();
  const out = await open(dest, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | (direct ? constants.O_DIRECT : 0), 0o600);
  try {
    const size = alignUp(MAX_SEALED_SIZE);
    const lanes = direct ? 4 : 1;
    const allocate = direct ? alignedAllocator(size, lanes) : () => Buffer.allocUnsafeSlow(size);
    let next = 0;
    let position = 0;
    await Promise.all(Array.from({ length: lanes }, async () => {
      const buf = allocate();
      while (next < names.length) {
        const index = next++;
        // O_DIRECT needs aligned offsets: chunk i goes into slot i of whole 4 KiB blocks (a few KiB of gaps)
        const at = direct ? index * size : position;
        const fh = await open(path.join(dir, names[index] as string), constants.O_RDONLY | (direct ? constants.O_DIRECT : 0));
        let n = 0;
        try {
          for (let r; (r = (await fh.read(buf, n, buf.length - n, n)).bytesRead) > 0;) n += r;
        } finally {
          await fh.close();
        }
        if (!direct) position += n;
        await out.write(buf, 0, direct ? alignUp(n) : n, at);
      }
    }));
    await out.sync();
  } finally {
    await out.close();
  }
}

async function sameFile(a: string, b: string): Promise<boolean> {
  const fa = await open(a, 'r');
  const fb = await open(b, 'r');
  const ba = Buffer.allocUnsafe(CHUNK);
  const bb = Buffer.allocUnsafe(CHUNK);
  try {
    for (;;) {
      const ra = await fa.read(ba, 0, CHUNK, null);
      const rb = await fb.read(bb, 0, CHUNK, null);
      if (ra.bytesRead !== rb.bytesRead) return false;
      if (ra.bytesRead === 0) return true;
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
    }
  } finally {
    await fa.close();
    await fb.close();
  }
}

async function resticBackup(source: string, repo: string): Promise<Timing | null> {
  const which = spawnSync('sh', ['-c', 'command -v restic'], { encoding: 'utf8' });
  if (which.status !== 0) return null;
  const env = { ...process.env, RESTIC_PASSWORD: 'coffer-bench', RESTIC_REPOSITORY: repo };
  const init = spawnSync('restic', ['init', '--quiet'], { env, encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`restic init failed: ${init.stderr}`);
  const { size } = await stat(source);
  return timed(size, async () => {
    const r = spawnSync('restic', ['backup', '--quiet', source], { env, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`restic backup failed: ${r.stderr}`);
  });
}
