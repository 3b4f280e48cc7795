// copyChunks between two real filesystem chunk stores: small chunks that sit in the source's packs are read in runs
// (one readPackRange per run of neighbours, not one read per chunk) and each one is still checked; a large chunk is
// hashed while it is written and refused before its rename when its digest is not the recorded one (nothing of it
// stays at the destination); a pack that vanished meanwhile makes its chunks "missing" problems, not a crash.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openFsChunkStore, type ChunkStore, type FsChunkStore } from '../../storage-backend/index.js';
import { alignedAllocator } from '../buffer-pool.js';
import { HashPool } from '../hash-pool.js';
import { copyChunks, PACK_CHUNK_MAX, type ChunkJob } from './copy-chunks.js';
import { MAX_GAP, PackReader } from '../pack-runs.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const blobId = (): string => randomBytes(16).toString('hex');

let dir: string;
let from: FsChunkStore;
let to: FsChunkStore;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'coffer-copy-chunks-'));
  from = await openFsChunkStore({ root: path.join(dir, 'from') });
  to = await openFsChunkStore({ root: path.join(dir, 'to'), deferSync: true });
});

afterEach(async () => {
  await from.close();
  await to.close();
  await rm(dir, { recursive: true, force: true });
});

/** `n` small chunks of random bytes in one source pack; jobs in blob-id order, as a backup makes them. */
async function packed(n: number): Promise<{ jobs: ChunkJob[]; bytes: Map<string, Buffer> }> {
  const chunks = Array.from({ length: n }, (_, i) => ({ ref: { blobId: blobId(), index: 0 }, data: randomBytes(1000 + i) }));
  await from.putPack?.(chunks);
  const bytes = new Map(chunks.map((c) => [c.ref.blobId, c.data]));
  const jobs = chunks.map((c) => ({ ref: c.ref, size: c.data.byteLength, sha256: sha(c.data) })).sort((a, b) => (a.ref.blobId < b.ref.blobId ? -1 : 1));
  return { jobs, bytes };
}

/** Counts the source's reads (the store itself does the work). */
function counting(store: FsChunkStore): { store: ChunkStore; reads: { range: number; into: number } } {
  const reads = { range: 0, into: 0 };
  const wrapped: ChunkStore = Object.assign(Object.create(store) as FsChunkStore, {
    readInto: (...a: Parameters<FsChunkStore['readInto']>) => (reads.into++, store.readInto(...a)),
    readPackRange: (...a: Parameters<FsChunkStore['readPackRange']>) => (reads.range++, store.readPackRange(...a)),
    packedLocation: (...a: Parameters<FsChunkStore['packedLocation']>) => store.packedLocation(...a),
  });
  return { store: wrapped, reads };
}

