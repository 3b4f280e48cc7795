// Property tests (fast-check) for the chunk format's security claims: any bit flip, a chunk moved to another
// blob/index/key generation, reordering, truncation of a chunk or of the stream, a missing or extra FINAL —
// each fails with a CofferError and releases no plaintext of the bad chunk (chunks before it in a stream
// verified on their own and are the exact plaintext prefix). Also: seal → open round-trips for any split.
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { CofferError } from '../errors.js';
import { CHUNK_SIZE, expectedChunkLayout } from './chunk-header.js';
import { openChunk, sealChunk } from './chunk.js';
import { openStream, sealStream } from './chunker.js';
import { newBlobId } from './blob-id.js';
import { collect, drain, fromArray, pseudoRandomBytes, splitAt } from './stream.test-util.js';

const dek = new Uint8Array(randomBytes(32));
const blobId = newBlobId();
const keyGeneration = 7;
const size = 2 * CHUNK_SIZE + 1000; // three chunks: full, full, short
const data = pseudoRandomBytes(1, size);
const manifest = { blobId, keyGeneration, size, chunkCount: 3 };
let sealed: Uint8Array[] = [];
let small: Uint8Array; // one 200-byte final chunk
const smallPlain = pseudoRandomBytes(2, 200);

beforeAll(async () => {
  sealed = (await collect(sealStream(fromArray([data]), dek, { blobId, keyGeneration }))).map((c) => c.bytes);
  small = await sealChunk(dek, { blobId, index: 0, keyGeneration, final: true }, smallPlain);
});

/** Opens a stream of chunks; asserts it failed with a CofferError and yielded only whole verified chunks. */
async function expectStreamFailure(chunks: Uint8Array[], m = manifest, maxGoodChunks = Infinity): Promise<void> {
  const r = await drain(openStream(fromArray(chunks), dek, m));
  expect(r.error).toBeInstanceOf(CofferError);
  expect(r.pieces.length).toBeLessThanOrEqual(maxGoodChunks);
  expect(Buffer.compare(Buffer.concat(r.pieces), data.subarray(0, r.bytes))).toBe(0);
  // whole chunks only, nothing from the failing one (a failure after the last chunk, e.g. an extra chunk,
  // comes after the whole blob including its short final chunk)
  const layout = expectedChunkLayout(m.size);
  r.pieces.forEach((p, i) => expect(p.length).toBe(layout.plaintextLengthOf(i)));
}

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  copy[bit >> 3] = (copy[bit >> 3] ?? 0) ^ (1 << (bit & 7));
  return copy;
}

