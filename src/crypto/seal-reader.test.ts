// Tests for sealReader (a source read at positions, sealed in place): the same blob openStream accepts and that
// @noble/ciphers opens, at the chunk boundaries; a source shorter or longer than its size refused (CONFLICT,
// no FINAL chunk handed out); a reader's failure passed on; plaintext wiped from the buffers when it stops early.
import { gcm } from '@noble/ciphers/aes.js';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BufferPool } from '../buffer-pool.js';
import { isCofferError } from '../errors.js';
import { CHUNK_SIZE, HEADER_SIZE, MAX_SEALED_SIZE, decodeChunkHeader, expectedChunkLayout } from './chunk-header.js';
import { openStream, type SealedChunk } from './chunker.js';
import { newBlobId } from './blob-id.js';
import { sealReader, type ReadAt } from './seal-reader.js';
import { collect, pseudoRandomBytes } from './stream.test-util.js';

const dek = new Uint8Array(randomBytes(32));
const blobId = newBlobId();
const keyGeneration = 2;

/** Reads `data` at positions, at most `most` bytes a call (short reads, as a file may give). */
function readerOf(data: Uint8Array, most = Infinity): ReadAt {
  return async (buf, offset, length, position) => {
    const n = Math.max(0, Math.min(length, most, data.length - position));
    buf.set(data.subarray(position, position + n), offset);
    return n;
  };
}

describe('sealReader', () => {
  it.each([0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE + 77])('%i bytes: chunks openStream and noble open, FINAL on the last', async (size) => {
    const data = pseudoRandomBytes(size + 1, size);
    const pool = new BufferPool(MAX_SEALED_SIZE, 3);
    const chunks: SealedChunk[] = await collect(sealReader(readerOf(data, 3 * 1024 * 1024 + 5), size, dek, { blobId, keyGeneration }, pool));
    const layout = expectedChunkLayout(size);
    expect(chunks.map((c) => [c.index, c.final, c.plaintextLength])).toEqual(layout.lengths().map((l, i) => [i, i === layout.chunkCount - 1, l]));
    const copies = chunks.map((c) => Buffer.from(c.bytes)); // each chunk's own buffer: copied, since buffers are reused after release
    for (const [i, c] of copies.entries()) {
      const h = decodeChunkHeader(c);
      const plain = gcm(dek, h.nonce, c.subarray(0, HEADER_SIZE)).decrypt(c.subarray(HEADER_SIZE));
      expect(Buffer.from(plain).equals(data.subarray(i * CHUNK_SIZE, i * CHUNK_SIZE + plain.length))).toBe(true);
    }
    const opened = Buffer.concat(await collect(openStream(copies, dek, { blobId, keyGeneration, size, chunkCount: layout.chunkCount })));
    expect(opened.equals(data)).toBe(true);
  });

  it('a source shorter than its size fails with CONFLICT and hands out no FINAL chunk', async () => {
    const data = pseudoRandomBytes(3, CHUNK_SIZE + 10);
    const seen: SealedChunk[] = [];
    const err = await (async () => {
      for await (const c of sealReader(readerOf(data), CHUNK_SIZE + 20, dek, { blobId, keyGeneration }, new BufferPool(MAX_SEALED_SIZE, 3))) seen.push(c);
    })().catch((e: unknown) => e);
    expect(isCofferError(err, 'CONFLICT')).toBe(true);
    expect(seen.map((c) => c.final)).toEqual([false]);
  });

  it('a source longer than its size fails with CONFLICT before its last chunk is handed out', async () => {
    const data = pseudoRandomBytes(4, CHUNK_SIZE + 11);
    const seen: SealedChunk[] = [];
    const err = await (async () => {
      for await (const c of sealReader(readerOf(data), CHUNK_SIZE + 10, dek, { blobId, keyGeneration }, new BufferPool(MAX_SEALED_SIZE, 3))) seen.push(c);
    })().catch((e: unknown) => e);
    expect(isCofferError(err, 'CONFLICT')).toBe(true);
    expect(seen.map((c) => c.final)).toEqual([false]);
  });

  it("passes on the reader's failure", async () => {
    const failing: ReadAt = async (_b, _o, _l, position) => {
      if (position >= CHUNK_SIZE) throw new Error('EIO');
      return readerOf(pseudoRandomBytes(5, 2 * CHUNK_SIZE))(_b, _o, _l, position);
    };
    await expect(collect(sealReader(failing, 2 * CHUNK_SIZE, dek, { blobId, keyGeneration }, new BufferPool(MAX_SEALED_SIZE, 3)))).rejects.toThrow('EIO');
  });

  it('abandoned after the first chunk: the chunk read ahead is waited for, wiped and given back', async () => {
    const data = Buffer.alloc(3 * CHUNK_SIZE, 0x77);
    const pool = new BufferPool(MAX_SEALED_SIZE, 4);
    const given: Buffer[] = [];
    const release = pool.release.bind(pool);
    pool.release = (b: Buffer) => {
      given.push(b);
      release(b);
    };
    for await (const c of sealReader(readerOf(data), data.length, dek, { blobId, keyGeneration }, pool)) {
      expect(c.index).toBe(0);
      break;
    }
    expect(given).toHaveLength(1); // the read-ahead's buffer (chunk 0's is the consumer's to release)
    expect((given[0] as Buffer).every((b) => b === 0)).toBe(true);
  });

  it('refuses a partial blob, a small pool, a bad key, size or blob id up front', () => {
    const pool = new BufferPool(MAX_SEALED_SIZE, 1);
    const read = readerOf(new Uint8Array(0));
    expect(() => sealReader(read, 0, dek, { blobId, keyGeneration, firstIndex: 1 }, pool)).toThrow(/whole blobs/);
    expect(() => sealReader(read, 0, dek, { blobId, keyGeneration }, new BufferPool(CHUNK_SIZE, 1))).toThrow(/must hold/);
    expect(() => sealReader(read, 0, new Uint8Array(16), { blobId, keyGeneration }, pool)).toThrow();
    expect(() => sealReader(read, -1, dek, { blobId, keyGeneration }, pool)).toThrow();
    expect(() => sealReader(read, 0, dek, { blobId: new Uint8Array(3), keyGeneration }, pool)).toThrow();
  });
});