describe('copyChunks', () => {
  it('reads packed small chunks in runs, checks each, and leaves out one whose digest is wrong', async () => {
    const { jobs, bytes } = await packed(300);
    const bad = jobs[7] as ChunkJob;
    const wrongJobs = jobs.map((j) => (j === bad ? { ...j, sha256: '0'.repeat(64) } : j));
    const { store, reads } = counting(from);
    const r = await copyChunks(store, to, wrongJobs, { concurrency: 4, skipPresent: true, presentBlobs: new Set() });
    expect(r.copied).toBe(299);
    expect(r.problems.map((p) => [p.kind, p.job.ref.blobId])).toEqual([['sha256', bad.ref.blobId]]);
    expect(reads.into).toBe(0);
    expect(reads.range).toBeLessThanOrEqual(2); // 300 chunks of ~1 KiB next to each other: one run
    expect(await to.stat(bad.ref)).toBeNull();
    for (const j of jobs) {
      if (j === bad) continue;
      const got = await to.readInto(j.ref, Buffer.alloc(PACK_CHUNK_MAX));
      expect(got.equals(bytes.get(j.ref.blobId) as Buffer)).toBe(true);
    }
  });

  it('resumes: chunks already at the destination are counted, not read again', async () => {
    const { jobs } = await packed(50);
    await copyChunks(from, to, jobs.slice(0, 20), { concurrency: 2, skipPresent: true, presentBlobs: new Set() });
    const r = await copyChunks(from, to, jobs, { concurrency: 2, skipPresent: true, presentBlobs: new Set(jobs.slice(0, 20).map((j) => j.ref.blobId)) });
    expect(r).toMatchObject({ copied: 30, present: 20, problems: [] });
  });

  it('an incremental copy (every chunk asked for, most absent) never makes the destination rescan its packs', async () => {
    const { jobs } = await packed(40);
    await copyChunks(from, to, jobs.slice(0, 10), { concurrency: 2, skipPresent: true });
    const scans = to.packs.scans;
    const t0 = Date.now();
    // no presentBlobs, as an incremental backup: each of the 30 new chunks is asked "already there?" in turn;
    // stat's rescan of a miss (at most one per 250 ms) made that 30 x 250 ms
    const r = await copyChunks(from, to, jobs, { concurrency: 2, skipPresent: true });
    expect(r).toMatchObject({ copied: 30, present: 10, problems: [] });
    expect(to.packs.scans).toBe(scans);
    expect(Date.now() - t0).toBeLessThan(5000); // at least 7.5 s before (30 misses in a row)
  });

  it('refuses a large chunk whose bytes are not the recorded ones before its rename, leaving nothing behind', async () => {
    const good = { ref: { blobId: blobId(), index: 0 }, data: randomBytes(2 * 1024 * 1024 + 64) };
    const damaged = { ref: { blobId: blobId(), index: 0 }, data: randomBytes(2 * 1024 * 1024 + 64) };
    for (const c of [good, damaged]) await from.put(c.ref, (async function* () { yield c.data; })());
    const jobs: ChunkJob[] = [
      { ref: good.ref, size: good.data.byteLength, sha256: sha(good.data) },
      { ref: damaged.ref, size: damaged.data.byteLength, sha256: sha(randomBytes(16)) }, // the record says other bytes
    ];
    const r = await copyChunks(from, to, jobs, { concurrency: 2, skipPresent: false });
    expect(r.copied).toBe(1);
    expect(r.problems.map((p) => [p.kind, p.job.ref.blobId])).toEqual([['sha256', damaged.ref.blobId]]);
    expect((await to.readInto(good.ref, Buffer.alloc(good.data.byteLength))).equals(good.data)).toBe(true);
    expect(await to.stat(damaged.ref)).toBeNull();
    const left = (await readdir(path.join(dir, 'to', 'chunks'), { recursive: true })).filter((n) => n.includes(damaged.ref.blobId) && /\.tmp|0{8}$/.test(n));
    expect(left).toEqual([]);
  });

  it('reports the chunks of a pack that vanished after it was indexed as missing', async () => {
    const { jobs } = await packed(10);
    for (const f of await readdir(path.join(dir, 'from', 'packs'), { recursive: true })) {
      if (/[0-9a-f]{32}$/.test(f)) await unlink(path.join(dir, 'from', 'packs', f));
    }
    const r = await copyChunks(from, to, jobs, { concurrency: 2, skipPresent: false });
    expect(r.copied).toBe(0);
    expect(r.problems.map((p) => p.kind)).toEqual(Array(10).fill('missing'));
  });
});

/**
 * The source, whose reads kill `pool`'s hashing workers once, right after the bytes are read: the chunk's digest is
 * then asked of a worker that is dying (terminate() not awaited), as when one crashes under a copy.
 */
function killingWorkers(store: FsChunkStore, pool: HashPool): { store: ChunkStore; killed: unknown[] } {
  const killed: unknown[] = [];
  const kill = <T>(r: T): T => {
    if (killed.length === 0) {
      killed.push(...pool.workersForTests());
      for (const w of pool.workersForTests()) void w.terminate();
    }
    return r;
  };
  const wrapped: ChunkStore = Object.assign(Object.create(store) as FsChunkStore, {
    readInto: async (...a: Parameters<FsChunkStore['readInto']>) => kill(await store.readInto(...a)),
    readPackRange: async (...a: Parameters<FsChunkStore['readPackRange']>) => kill(await store.readPackRange(...a)),
    packedLocation: (...a: Parameters<FsChunkStore['packedLocation']>) => store.packedLocation(...a),
  });
  return { store: wrapped, killed };
}

/** Every file under the destination's root. */
async function destFiles(): Promise<string[]> {
  const all = await readdir(path.join(dir, 'to'), { recursive: true, withFileTypes: true });
  return all.filter((d) => d.isFile()).map((d) => path.join(d.parentPath, d.name)).sort();
}

