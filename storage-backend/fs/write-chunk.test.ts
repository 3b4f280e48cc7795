// Chunk bodies are hashed on a worker (write-chunk.ts, HashPool.stream) while the main thread receives and writes:
// the digest is the SHA-256 of the bytes on disk whatever the pieces' sizes, direct I/O or not, and a hashing
// failure fails the put with nothing left behind (no chunk, no temporary file).
import { randomFillSync } from 'node:crypto';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { afterEach, describe, expect, it } from 'vitest';
import { HashPool } from '../../src/hash-pool.js';
import { probeDirectIo } from './direct-io.js';
import { openFsChunkStore } from './index.js';
import { sha256, tempRoot } from './test-util.js';
import { chunkHashPoolForTests, writeChunk, type WriteChunkJob } from './write-chunk.js';

let root: string | undefined;
let pool: HashPool | undefined;
afterEach(async () => {
  await pool?.close();
  pool = undefined;
  if (root) await rm(root, { recursive: true, force: true });
  root = undefined;
});

/** Pieces of irregular sizes (as HTTP hands them over), `total` bytes in all. */
function pieces(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = Math.min(bytes.length - at, 1 + ((i * 40_961) % 200_000));
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

function job(dir: string, data: AsyncIterable<Uint8Array>, over: Partial<WriteChunkJob>): WriteChunkJob {
  return {
    root: dir, dir, finalName: '00000000', tempName: '.tmp-00000000', what: 'chunk test/0', data,
    maxBytes: undefined, expectedSize: undefined, signal: undefined, beforeRename: undefined, verifyAfterWrite: true,
    direct: false, io: pLimit(4), onFsync: undefined, dirSync: () => Promise.resolve(), deferSync: false, ...over,
  };
}

async function* from(parts: Buffer[], between?: (i: number) => Promise<void>): AsyncIterable<Uint8Array> {
  for (const [i, p] of parts.entries()) {
    await between?.(i);
    yield p;
  }
}

describe('writeChunk hashing on a worker', () => {
  for (const direct of [true, false]) {
    it(`${direct ? 'O_DIRECT' : 'buffered'}: the digest is that of the bytes on disk (8 MiB + 64, pieces of any size), verified by read-back`, async (ctx) => {
      root = await tempRoot();
      if (direct && !(await probeDirectIo(root))) ctx.skip('no O_DIRECT on the temp filesystem');
      pool = new HashPool(1);
      const bytes = randomFillSync(Buffer.alloc(8 * 1024 * 1024 + 64));
      const r = await writeChunk(job(root, from(pieces(bytes)), { direct, hashPool: pool, expectedSize: bytes.length }));
      expect(r).toEqual({ size: bytes.length, sha256: sha256(bytes) });
      expect((await readFile(join(root, '00000000'))).equals(bytes)).toBe(true);
    });
  }

  it('a hashing failure mid-chunk fails the put: no chunk, no temporary file', async () => {
    root = await tempRoot();
    pool = new HashPool(1);
    const bytes = randomFillSync(Buffer.alloc(4 * 1024 * 1024));
    const p = pool;
    // the pool closes once a few MiB have gone through: the next update (or the digest) is refused
    const data = from(pieces(bytes), async (i) => {
      if (i === 30) await p.close();
    });
    await expect(writeChunk(job(root, data, { direct: await probeDirectIo(root), hashPool: pool, expectedSize: bytes.length })))
      .rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(await readdir(root)).toEqual([]);
  });

  /** Every file (not directory) under `dir`, relative. */
  async function files(dir: string): Promise<string[]> {
    const out: string[] = [];
    for (const n of await readdir(dir, { recursive: true })) if ((await stat(join(dir, n))).isFile()) out.push(n);
    return out.sort();
  }

  for (const direct of [true, false]) {
    it(`${direct ? 'O_DIRECT' : 'buffered'}: its hashing worker killed mid-chunk fails the put (no chunk, no temp file); the next put hashes right`, async (ctx) => {
      root = await tempRoot();
      if (direct && !(await probeDirectIo(root))) ctx.skip('no O_DIRECT on the temp filesystem');
      pool = new HashPool(1);
      const p = pool;
      const bytes = randomFillSync(Buffer.alloc(8 * 1024 * 1024 + 64));
      let killed = false;
      // a few MiB in (buffers written and hashed, more to come), the worker holding the chunk's hash state dies
      const data = from(pieces(bytes), async (i) => {
        if (i !== 30) return;
        const workers = p.workersForTests();
        expect(workers).toHaveLength(1);
        await workers[0]?.terminate();
        killed = true;
      });
      await expect(writeChunk(job(root, data, { direct, hashPool: pool, expectedSize: bytes.length })))
        .rejects.toMatchObject({ name: 'CofferError', code: 'INTERNAL' });
      expect(killed).toBe(true);
      expect(await readdir(root)).toEqual([]);
      const r = await writeChunk(job(root, from(pieces(bytes)), { direct, hashPool: pool, expectedSize: bytes.length }));
      expect(r).toEqual({ size: bytes.length, sha256: sha256(bytes) });
    });
  }

  it('the store: a put whose hashing worker (the process pool) dies mid-chunk leaves no new file; the next put works', async () => {
    root = await tempRoot();
    const store = await openFsChunkStore({ root });
    try {
      const ref = { blobId: 'ab'.repeat(16), index: 0 };
      const bytes = randomFillSync(Buffer.alloc(8 * 1024 * 1024 + 64));
      const before = await files(root);
      const workers: unknown[] = [];
      const data = from(pieces(bytes), async (i) => {
        if (i !== 30) return;
        const live = chunkHashPoolForTests().workersForTests();
        expect(live.length).toBeGreaterThan(0); // the put is hashing on the process's pool
        workers.push(...live);
        await Promise.all(live.map((w) => w.terminate()));
      });
      await expect(store.put(ref, data, { expectedSize: bytes.length })).rejects.toMatchObject({ name: 'CofferError', code: 'INTERNAL' });
      expect(workers.length).toBeGreaterThan(0);
      expect(await files(root)).toEqual(before);
      expect(await store.stat(ref)).toBeNull();
      expect(await store.put(ref, from(pieces(bytes)), { expectedSize: bytes.length })).toEqual({ size: bytes.length, sha256: sha256(bytes) });
      expect((await readFile(join(root, (await files(root)).find((f) => f.endsWith('00000000')) as string))).equals(bytes)).toBe(true);
      expect(chunkHashPoolForTests().workersForTests().some((w) => workers.includes(w))).toBe(false);
    } finally {
      await store.close();
    }
  });
});
