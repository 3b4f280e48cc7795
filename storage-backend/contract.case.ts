// The ChunkStore conformance suite (after restic's internal/backend/test/suite.go and hono's common.case.test.ts):
// every implementation calls runChunkStoreContract from its own *.test.ts with a factory for a fresh, empty
// store. It checks the contract in types.ts only through the interface, so it runs unchanged against fs and S3.
// "Nothing left behind" is checked as: stat is null / the old bytes remain, list and listBlobs do not show the
// chunk, and sweepTemporary(0) finds no temporary file to remove.
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { alignUp, alignedAllocator } from '../src/buffer-pool.js';
import { CofferError, ErrorCode } from '../src/errors.js';
import type { ChunkRef, ChunkStore } from './types.js';

export interface ChunkStoreFixture {
  store: ChunkStore;
  cleanup: () => Promise<void>;
}

const KiB = 1024;
const MiB = 1024 * KiB;

export const newBlobId = (): string => randomBytes(16).toString('hex');
export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Yields `data` in pieces of `size` bytes, as views into one buffer (non-zero byteOffset on purpose). */
export async function* pieces(data: Uint8Array, size = 64 * KiB): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < data.byteLength; at += size) {
    await Promise.resolve();
    yield data.subarray(at, Math.min(at + size, data.byteLength));
  }
}

/** Yields `good` bytes, then fails as a dropped connection would. */
async function* failingHalfWay(good: Uint8Array): AsyncGenerator<Uint8Array> {
  yield* pieces(good);
  throw new Error('connection reset by peer (simulated source failure)');
}

/** Yields `first`, then waits forever (until the consumer gives up). */
async function* stallsAfter(first: Uint8Array): AsyncGenerator<Uint8Array> {
  yield first;
  await new Promise(() => undefined);
}

export async function expectCode(p: Promise<unknown>, code: ErrorCode): Promise<CofferError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e, `expected a CofferError ${code}`).toBeInstanceOf(CofferError);
  expect((e as CofferError).code).toBe(code);
  return e as CofferError;
}

async function readAll(store: ChunkStore, ref: ChunkRef, range?: { start: number; end: number }): Promise<Buffer> {
  return buffer(await store.get(ref, range));
}

async function collect(it: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const x of it) out.push(x);
  return out.sort();
}

/** A sealed-chunk-sized random payload (64 bytes of "header and tag" plus `n`). */
const sealedLike = (n: number): Buffer => randomBytes(64 + n);

/**
 * Runs the ChunkStore contract against stores made by `makeStore` (one fresh, empty store per test).
 * `features.packs`: the store implements the optional putPack (docs/format.md "Pack file v2").
 */