describe('copyChunks when a hashing worker dies', () => {
  let pool: HashPool;
  beforeEach(async () => {
    pool = new HashPool(1);
    await pool.digest(alignedAllocator(1024 * 1024, 1, { shared: true })()); // its worker is up, to be killed
  });
  afterEach(() => pool.close());

  it('a large chunk: the copy fails with the error, nothing of the chunk is at the destination; a rerun copies it', async () => {
    const chunks = [0, 1].map(() => ({ ref: { blobId: blobId(), index: 0 }, data: randomBytes(4 * 1024 * 1024 + 64) }));
    for (const c of chunks) await from.put(c.ref, (async function* () { yield c.data; })());
    const jobs: ChunkJob[] = chunks.map((c) => ({ ref: c.ref, size: c.data.byteLength, sha256: sha(c.data) }));
    const before = await destFiles();
    const { store, killed } = killingWorkers(from, pool);
    await expect(copyChunks(store, to, jobs, { concurrency: 1, skipPresent: false, hasher: pool }))
      .rejects.toMatchObject({ name: 'CofferError', code: 'INTERNAL' });
    expect(killed).toHaveLength(1);
    expect(await destFiles()).toEqual(before);
    for (const c of chunks) expect(await to.stat(c.ref)).toBeNull();
    const r = await copyChunks(from, to, jobs, { concurrency: 1, skipPresent: false, hasher: pool });
    expect(r).toMatchObject({ copied: 2, problems: [] });
    for (const c of chunks) expect((await to.readInto(c.ref, Buffer.alloc(c.data.byteLength))).equals(c.data)).toBe(true);
  });

  it('packed small chunks: the run fails, no pack is written; a rerun copies them all', async () => {
    // over 64 KiB each, so the pool hashes them on its worker (smaller ones it hashes on the calling thread)
    const chunks = Array.from({ length: 20 }, (_, i) => ({ ref: { blobId: blobId(), index: 0 }, data: randomBytes(100_000 + i) }));
    await from.putPack?.(chunks);
    const bytes = new Map(chunks.map((c) => [c.ref.blobId, c.data]));
    const jobs = chunks.map((c) => ({ ref: c.ref, size: c.data.byteLength, sha256: sha(c.data) })).sort((a, b) => (a.ref.blobId < b.ref.blobId ? -1 : 1));
    const before = await destFiles();
    const { store, killed } = killingWorkers(from, pool);
    await expect(copyChunks(store, to, jobs, { concurrency: 1, skipPresent: false, hasher: pool }))
      .rejects.toMatchObject({ name: 'CofferError', code: 'INTERNAL' });
    expect(killed).toHaveLength(1);
    expect(await destFiles()).toEqual(before);
    const r = await copyChunks(from, to, jobs, { concurrency: 1, skipPresent: false, hasher: pool });
    expect(r).toMatchObject({ copied: 20, problems: [] });
    for (const j of jobs) expect((await to.readInto(j.ref, Buffer.alloc(PACK_CHUNK_MAX))).equals(bytes.get(j.ref.blobId) as Buffer)).toBe(true);
  });
});

describe('PackReader', () => {
  const job = (i: number): ChunkJob => ({ ref: { blobId: i.toString(16).padStart(32, '0'), index: 0 }, size: 100, sha256: '' });
  it('sorts a window into runs of neighbours: a new run at another pack, a wide gap, or a full buffer', () => {
    const where = new Map<string, { packId: string; offset: number; length: number }>();
    const a = 'a'.repeat(32);
    const b = 'b'.repeat(32);
    const spans: Array<[number, string, number, number]> = [
      [1, b, 0, 100], [2, a, 200, 100], [3, a, 0, 100], [4, a, 100, 100], // a: 0..300 one run
      [5, a, 300 + MAX_GAP + 1, 100], // past the gap: a new run
      [6, a, 300 + MAX_GAP + 101, 900], // would make that run span 1,000 bytes: a new one
    ];
    for (const [i, packId, offset, length] of spans) where.set(job(i).ref.blobId, { packId, offset, length });
    const reader = new PackReader((ref) => where.get(ref.blobId), 999);
    for (const [i] of spans) expect(reader.add(job(i))).toBe(true);
    expect(reader.add(job(99))).toBe(false); // not in a pack
    const runs = reader.take().map((r) => [r.packId[0], r.chunks.map((c) => c.loc.offset)]);
    expect(runs).toEqual([['a', [0, 100, 200]], ['a', [300 + MAX_GAP + 1]], ['a', [300 + MAX_GAP + 101]], ['b', [0]]]);
    expect(reader.take()).toEqual([]);
  });
});
