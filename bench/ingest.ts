// `coffer bench ingest`: one run, every figure measured in it. Baseline = the same bytes written as 8 MiB files
// with fsync and no crypto; then seal + chunk store in-process; then the full path `coffer put` → HTTP →
// `coffer serve` → store → commit, and `coffer get` against reading the chunk files raw; peak RSS of both
// processes; and `restic backup` of the same file when restic is installed.
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { constants, createReadStream, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BufferPool, alignUp, alignedAllocator } from '../src/buffer-pool.js';
import { MAX_SEALED_SIZE, blobIdToHex, newBlobId, newDataKey, sealStream } from '../src/crypto/index.js';
import { openFsChunkStore } from '../storage-backend/index.js';
import { VaultClient } from '../src/client/vault-client.js';
import { runCliProcess, startServerProcess } from './cli-process.js';
import { cpuAround, median, peakRss, row, timed, watchPeakRss, type Timing } from './measure.js';

const CHUNK = 8 * 1024 * 1024;

export interface IngestOptions {
  size: number;
  /** Rounds of the download measurements (each reference and each download once a round; medians reported). */
  rounds?: number;
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
    await mkdir(dataDir, { recursive: true });
    const token = (await runOk(['token', '--data-dir', dataDir, '--user', 'bench', '--admin'])).trim();
    const server = await startServerProcess(['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0']);
    let putRss = 0;
    let serverRss = 0;
    let full!: Timing;
    let putCpu = { client: 0, server: 0 };
    let downloads: DownloadFigures;
    try {
      const env = { COFFER_SERVER: server.url, COFFER_TOKEN: token, COFFER_KEY_FILE: keyFile };
      const serverPid = server.child.pid as number;
      putCpu = await cpuAround(serverPid, async () => {
        full = await timed(size, async () => {
          putRss = await runWatched(['put', source, '/bench.bin', '--json'], env);
        });
      });
      log(row('full path: coffer put → HTTP → store → commit', full, baseline, `of baseline, client peak RSS ${mib(putRss)}`));
      log(`  CPU per GiB: coffer put ${perGiB(putCpu.client, size)} s, storage service ${perGiB(putCpu.server, size)} s`);

      const stat = JSON.parse(await runOk(['stat', '/bench.bin', '--json'], env)) as { blobId: string };
      const blobDir = path.join(dataDir, 'chunks', stat.blobId.slice(0, 2), stat.blobId.slice(2, 4), stat.blobId);
      downloads = await measureDownloads({ size, work, source, blobDir, server: server.url, serverPid, token, blobId: stat.blobId, env, rounds: options.rounds ?? 3, log });
      serverRss = (await peakRss(server.child.pid as number)) ?? 0; // VmHWM is already the peak
      log(`storage service peak RSS: ${mib(serverRss)}`);
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
      ...downloads.results,
      putClientCpuPerGiB: putCpu.client / (size / 2 ** 30),
      putServerCpuPerGiB: putCpu.server / (size / 2 ** 30),
      putPeakRssBytes: putRss,
      serverPeakRssBytes: serverRss,
      resticMBps: restic ? restic.rate / 1e6 : null,
      vsRestic: restic ? full.rate / restic.rate : null,
    });
    log(`summary: full path ${(full.rate / baseline.rate).toFixed(2)}× baseline (target ≥ 0.7); ${downloads.summary}; peak RSS put ${mib(putRss)} / get ${mib(downloads.getRss)} / serve ${mib(serverRss)} (target < 300 MB)${restic ? `; ${(full.rate / restic.rate).toFixed(2)}× restic (target ≥ 2)` : ''}`);
    return results;
  } finally {
    if (!options.keep) await rm(work, { recursive: true, force: true });
  }
}