export function runChunkStoreContract(name: string, makeStore: () => Promise<ChunkStoreFixture>, features: { packs: boolean } = { packs: true }): void {
  describe(`ChunkStore contract: ${name}`, () => {
    let store: ChunkStore;
    let cleanup: () => Promise<void>;
    beforeEach(async () => {
      ({ store, cleanup } = await makeStore());
    });
    afterEach(async () => {
      await store.close();
      await cleanup();
    });

    /** Nothing of `ref` visible and no temp left; `previous` (if any) still intact under its name. */
    async function expectLeftNothing(ref: ChunkRef, previous?: Buffer): Promise<void> {
      if (previous === undefined) {
        expect(await store.stat(ref)).toBeNull();
        expect(await store.list(ref.blobId)).not.toContain(ref.index);
        await expectCode(store.get(ref), 'NOT_FOUND');
      } else {
        expect(await readAll(store, ref)).toEqual(previous);
      }
      expect(await store.sweepTemporary(0)).toBe(0);
    }

    describe('put, get, stat', () => {
      it('round-trips bytes and reports size and SHA-256', async () => {
        const ref = { blobId: newBlobId(), index: 0 };
        const data = randomBytes(300 * KiB + 17);
        const res = await store.put(ref, pieces(data));
        expect(res).toEqual({ size: data.byteLength, sha256: sha256(data) });
        expect(await readAll(store, ref)).toEqual(data);
        expect(await store.stat(ref)).toEqual({ size: data.byteLength });
      });

      it('takes the caller\'s SHA-256 of the bytes (sha256 option) and reports it; refuses a malformed one', async () => {
        const ref = { blobId: newBlobId(), index: 0 };
        const data = randomBytes(200 * KiB + 3);
        expect(await store.put(ref, pieces(data), { sha256: sha256(data) })).toEqual({ size: data.byteLength, sha256: sha256(data) });
        expect(await readAll(store, ref)).toEqual(data);
        const other = { blobId: newBlobId(), index: 0 };
        await expectCode(store.put(other, pieces(data), { sha256: sha256(data).toUpperCase() }), 'INVALID_ARGUMENT');
        await expectCode(store.put(other, pieces(data), { sha256: 'abc' }), 'INVALID_ARGUMENT');
        expect(await store.stat(other)).toBeNull();
      });

      it('stores a full-size sealed chunk (8 MiB + 64) sent as 64 KiB pieces', async () => {
        const ref = { blobId: newBlobId(), index: 3 };
        const data = randomBytes(8 * MiB + 64);
        expect((await store.put(ref, pieces(data))).sha256).toBe(sha256(data));
        expect(sha256(await readAll(store, ref))).toBe(sha256(data));
      });

      it('accepts a Readable, odd piece sizes and plain Uint8Arrays', async () => {
        const data = randomBytes(200 * KiB + 3);
        const a = { blobId: newBlobId(), index: 1 };
        await store.put(a, Readable.from([data.subarray(0, 1), data.subarray(1, 100_001), data.subarray(100_001)]));
        expect(await readAll(store, a)).toEqual(data);
        const b = { blobId: newBlobId(), index: 2 };
        await store.put(b, pieces(new Uint8Array(data), 12_345));
        expect(await readAll(store, b)).toEqual(data);
      });

      it('stores an empty chunk', async () => {
        const ref = { blobId: newBlobId(), index: 0 };
        expect(await store.put(ref, pieces(new Uint8Array(0)))).toEqual({ size: 0, sha256: sha256(new Uint8Array(0)) });
        expect(await store.stat(ref)).toEqual({ size: 0 });
        expect((await readAll(store, ref)).byteLength).toBe(0);
      });

      it('statKnown (optional) agrees with stat on what this store wrote and on absent chunks', async () => {
        if (!store.statKnown) return; // a store without it is stat'ed instead (src/backup/copy-chunks.ts)
        const ref = { blobId: newBlobId(), index: 3 };
        const data = randomBytes(10 * KiB);
        await store.put(ref, pieces(data));
        expect(await store.statKnown(ref)).toEqual(await store.stat(ref));
        expect(await store.statKnown(ref)).toEqual({ size: data.length });
        const absent = { blobId: newBlobId(), index: 0 };
        expect(await store.statKnown(absent)).toBeNull();
        expect(await store.statKnown({ ...ref, index: 4 })).toBeNull();
        if (features.packs) {
          const packed = { ref: { blobId: newBlobId(), index: 0 }, data: sealedLike(1000) };
          await store.putPack!([packed]);
          expect(await store.statKnown(packed.ref)).toEqual({ size: packed.data.length });
        }
        await store.delete(ref);
        expect(await store.statKnown(ref)).toBeNull();
      });

      it('reports an absent chunk: stat null, get NOT_FOUND', async () => {
        const ref = { blobId: newBlobId(), index: 7 };
        expect(await store.stat(ref)).toBeNull();
        await expectCode(store.get(ref), 'NOT_FOUND');
        await store.put({ blobId: ref.blobId, index: 0 }, pieces(randomBytes(10)));
        expect(await store.stat(ref)).toBeNull(); // same blob, other index
        await expectCode(store.get(ref), 'NOT_FOUND');
      });

      it('is idempotent: the same bytes again succeed with the same result', async () => {
        const ref = { blobId: newBlobId(), index: 5 };
        const data = randomBytes(70 * KiB);
        const first = await store.put(ref, pieces(data));
        expect(await store.put(ref, pieces(data))).toEqual(first);
        expect(await store.list(ref.blobId)).toEqual([5]);
        expect(await readAll(store, ref)).toEqual(data);
      });

      it('readInto fills the start of a buffer with exactly the chunk, reusable chunk after chunk', async () => {
        const big = { blobId: newBlobId(), index: 0 };
        const small = { blobId: big.blobId, index: 1 };
        const bigData = randomBytes(8 * MiB + 64);
        const smallData = randomBytes(5 * KiB + 1);
        await store.put(big, pieces(bigData));
        await store.put(small, pieces(smallData));
        const into = Buffer.alloc(8 * MiB + 64 + 100, 0xee);
        const a = await store.readInto(big, into);
        expect(a.byteLength).toBe(bigData.byteLength);
        expect(a.buffer).toBe(into.buffer); // a view of the caller's buffer, not a copy
        expect(sha256(a)).toBe(sha256(bigData));
        expect(into[bigData.byteLength]).toBe(0xee); // nothing written past the chunk
        expect(await store.readInto(small, into)).toEqual(smallData);
        const empty = { blobId: newBlobId(), index: 0 };
        await store.put(empty, pieces(new Uint8Array(0)));
        expect((await store.readInto(empty, into)).byteLength).toBe(0);
        // an aligned buffer (as the service uses) lets a store read the way it wrote, e.g. with O_DIRECT
        const aligned = alignedAllocator(alignUp(8 * MiB + 64), 1)();
        expect(sha256(await store.readInto(big, aligned))).toBe(sha256(bigData));
        expect(await store.readInto(small, aligned)).toEqual(smallData);
      });

      it('readInto refuses a buffer that is too small (PAYLOAD_TOO_LARGE) and an absent chunk (NOT_FOUND)', async () => {
        const ref = { blobId: newBlobId(), index: 2 };
        const data = randomBytes(4 * KiB);
        await store.put(ref, pieces(data));
        const tooSmall = Buffer.alloc(4 * KiB - 1, 0xee);
        await expectCode(store.readInto(ref, tooSmall), 'PAYLOAD_TOO_LARGE');
        expect(tooSmall.every((b) => b === 0xee)).toBe(true);
        await expectCode(store.readInto({ blobId: ref.blobId, index: 3 }, Buffer.alloc(8 * KiB)), 'NOT_FOUND');
        await expectCode(store.readInto({ blobId: newBlobId(), index: 0 }, Buffer.alloc(8 * KiB)), 'NOT_FOUND');
      });

      it('replaces a chunk with different bytes', async () => {
        const ref = { blobId: newBlobId(), index: 0 };
        await store.put(ref, pieces(randomBytes(100 * KiB)));
        const next = randomBytes(3 * KiB);
        expect((await store.put(ref, pieces(next))).size).toBe(next.byteLength);
        expect(await readAll(store, ref)).toEqual(next);
        expect(await store.stat(ref)).toEqual({ size: next.byteLength });
      });
    });

    describe('ranges (inclusive, as HTTP Range)', () => {
      const data = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
      let ref: ChunkRef;
      beforeEach(async () => {
        ref = { blobId: newBlobId(), index: 0 };
        await store.put(ref, pieces(data, 100));
      });

      it('returns exactly the requested bytes', async () => {
        expect(await readAll(store, ref, { start: 0, end: 0 })).toEqual(data.subarray(0, 1));
        expect(await readAll(store, ref, { start: 1, end: 3 })).toEqual(data.subarray(1, 4));
        expect(await readAll(store, ref, { start: 999, end: 999 })).toEqual(data.subarray(999));
        expect(await readAll(store, ref, { start: 0, end: 999 })).toEqual(data);
      });

      it('clamps an end past the last byte', async () => {
        expect(await readAll(store, ref, { start: 990, end: 5000 })).toEqual(data.subarray(990));
      });

      it('refuses a start at or past the end with RANGE_NOT_SATISFIABLE', async () => {
        await expectCode(store.get(ref, { start: 1000, end: 1000 }), 'RANGE_NOT_SATISFIABLE');
        const empty = { blobId: ref.blobId, index: 1 };
        await store.put(empty, pieces(new Uint8Array(0)));
        await expectCode(store.get(empty, { start: 0, end: 0 }), 'RANGE_NOT_SATISFIABLE');
      });

      it('refuses malformed ranges with INVALID_ARGUMENT', async () => {
        for (const bad of [{ start: 5, end: 4 }, { start: -1, end: 3 }, { start: 0.5, end: 3 }, { start: 0, end: Number.NaN }]) {
          await expectCode(store.get(ref, bad), 'INVALID_ARGUMENT');
        }
      });
    });

    describe('delete, deleteBlob, list, listBlobs', () => {
      it('delete removes one chunk and is idempotent', async () => {
        const blobId = newBlobId();
        await store.put({ blobId, index: 0 }, pieces(randomBytes(10)));
        const keep = randomBytes(20);
        await store.put({ blobId, index: 1 }, pieces(keep));
        await store.delete({ blobId, index: 0 });
        expect(await store.stat({ blobId, index: 0 })).toBeNull();
        await store.delete({ blobId, index: 0 });
        await store.delete({ blobId: newBlobId(), index: 9 });
        expect(await store.list(blobId)).toEqual([1]);
        expect(await readAll(store, { blobId, index: 1 })).toEqual(keep);
      });

      it('deleteBlob removes every chunk of one blob only, idempotently', async () => {
        const gone = newBlobId();
        const kept = newBlobId();
        for (const index of [0, 1, 2]) await store.put({ blobId: gone, index }, pieces(randomBytes(100)));
        await store.put({ blobId: kept, index: 0 }, pieces(randomBytes(100)));
        await store.deleteBlob(gone);
        expect(await store.list(gone)).toEqual([]);
        expect(await store.stat({ blobId: gone, index: 1 })).toBeNull();
        await store.deleteBlob(gone);
        await store.deleteBlob(newBlobId());
        expect(await collect(store.listBlobs())).toEqual([kept]);
        expect(await store.list(kept)).toEqual([0]);
      });

      it('list gives indices in ascending numeric order, [] for an unknown blob', async () => {
        const blobId = newBlobId();
        for (const index of [10, 2, 0xffff_ffff, 0, 256, 16]) await store.put({ blobId, index }, pieces(randomBytes(8)));
        expect(await store.list(blobId)).toEqual([0, 2, 10, 16, 256, 0xffff_ffff]);
        expect(await store.list(newBlobId())).toEqual([]);
      });

      it('listBlobs gives every blob with a chunk, and not one whose chunks were all deleted', async () => {
        expect(await collect(store.listBlobs())).toEqual([]);
        const ids = [newBlobId(), newBlobId(), newBlobId()];
        for (const blobId of ids) await store.put({ blobId, index: 4 }, pieces(randomBytes(8)));
        expect(await collect(store.listBlobs())).toEqual([...ids].sort());
        await store.delete({ blobId: ids[0] as string, index: 4 });
        expect(await collect(store.listBlobs())).toEqual(ids.slice(1).sort());
      });
    });

    describe('refusals leave nothing behind', () => {
      it('maxBytes: PAYLOAD_TOO_LARGE beyond the limit, accepted at it', async () => {
        const ref = { blobId: newBlobId(), index: 0 };
        const data = randomBytes(2 * MiB);
        await expectCode(store.put(ref, pieces(data), { maxBytes: 1 * MiB }), 'PAYLOAD_TOO_LARGE');
        await expectLeftNothing(ref);
        expect((await store.put(ref, pieces(data), { maxBytes: data.byteLength })).size).toBe(data.byteLength);
      });

      it('maxBytes: a refused replacement keeps the old chunk', async () => {
        const ref = { blobId: newBlobId(), index: 0 };
        const old = randomBytes(1000);
        await store.put(ref, pieces(old));
        await expectCode(store.put(ref, pieces(randomBytes(5000)), { maxBytes: 4096 }), 'PAYLOAD_TOO_LARGE');
        await expectLeftNothing(ref, old);
      });

      it('expectedSize: CHUNK_MISMATCH when shorter or longer, accepted when equal', async () => {
        const ref = { blobId: newBlobId(), index: 1 };
        const data = randomBytes(150 * KiB);
        await expectCode(store.put(ref, pieces(data), { expectedSize: data.byteLength + 1 }), 'CHUNK_MISMATCH');
        await expectLeftNothing(ref);
        await expectCode(store.put(ref, pieces(data), { expectedSize: data.byteLength - 1 }), 'CHUNK_MISMATCH');
        await expectLeftNothing(ref);
        expect((await store.put(ref, pieces(data), { expectedSize: data.byteLength })).size).toBe(data.byteLength);
      });

      it('beforeRename: runs once with the whole chunk written; refusing keeps the old chunk and leaves nothing', async () => {
        const ref = { blobId: newBlobId(), index: 3 };
        const old = randomBytes(1234);
        await store.put(ref, pieces(old));
        let calls = 0;
        const refusal = new CofferError('UPLOAD_STATE', 'committed meanwhile');
        const refused = store.put(ref, pieces(randomBytes(2 * MiB)), {
          beforeRename: async () => {
            calls++;
            throw refusal;
          },
        });
        await expect(refused).rejects.toBe(refusal);
        expect(calls).toBe(1);
        await expectLeftNothing(ref, old);
        const fresh = randomBytes(3000);
        const r = await store.put(ref, pieces(fresh), { beforeRename: async () => void calls++ });
        expect([r.size, calls]).toEqual([3000, 2]);
        expect(Buffer.compare(await buffer(await store.get(ref)), fresh)).toBe(0);
        // never called for a put that fails before its data is complete
        await expect(store.put(ref, failingHalfWay(randomBytes(MiB)), { beforeRename: async () => void calls++ })).rejects.toBeInstanceOf(CofferError);
        expect(calls).toBe(2);
      });

      it('a source that fails half-way rejects and leaves nothing (old chunk kept)', async () => {
        const ref = { blobId: newBlobId(), index: 2 };
        await expect(store.put(ref, failingHalfWay(randomBytes(3 * MiB)))).rejects.toBeInstanceOf(CofferError);
        await expectLeftNothing(ref);
        const old = randomBytes(777);
        await store.put(ref, pieces(old));
        await expect(store.put(ref, failingHalfWay(randomBytes(2 * MiB)))).rejects.toBeInstanceOf(CofferError);
        await expectLeftNothing(ref, old);
      });

      it('a Readable that errors half-way rejects and leaves nothing', async () => {
        const ref = { blobId: newBlobId(), index: 0 };
        const source = Readable.from(failingHalfWay(randomBytes(MiB)), { objectMode: false });
        await expect(store.put(ref, source)).rejects.toBeInstanceOf(CofferError);
        await expectLeftNothing(ref);
      });

      it('an already-aborted signal rejects with its reason and writes nothing', async () => {
        const ref = { blobId: newBlobId(), index: 0 };
        const reason = new Error('caller gave up');
        await expect(store.put(ref, pieces(randomBytes(100)), { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
        await expectLeftNothing(ref);
      });

      it('aborting mid-stream rejects promptly (even if the source stalls) and leaves nothing', async () => {
        const ref = { blobId: newBlobId(), index: 0 };
        const ctl = new AbortController();
        const reason = new Error('client went away');
        const put = store.put(ref, stallsAfter(randomBytes(3 * MiB)), { signal: ctl.signal });
        setTimeout(() => ctl.abort(reason), 50);
        await expect(put).rejects.toBe(reason);
        await expectLeftNothing(ref);
      });
    });

    it('stores many chunks put concurrently', async () => {
      const blobs = [newBlobId(), newBlobId(), newBlobId(), newBlobId()];
      const items = Array.from({ length: 64 }, (_, i) => ({
        ref: { blobId: blobs[i % blobs.length] as string, index: Math.floor(i / blobs.length) },
        data: randomBytes(1 + ((i * 7919) % (96 * KiB))),
      }));
      const results = await Promise.all(items.map(({ ref, data }) => store.put(ref, pieces(data, 16 * KiB))));
      results.forEach((r, i) => expect(r.sha256).toBe(sha256((items[i] as (typeof items)[number]).data)));
      for (const { ref, data } of items) expect(sha256(await readAll(store, ref))).toBe(sha256(data));
      for (const blobId of blobs) expect(await store.list(blobId)).toEqual(Array.from({ length: 16 }, (_, i) => i));
      expect(await collect(store.listBlobs())).toEqual([...blobs].sort());
      expect(await store.sweepTemporary(0)).toBe(0);
    });

    describe('invalid arguments are refused with INVALID_ARGUMENT', () => {
      const badIds: unknown[] = ['', 'ABCDEF0123456789ABCDEF0123456789', '0123456789abcdef0123456789abcde', '0123456789abcdef0123456789abcdef0',
        '0123456789abcdef0123456789abcdeg', '../../../../../../../../etc/pass', '0123456789abcdef/123456789abcdef', 42, null, undefined];
      const badIndices: unknown[] = [-1, 1.5, 2 ** 32, Number.NaN, Number.POSITIVE_INFINITY, '1', null];
      const good = newBlobId();

      it('bad blob ids, for every operation', async () => {
        for (const blobId of badIds) {
          const ref = { blobId, index: 0 } as unknown as ChunkRef;
          await expectCode(store.put(ref, pieces(randomBytes(4))), 'INVALID_ARGUMENT');
          await expectCode(store.get(ref), 'INVALID_ARGUMENT');
          await expectCode(store.readInto(ref, Buffer.alloc(8)), 'INVALID_ARGUMENT');
          await expectCode(store.stat(ref), 'INVALID_ARGUMENT');
          await expectCode(store.delete(ref), 'INVALID_ARGUMENT');
          await expectCode(store.deleteBlob(blobId as string), 'INVALID_ARGUMENT');
          await expectCode(store.list(blobId as string), 'INVALID_ARGUMENT');
        }
        expect(await collect(store.listBlobs())).toEqual([]);
      });

      it('bad indices, for every operation', async () => {
        for (const index of badIndices) {
          const ref = { blobId: good, index } as unknown as ChunkRef;
          await expectCode(store.put(ref, pieces(randomBytes(4))), 'INVALID_ARGUMENT');
          await expectCode(store.get(ref), 'INVALID_ARGUMENT');
          await expectCode(store.readInto(ref, Buffer.alloc(8)), 'INVALID_ARGUMENT');
          await expectCode(store.stat(ref), 'INVALID_ARGUMENT');
          await expectCode(store.delete(ref), 'INVALID_ARGUMENT');
        }
        expect(await store.list(good)).toEqual([]);
      });

      it('bad put options and sweep ages', async () => {
        const ref = { blobId: good, index: 0 };
        for (const options of [{ maxBytes: -1 }, { expectedSize: 1.5 }, { maxbytes: 10 }, { signal: 'no' }, { beforeRename: 'no' }]) {
          await expectCode(store.put(ref, pieces(randomBytes(4)), options as never), 'INVALID_ARGUMENT');
        }
        await expectCode(store.put(ref, 'not a stream' as never), 'INVALID_ARGUMENT');
        await expectCode(store.sweepTemporary(-1), 'INVALID_ARGUMENT');
        await expectLeftNothing(ref);
      });
    });

    it('sweepTemporary on a clean store removes nothing', async () => {
      await store.put({ blobId: newBlobId(), index: 0 }, pieces(randomBytes(10)));
      expect(await store.sweepTemporary(0)).toBe(0);
    });

    describe.runIf(features.packs)('putPack (many small chunks in one pack)', () => {
      const packOf = (n: number): Array<{ ref: ChunkRef; data: Buffer }> =>
        Array.from({ length: n }, (_, i) => ({ ref: { blobId: newBlobId(), index: 0 }, data: sealedLike(i * 97) }));

      it('stores every chunk durably and reads each back through get, readInto, stat, list and listBlobs', async () => {
        const chunks = packOf(50);
        const r = await store.putPack!(chunks);
        expect(r.packId).toMatch(/^[0-9a-f]{32}$/);
        expect(r.chunks).toEqual(chunks.map((c) => ({ size: c.data.length, sha256: sha256(c.data) })));
        for (const c of chunks) {
          expect(await readAll(store, c.ref)).toEqual(c.data);
          expect(await store.readInto(c.ref, Buffer.alloc(c.data.length + 5))).toEqual(c.data);
          expect(await store.stat(c.ref)).toEqual({ size: c.data.length });
          expect(await store.list(c.ref.blobId)).toEqual([0]);
        }
        const last = chunks[49]!;
        expect(await readAll(store, last.ref, { start: 10, end: 99 })).toEqual(last.data.subarray(10, 100));
        await expectCode(store.get(last.ref, { start: last.data.length, end: last.data.length }), 'RANGE_NOT_SATISFIABLE');
        await expectCode(store.readInto(last.ref, Buffer.alloc(10)), 'PAYLOAD_TOO_LARGE');
        expect(await collect(store.listBlobs())).toEqual(chunks.map((c) => c.ref.blobId).sort());
        // a pack just written is not yet "settled": GC's stray sweep leaves it to the batch about to record it
        expect(await collect(store.listBlobs({ settledMs: 60_000 }))).toEqual([]);
        expect(await store.sweepTemporary(0)).toBe(0);
      });

      it('packed and v1 chunks live side by side; a blob may have both', async () => {
        const [a] = packOf(1);
        await store.putPack!([a!]);
        const v1 = randomBytes(100);
        await store.put({ blobId: a!.ref.blobId, index: 1 }, pieces(v1));
        expect(await store.list(a!.ref.blobId)).toEqual([0, 1]);
        expect(await readAll(store, { blobId: a!.ref.blobId, index: 1 })).toEqual(v1);
        expect(await readAll(store, a!.ref)).toEqual(a!.data);
        await store.deleteBlob(a!.ref.blobId);
        expect(await store.list(a!.ref.blobId)).toEqual([]);
        await expectCode(store.get(a!.ref), 'NOT_FOUND');
      });

      it('deleting packed blobs hides only them; the rest of the pack stays readable', async () => {
        const chunks = packOf(5);
        await store.putPack!(chunks);
        await store.deleteBlob(chunks[0]!.ref.blobId);
        await store.delete(chunks[1]!.ref);
        await store.deleteBlob(chunks[0]!.ref.blobId); // idempotent
        for (const c of chunks.slice(0, 2)) {
          expect(await store.stat(c.ref)).toBeNull();
          await expectCode(store.get(c.ref), 'NOT_FOUND');
        }
        for (const c of chunks.slice(2)) expect(await readAll(store, c.ref)).toEqual(c.data);
        expect(await collect(store.listBlobs())).toEqual(chunks.slice(2).map((c) => c.ref.blobId).sort());
        for (const c of chunks.slice(2)) await store.deleteBlob(c.ref.blobId);
        expect(await collect(store.listBlobs())).toEqual([]);
      });

      it('refuses (INVALID_ARGUMENT) bad packs and leaves nothing behind', async () => {
        const [a, b] = packOf(2);
        await expectCode(store.putPack!([]), 'INVALID_ARGUMENT');
        await expectCode(store.putPack!([a!, { ref: a!.ref, data: b!.data }]), 'INVALID_ARGUMENT');
        await expectCode(store.putPack!([a!, { ref: b!.ref, data: randomBytes(63) }]), 'INVALID_ARGUMENT');
        await expectCode(store.putPack!([{ ref: { blobId: 'XYZ', index: 0 }, data: a!.data }]), 'INVALID_ARGUMENT');
        await expectCode(store.putPack!([a!], { later: true } as never), 'INVALID_ARGUMENT');
        await expectLeftNothing(a!.ref);
        await expectLeftNothing(b!.ref);
      });

      it('a beforeRename that throws stores nothing and leaves no temporary file', async () => {
        const chunks = packOf(3);
        const e = await store.putPack!(chunks, { beforeRename: () => Promise.reject(new CofferError(ErrorCode.UPLOAD_STATE, 'too late')) }).catch((x: unknown) => x);
        expect((e as CofferError).code).toBe('UPLOAD_STATE');
        for (const c of chunks) await expectLeftNothing(c.ref);
      });

      it('packs written concurrently are all readable', async () => {
        const packs = Array.from({ length: 8 }, () => packOf(20));
        await Promise.all(packs.map((p) => store.putPack!(p)));
        for (const p of packs) for (const c of p) expect(await store.readInto(c.ref, Buffer.alloc(c.data.length))).toEqual(c.data);
      });
    });
  });
}