describe('chunk properties', () => {
  it('any single bit flip anywhere in a sealed chunk fails with a CofferError', async () => {
    await fc.assert(fc.asyncProperty(fc.nat(small.length * 8 - 1), async (bit) => {
      await expect(openChunk(dek, flipBit(small, bit), { blobId, index: 0, keyGeneration, final: true }))
        .rejects.toBeInstanceOf(CofferError);
    }), { numRuns: small.length * 8 >= 2000 ? 2000 : small.length * 8 });
  });

  it('any single bit flip in any chunk of a stream fails, releasing nothing from that chunk', async () => {
    // Biased towards the header and tag of each chunk, where the interesting fields are, plus the body.
    const position = fc.oneof(fc.nat(48 * 8 - 1), fc.integer({ min: -128, max: -1 }), fc.nat(CHUNK_SIZE * 8));
    await fc.assert(fc.asyncProperty(fc.nat(2), position, async (which, pos) => {
      const target = sealed[which] as Uint8Array;
      const bit = pos < 0 ? target.length * 8 + pos : pos % (target.length * 8);
      const chunks = sealed.slice();
      chunks[which] = flipBit(target, bit);
      await expectStreamFailure(chunks, manifest, which);
    }), { numRuns: 25 });
  });

  it('a chunk opened as another blob, index or key generation fails with CHUNK_MISMATCH', async () => {
    const other = fc.record({
      blob: fc.boolean(), index: fc.nat(0xffff_ffff), keyGeneration: fc.nat(0xffff_ffff),
    }).filter((o) => o.blob || o.index !== 0 || o.keyGeneration !== keyGeneration);
    await fc.assert(fc.asyncProperty(other, async (o) => {
      const expectation = { blobId: o.blob ? newBlobId() : blobId, index: o.index, keyGeneration: o.keyGeneration };
      await expect(openChunk(dek, small, expectation)).rejects.toMatchObject({ code: 'CHUNK_MISMATCH' });
    }), { numRuns: 200 });
  });

  it('a chunk whose header was rewritten to claim another blob, index or key generation fails authentication', async () => {
    const edit = fc.record({ blob: fc.uint8Array({ minLength: 16, maxLength: 16 }), keyGeneration: fc.nat(0xffff_ffff) })
      .filter((e) => Buffer.compare(e.blob, blobId) !== 0 || e.keyGeneration !== keyGeneration);
    await fc.assert(fc.asyncProperty(edit, async (e) => {
      const moved = Uint8Array.from(small);
      moved.set(e.blob, 8);
      new DataView(moved.buffer).setUint32(28, e.keyGeneration);
      await expect(openChunk(dek, moved, { blobId: e.blob, index: 0, keyGeneration: e.keyGeneration }))
        .rejects.toMatchObject({ code: 'CHUNK_AUTH_FAILED' });
    }), { numRuns: 100 });
  });

  it('any reordering, duplication or omission of chunks in a stream fails', async () => {
    const orders = fc.array(fc.nat(2), { minLength: 0, maxLength: 4 })
      .filter((o) => o.join() !== '0,1,2');
    await fc.assert(fc.asyncProperty(orders, async (order) => {
      await expectStreamFailure(order.map((i) => sealed[i] as Uint8Array));
    }), { numRuns: 40, examples: [[[0, 1, 2, 0]], [[0, 1, 2, 2]], [[0, 1]], [[]]] }); // the whole blob and then an extra chunk, too
  });

  it('truncating any chunk by any number of bytes fails', async () => {
    await fc.assert(fc.asyncProperty(fc.nat(2), fc.integer({ min: 1, max: CHUNK_SIZE + 64 }), async (which, cut) => {
      const chunks = sealed.slice();
      const c = chunks[which] as Uint8Array;
      chunks[which] = c.subarray(0, Math.max(0, c.length - cut));
      await expectStreamFailure(chunks, manifest, which);
    }), { numRuns: 25 });
  });

  it('a blob cut at a chunk boundary fails even if the manifest is edited to match (no FINAL on the new last chunk)', async () => {
    for (const keep of [1, 2]) {
      const cutManifest = { ...manifest, size: keep * CHUNK_SIZE, chunkCount: keep };
      await expectStreamFailure(sealed.slice(0, keep), cutManifest, keep - 1);
    }
  });

  it('an extra FINAL before the end, or a FINAL chunk followed by more, fails', async () => {
    const earlyFinal = await sealChunk(dek, { blobId, index: 1, keyGeneration, final: true }, data.subarray(CHUNK_SIZE, 2 * CHUNK_SIZE));
    await expectStreamFailure([sealed[0] as Uint8Array, earlyFinal, sealed[2] as Uint8Array], manifest, 1);
    // the same chunk accepted as the end of a 2-chunk blob shows the FINAL flag itself is what is checked
    const two = await collect(openStream(fromArray([sealed[0] as Uint8Array, earlyFinal]), dek, { ...manifest, size: 2 * CHUNK_SIZE, chunkCount: 2 }));
    expect(Buffer.concat(two).length).toBe(2 * CHUNK_SIZE);
  });
});

describe('chunker round trip', () => {
  // Sizes concentrated around the chunk boundaries, where cutting mistakes happen.
  const sizeArb = fc.oneof(
    fc.integer({ min: 0, max: 4096 }),
    fc.integer({ min: CHUNK_SIZE - 3, max: CHUNK_SIZE + 3 }),
    fc.integer({ min: 2 * CHUNK_SIZE - 2, max: 2 * CHUNK_SIZE + 70_000 }),
  );

  it('seal then open returns the input byte for byte, for any size and any split into pieces', async () => {
    await fc.assert(fc.asyncProperty(sizeArb, fc.nat(), fc.array(fc.nat(3 * CHUNK_SIZE), { maxLength: 12 }), async (n, seed, cuts) => {
      const input = pseudoRandomBytes(seed, n);
      const pieces = splitAt(input, cuts.map((c) => c % (n + 1)));
      const chunks = await collect(sealStream(fromArray(pieces), dek, { blobId, keyGeneration }));
      const layout = expectedChunkLayout(n);
      expect(chunks.map((c) => c.plaintextLength)).toEqual(layout.lengths());
      const out = await collect(openStream(fromArray(chunks.map((c) => c.bytes)), dek, { blobId, keyGeneration, size: n, chunkCount: layout.chunkCount }));
      expect(Buffer.compare(Buffer.concat(out), input)).toBe(0);
    }), { numRuns: 30 });
  });
});