/** CPU seconds per GiB moved, as text. */
function perGiB(seconds: number, bytes: number): string {
  return (seconds / (bytes / 2 ** 30)).toFixed(2);
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

interface DownloadFigures {
  results: Record<string, number>;
  summary: string;
  getRss: number;
}

interface DownloadSetup {
  size: number;
  work: string;
  source: string;
  blobDir: string;
  server: string;
  serverPid: number;
  token: string;
  blobId: string;
  env: NodeJS.ProcessEnv;
  rounds: number;
  log: (line: string) => void;
}

/**
 * The download measurements, in rounds: each round reads the chunk files raw (buffered as `cat` does, then
 * O_DIRECT as the service does, then again from the page cache), fetches them over HTTP without opening them,
 * runs `coffer get --verify-only`, copies them raw into one file (buffered, then O_DIRECT) and runs `coffer get`.
 * On these VMs a figure moves by ±30 % from one minute to the next (the host's cache, fresh-page costs), so
 * every round prints its own ratios, and the summary gives the median ratio with the range over the rounds.
 * A download is compared with the faster raw read (or copy) of the same round: the stricter reference.
 */
async function measureDownloads(o: DownloadSetup): Promise<DownloadFigures> {
  const { size, log } = o;
  const per = {
    readBuffered: [] as number[], readDirect: [] as number[], readWarm: [] as number[], fetch: [] as number[], verify: [] as number[],
    copyBuffered: [] as number[], copyDirect: [] as number[], get: [] as number[], verifyRatio: [] as number[], getRatio: [] as number[],
    verifyVsFetch: [] as number[], getVsRead: [] as number[], verifyVsBuffered: [] as number[],
  };
  let verifyRss = 0;
  let getRss = 0;
  const getCpu = { client: [] as number[], server: [] as number[] };
  for (let round = 1; round <= o.rounds; round++) {
    evictFromPageCache(o.blobDir, log); // so that "from disk" is from the disk in every round, not only the first
    const readBuffered = await timed(size, () => readFilesRaw(o.blobDir, false));
    const readDirect = await timed(size, () => readFilesRaw(o.blobDir, true));
    const readWarm = await timed(size, () => readFilesRaw(o.blobDir, false));
    const fetch = await timed(size, () => fetchSealedChunks(o.server, o.token, o.blobId));
    const verify = await timed(size, async () => {
      verifyRss = Math.max(verifyRss, await runWatched(['get', '--verify-only', '/bench.bin', '--json'], o.env));
    });
    evictFromPageCache(o.blobDir, log);
    const copyBuffered = await timed(size, () => copyAllFiles(o.blobDir, path.join(o.work, 'raw-copy.bin'), false));
    const copyDirect = await timed(size, () => copyAllFiles(o.blobDir, path.join(o.work, 'raw-copy-direct.bin'), true));
    await rm(path.join(o.work, 'raw-copy.bin'));
    await rm(path.join(o.work, 'raw-copy-direct.bin'));
    const out = path.join(o.work, 'downloaded.bin');
    let get!: Timing;
    const cpu = await cpuAround(o.serverPid, async () => {
      get = await timed(size, async () => {
        getRss = Math.max(getRss, await runWatched(['get', '/bench.bin', out, '--json'], o.env));
      });
    });
    getCpu.client.push(cpu.client);
    getCpu.server.push(cpu.server);
    if (round === 1 && !(await sameFile(o.source, out))) throw new Error('downloaded file differs from the source');
    await rm(out);

    const read = Math.max(readBuffered.rate, readDirect.rate);
    const copy = Math.max(copyBuffered.rate, copyDirect.rate);
    const figures: Array<[keyof typeof per, number]> = [
      ['readBuffered', readBuffered.rate], ['readDirect', readDirect.rate], ['readWarm', readWarm.rate], ['fetch', fetch.rate],
      ['verify', verify.rate], ['copyBuffered', copyBuffered.rate], ['copyDirect', copyDirect.rate], ['get', get.rate],
      ['verifyRatio', verify.rate / read], ['getRatio', get.rate / copy], ['verifyVsFetch', verify.rate / fetch.rate], ['getVsRead', get.rate / read],
      ['verifyVsBuffered', verify.rate / readBuffered.rate],
    ];
    for (const [k, v] of figures) per[k].push(v);
    log(`download round ${round}/${o.rounds}:`);
    log(row('  raw read of the chunk files from disk, buffered', readBuffered));
    log(row('  raw read of the chunk files from disk, O_DIRECT', readDirect));
    log(row('  raw read again, page cache (information)', readWarm));
    log(row('  raw fetch over HTTP, not opened (transport)', fetch));
    log(row('  download + open: get --verify-only', verify, readBuffered.rate >= readDirect.rate ? readBuffered : readDirect, `of the faster raw read, ${(verify.rate / readBuffered.rate).toFixed(2)}× the buffered one, ${(verify.rate / fetch.rate).toFixed(2)}× raw fetch`));
    log(row('  raw copy into one file + fsync, buffered', copyBuffered));
    log(row('  raw copy, O_DIRECT, 4 chunks at a time', copyDirect));
    log(row('  download + open + write: coffer get', get, copyBuffered.rate >= copyDirect.rate ? copyBuffered : copyDirect, `of the faster raw copy, ${(get.rate / read).toFixed(2)}× the faster raw read`));
  }
  const span = (xs: number[], digits = 2, scale = 1): string => {
    const m = (median(xs) / scale).toFixed(digits);
    return xs.length > 1 ? `${m} (${(Math.min(...xs) / scale).toFixed(digits)}–${(Math.max(...xs) / scale).toFixed(digits)})` : m;
  };
  log(`download medians over ${o.rounds} round(s) (range): raw read buffered ${span(per.readBuffered, 0, 1e6)} MB/s, O_DIRECT ${span(per.readDirect, 0, 1e6)} MB/s, page cache ${span(per.readWarm, 0, 1e6)} MB/s; raw fetch ${span(per.fetch, 0, 1e6)} MB/s; get --verify-only ${span(per.verify, 0, 1e6)} MB/s; raw copy buffered ${span(per.copyBuffered, 0, 1e6)} MB/s, O_DIRECT ${span(per.copyDirect, 0, 1e6)} MB/s; coffer get ${span(per.get, 0, 1e6)} MB/s; client peak RSS verify ${mib(verifyRss)}, get ${mib(getRss)}`);
  const gib = size / 2 ** 30;
  log(`  CPU per GiB (median of ${o.rounds}): coffer get ${(median(getCpu.client) / gib).toFixed(2)} s, storage service ${(median(getCpu.server) / gib).toFixed(2)} s`);
  const results: Record<string, number> = {
    downloadRounds: o.rounds, verifyOnlyPeakRssBytes: verifyRss, getPeakRssBytes: getRss,
    getClientCpuPerGiB: median(getCpu.client) / gib, getServerCpuPerGiB: median(getCpu.server) / gib,
  };
  for (const [k, xs] of Object.entries(per)) results[`${k}Median`] = median(xs);
  return {
    results,
    getRss,
    summary: `download + open (get --verify-only) ${span(per.verifyRatio)}× the faster raw read of the chunk files from disk (target ≥ 0.7; ${span(per.verifyVsBuffered)}× the buffered read as cat does it, ${span(per.verifyVsFetch)}× the raw HTTP fetch alone); coffer get, which also writes the file, ${span(per.getRatio)}× the faster raw copy into one file, ${span(per.getVsRead)}× the raw read`,
  };
}

let evictionWarned = false;

/**
 * Drops the page cache of a directory's files: GNU dd's `iflag=nocache count=0` asks the kernel to forget the
 * file's clean cached pages (posix_fadvise DONTNEED), which Node cannot ask for itself. Only these files are
 * affected, not the whole machine's cache. Where dd cannot do it, says so once and carries on.
 */
function evictFromPageCache(dir: string, log: (line: string) => void): void {
  for (const name of readdirSync(dir)) {
    const r = spawnSync('dd', [`if=${path.join(dir, name)}`, 'iflag=nocache', 'count=0', 'status=none'], { stdio: 'ignore' });
    if (r.status !== 0 && !evictionWarned) {
      evictionWarned = true;
      log('note: could not drop the chunk files from the page cache (GNU dd missing?); later buffered reads may come from memory');
    }
  }
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
