// Tests for the streaming chunker: round trips at the chunk boundaries, bounded read-ahead, and the
// manifest checks of openStream (count, order, truncation, extra chunks, ranges).
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isCofferError, type ErrorCode } from '../errors.js';
import { BufferPool } from '../buffer-pool.js';
import { CHUNK_SIZE, MAX_SEALED_SIZE, expectedChunkLayout } from './chunk-header.js';
import { openStream, sealStream, type SealedChunk } from './chunker.js';
import { newBlobId } from './blob-id.js';
import { collect, drain, fromArray, pseudoRandomBytes, splitAt } from './stream.test-util.js';

const dek = new Uint8Array(randomBytes(32));
const blobId = newBlobId();
const keyGeneration = 4;

async function sealAll(data: Uint8Array, pieces: Uint8Array[] = [data]): Promise<SealedChunk[]> {
  return collect(sealStream(fromArray(pieces), dek, { blobId, keyGeneration }));
}

function manifestFor(size: number) {
  return { blobId, keyGeneration, size, chunkCount: expectedChunkLayout(size).chunkCount };
}

function isCode(code: ErrorCode) {
  return (e: unknown) => isCofferError(e, code);
}

describe('sealStream', () => {
  it('with pooled plaintext: the same chunks, one plaintext buffer per stream, given back zeroed at the end or when abandoned', async () => {
    const data = pseudoRandomBytes(7, 2 * CHUNK_SIZE + 77);
    const pieces = splitAt(data, [5, CHUNK_SIZE - 1, CHUNK_SIZE + 3, 2 * CHUNK_SIZE]);
    const plain = await collect(sealStream(fromArray(pieces), dek, { blobId, keyGeneration }));
    const pool = new BufferPool(MAX_SEALED_SIZE, 8);
    const pooled: SealedChunk[] = [];
    for await (const c of sealStream(fromArray(pieces), dek, { blobId, keyGeneration }, { buffers: pool, pooledPlaintext: true })) {
      pooled.push({ ...c, bytes: Uint8Array.prototype.slice.call(c.bytes) }); // a copy, then the sealed buffer goes back
      c.release();
    }
    expect(pooled.map((c) => [c.index, c.final, c.plaintextLength])).toEqual(plain.map((c) => [c.index, c.final, c.plaintextLength]));
    // the header's nonce differs per seal; open both to compare plaintext
    const a = Buffer.concat(await collect(openStream(fromArray(plain.map((c) => c.bytes)), dek, manifestFor(data.length))));
    const b = Buffer.concat(await collect(openStream(fromArray(pooled.map((c) => c.bytes)), dek, manifestFor(data.length))));
    expect(a.equals(b) && a.equals(Buffer.from(data))).toBe(true);
    expect(pool.kept).toBe(2); // one sealed buffer reused for every chunk, one plaintext buffer
    const bufs = [pool.acquire(), pool.acquire()];
    expect(bufs.some((x) => x.subarray(0, CHUNK_SIZE).every((v) => v === 0))).toBe(true); // the plaintext one was zeroed
    // abandoned after its first chunk: the plaintext buffer still comes back
    const pool2 = new BufferPool(MAX_SEALED_SIZE, 8);
    for await (const c of sealStream(fromArray(pieces), dek, { blobId, keyGeneration }, { buffers: pool2, pooledPlaintext: true })) {
      c.release();
      break;
    }
    expect(pool2.kept).toBe(2);
  });

  it('gives exactly one empty FINAL chunk for an empty stream (also one of empty pieces)', async () => {
    for (const pieces of [[], [new Uint8Array(0), new Uint8Array(0)]]) {
      const chunks = await collect(sealStream(fromArray(pieces), dek, { blobId, keyGeneration }));
      expect(chunks.map((c) => [c.index, c.final, c.plaintextLength, c.bytes.length])).toEqual([[0, true, 0, 64]]);
      expect(Buffer.concat(await collect(openStream(fromArray(chunks.map((c) => c.bytes)), dek, manifestFor(0)))).length).toBe(0);
    }
  });

  it.each([
    ['1 byte', 1, [1]],
    ['8 MiB - 1', CHUNK_SIZE - 1, [CHUNK_SIZE - 1]],
    ['exactly 8 MiB', CHUNK_SIZE, [CHUNK_SIZE]],
    ['8 MiB + 1', CHUNK_SIZE + 1, [CHUNK_SIZE, 1]],
  ])('cuts %s into the layout the format requires and round-trips', async (_n, size, lengths) => {
    const data = pseudoRandomBytes(size, size);
    for (const pieces of [[data], splitAt(data, [1, 1000, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1])]) {
      const chunks = await sealAll(data, pieces);
      expect(chunks.map((c) => c.plaintextLength)).toEqual(lengths);
      expect(chunks.map((c) => c.final)).toEqual(lengths.map((_, i) => i === lengths.length - 1));
      expect(chunks.map((c) => c.index)).toEqual(lengths.map((_, i) => i));
      const back = Buffer.concat(await collect(openStream(fromArray(chunks.map((c) => c.bytes)), dek, manifestFor(size))));
      expect(Buffer.compare(back, data)).toBe(0);
    }
  });

  it('reads at most about two chunks ahead of what the consumer took', async () => {
    const piece = 1024 * 1024;
    const total = 3 * CHUNK_SIZE + piece;
    let pulled = 0;
    async function* source(): AsyncGenerator<Uint8Array> {
      for (let off = 0; off < total; off += piece) {
        pulled += piece;
        yield new Uint8Array(piece);
      }
    }
    const it = sealStream(source(), dek, { blobId, keyGeneration })[Symbol.asyncIterator]();
    expect(pulled).toBe(0); // lazy: nothing read before the first pull
    let taken = 0;
    for (;;) {
      const r = await it.next();
      if (r.done) break;
      taken++;
      // FINAL needs one byte of look-ahead past a full chunk, so at most the next chunk's first piece extra.
      expect(pulled).toBeLessThanOrEqual(taken * CHUNK_SIZE + piece);
    }
    expect(taken).toBe(4);
  });

  it('rejects a source that yields something other than bytes, and passes on source errors', async () => {
    const bad = sealStream(fromArray(['text' as unknown as Uint8Array]), dek, { blobId, keyGeneration });
    await expect(collect(bad)).rejects.toSatisfy(isCode('INVALID_ARGUMENT'));
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield new Uint8Array(10);
      throw new Error('disk went away');
    }
    await expect(collect(sealStream(failing(), dek, { blobId, keyGeneration }))).rejects.toThrow('disk went away');
  });

  it('checks its arguments up front', () => {
    expect(() => sealStream(fromArray([]), new Uint8Array(31), { blobId, keyGeneration })).toThrow(expect.objectContaining({ code: 'KEY_INVALID' }));
    expect(() => sealStream(fromArray([]), dek, { blobId: new Uint8Array(4), keyGeneration })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => sealStream(fromArray([]), dek, { blobId, keyGeneration: -1 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});

describe('openStream', () => {
  const size = 2 * CHUNK_SIZE + 777;
  const data = pseudoRandomBytes(99, size);
  const chunksPromise = sealAll(data);

  it('rejects a manifest whose chunk count disagrees with its size', async () => {
    const sealed = (await chunksPromise).map((c) => c.bytes);
    expect(() => openStream(fromArray(sealed), dek, { ...manifestFor(size), chunkCount: 2 })).toThrow(expect.objectContaining({ code: 'CHUNK_MISMATCH' }));
  });

  it('throws CHUNK_MISSING at the end of a truncated stream, after the intact chunks', async () => {
    const sealed = (await chunksPromise).map((c) => c.bytes);
    const r = await drain(openStream(fromArray(sealed.slice(0, 2)), dek, manifestFor(size)));
    expect(isCofferError(r.error, 'CHUNK_MISSING')).toBe(true);
    expect(Buffer.compare(Buffer.concat(r.pieces), data.subarray(0, 2 * CHUNK_SIZE))).toBe(0);
    const none = await drain(openStream(fromArray([]), dek, manifestFor(size)));
    expect(isCofferError(none.error, 'CHUNK_MISSING')).toBe(true);
    expect(none.bytes).toBe(0);
  });

  it('rejects an extra chunk after the last one', async () => {
    const sealed = (await chunksPromise).map((c) => c.bytes);
    const r = await drain(openStream(fromArray([...sealed, sealed[2] as Uint8Array]), dek, manifestFor(size)));
    expect(isCofferError(r.error, 'CHUNK_MISMATCH')).toBe(true);
  });

  it('opens a range of chunks for Range requests and checks its bounds', async () => {
    const sealed = (await chunksPromise).map((c) => c.bytes);
    const mid = Buffer.concat(await collect(openStream(fromArray(sealed.slice(1)), dek, manifestFor(size), { firstIndex: 1 })));
    expect(Buffer.compare(mid, data.subarray(CHUNK_SIZE))).toBe(0);
    const one = Buffer.concat(await collect(openStream(fromArray([sealed[1] as Uint8Array]), dek, manifestFor(size), { firstIndex: 1, lastIndex: 1 })));
    expect(one.length).toBe(CHUNK_SIZE);
    const wrongStart = await drain(openStream(fromArray(sealed), dek, manifestFor(size), { firstIndex: 1 }));
    expect(isCofferError(wrongStart.error, 'CHUNK_MISMATCH')).toBe(true);
    expect(wrongStart.bytes).toBe(0);
    expect(() => openStream(fromArray(sealed), dek, manifestFor(size), { firstIndex: 2, lastIndex: 1 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => openStream(fromArray(sealed), dek, manifestFor(size), { lastIndex: 3 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});
