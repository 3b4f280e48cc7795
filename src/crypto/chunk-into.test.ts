// The bulk-transfer path (sealChunkInto / openChunkInto: Node's cipher into caller-owned, reused buffers)
// checked against an independent AES-GCM, @noble/ciphers' pure-JS gcm, and against the same refusals as
// openChunk. Reused buffers are the point, so every case seals and opens through one dirty buffer pair.
import { gcm } from '@noble/ciphers/aes.js';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BufferPool } from '../buffer-pool.js';
import {
  CHUNK_SIZE, HEADER_SIZE, MAX_SEALED_SIZE, decodeChunkHeader, encodeChunkHeader, newBlobId, newDataKey, openChunk,
  openChunkInto, sealChunkInto, sealStream,
} from './index.js';

describe('sealChunkInto / openChunkInto', () => {
  const sealedBuf = Buffer.alloc(MAX_SEALED_SIZE + 100, 0xa5);
  const plainBuf = Buffer.alloc(CHUNK_SIZE + 100, 0x5a);

  it('seals into the buffer what noble opens, and opens what noble sealed (lengths 0..70 000)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 70_000 }), fc.integer({ min: 1, max: 1000 }), async (len, index) => {
        const dek = newDataKey();
        const blobId = newBlobId();
        const plaintext = randomBytes(len);
        const params = { blobId, index: len === 0 ? 0 : index, keyGeneration: 3, final: true };
        const sealed = sealChunkInto(dek, params, plaintext, sealedBuf);
        expect(sealed.buffer).toBe(sealedBuf.buffer);
        expect(sealed.length).toBe(len + 64);
        const h = decodeChunkHeader(sealed);
        expect(Buffer.from(gcm(dek, h.nonce, sealed.subarray(0, HEADER_SIZE)).decrypt(sealed.subarray(HEADER_SIZE))).equals(plaintext)).toBe(true);
        // the WebCrypto path agrees
        expect(Buffer.from(await openChunk(dek, sealed, params)).equals(plaintext)).toBe(true);

        const nonce = randomBytes(12);
        const header = encodeChunkHeader({ ...params, plaintextLength: len, nonce });
        const theirs = Buffer.concat([header, gcm(dek, nonce, header).encrypt(plaintext)]);
        const opened = openChunkInto(dek, theirs, { ...params, plaintextLength: len }, plainBuf);
        expect(opened.buffer).toBe(plainBuf.buffer);
        expect(Buffer.from(opened).equals(plaintext)).toBe(true);
      }),
      { numRuns: 40 },
    );
  });

  it('a full 8 MiB chunk round-trips; a flipped bit is refused and the output buffer holds no plaintext', () => {
    const dek = newDataKey();
    const blobId = newBlobId();
    const plaintext = randomBytes(CHUNK_SIZE);
    const expect7 = { blobId, index: 7, keyGeneration: 1, final: false, plaintextLength: CHUNK_SIZE };
    const sealed = Buffer.from(sealChunkInto(dek, { blobId, index: 7, keyGeneration: 1, final: false }, plaintext, sealedBuf));
    expect(Buffer.from(openChunkInto(dek, sealed, expect7, plainBuf)).equals(plaintext)).toBe(true);
    plainBuf.fill(0x5a);
    sealed[HEADER_SIZE + 12345] = (sealed[HEADER_SIZE + 12345] as number) ^ 0x80;
    expect(() => openChunkInto(dek, sealed, expect7, plainBuf)).toThrow(expect.objectContaining({ code: 'CHUNK_AUTH_FAILED' }));
    // Node's decipher wrote unauthenticated plaintext while it went; all of it was wiped before the throw
    expect(plainBuf.subarray(0, CHUNK_SIZE).every((b) => b === 0)).toBe(true);
  });

  it('opens in place over its own ciphertext (full and short chunks, noble cross-check); a bad tag there leaves no plaintext', () => {
    for (const len of [CHUNK_SIZE, 3 * 1024 * 1024 + 17, 1]) {
      const dek = newDataKey();
      const blobId = newBlobId();
      const plaintext = randomBytes(len);
      const params = { blobId, index: 4, keyGeneration: 2, final: len !== CHUNK_SIZE };
      const nonce = randomBytes(12);
      const header = encodeChunkHeader({ ...params, plaintextLength: len, nonce });
      const buf = Buffer.concat([Buffer.alloc(100, 0xcc), header, gcm(dek, nonce, header).encrypt(plaintext), Buffer.alloc(100, 0xcc)]);
      const sealed = buf.subarray(100, 100 + HEADER_SIZE + len + 16);
      const tampered = Buffer.from(buf);
      const opened = openChunkInto(dek, sealed, { ...params, plaintextLength: len }, sealed.subarray(HEADER_SIZE));
      expect([opened.buffer === buf.buffer, opened.byteOffset]).toEqual([true, buf.byteOffset + 100 + HEADER_SIZE]);
      expect(Buffer.from(opened).equals(plaintext)).toBe(true);
      expect(buf.subarray(0, 100).every((b) => b === 0xcc) && buf.subarray(buf.length - 100).every((b) => b === 0xcc)).toBe(true);

      const bad = tampered.subarray(100, 100 + HEADER_SIZE + len + 16);
      bad[bad.length - 1] = (bad[bad.length - 1] as number) ^ 1; // the tag
      expect(() => openChunkInto(dek, bad, { ...params, plaintextLength: len }, bad.subarray(HEADER_SIZE))).toThrow(expect.objectContaining({ code: 'CHUNK_AUTH_FAILED' }));
      expect(bad.subarray(HEADER_SIZE, HEADER_SIZE + len).every((b) => b === 0)).toBe(true);
      expect(bad.subarray(HEADER_SIZE, HEADER_SIZE + len).equals(plaintext)).toBe(false);
    }
  });

  it('refuses an output buffer that overlaps the sealed chunk other than exactly in place', () => {
    const dek = newDataKey();
    const blobId = newBlobId();
    const sealed = Buffer.from(sealChunkInto(dek, { blobId, index: 0, keyGeneration: 1, final: true }, randomBytes(5000), sealedBuf));
    const ok = { blobId, index: 0, keyGeneration: 1, final: true, plaintextLength: 5000 };
    for (const at of [0, HEADER_SIZE - 1, HEADER_SIZE + 1, 1000]) {
      expect(() => openChunkInto(dek, sealed, ok, sealed.subarray(at))).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    }
    const room = Buffer.alloc(20_000);
    room.set(sealed, 10_000);
    const apart = room.subarray(10_000, 10_000 + sealed.length);
    expect(Buffer.from(openChunkInto(dek, apart, ok, room.subarray(0, 5000))).length).toBe(5000); // same memory, no overlap
  });

  it('seals in place from plaintext at HEADER_SIZE of the output (noble opens it); any other overlap is refused', () => {
    const dek = newDataKey();
    const blobId = newBlobId();
    for (const len of [0, 1, 65_537, CHUNK_SIZE]) {
      const plaintext = randomBytes(len);
      const buf = Buffer.alloc(MAX_SEALED_SIZE, 0xee);
      plaintext.copy(buf, HEADER_SIZE);
      const params = { blobId, index: 0, keyGeneration: 1, final: true };
      const sealed = sealChunkInto(dek, params, buf.subarray(HEADER_SIZE, HEADER_SIZE + len), buf);
      const h = decodeChunkHeader(sealed);
      expect(Buffer.from(gcm(dek, h.nonce, sealed.subarray(0, HEADER_SIZE)).decrypt(sealed.subarray(HEADER_SIZE))).equals(plaintext)).toBe(true);
    }
    const buf = Buffer.alloc(MAX_SEALED_SIZE);
    const params = { blobId, index: 0, keyGeneration: 1, final: true };
    expect(() => sealChunkInto(dek, params, buf.subarray(0, 100), buf)).toThrow(/overlaps/);
    expect(() => sealChunkInto(dek, params, buf.subarray(HEADER_SIZE + 1, HEADER_SIZE + 101), buf)).toThrow(/overlaps/);
    expect(sealChunkInto(dek, params, buf.subarray(MAX_SEALED_SIZE - 100), buf.subarray(0, 164)).length).toBe(164); // apart
  });

  it('refuses what openChunk refuses, and buffers that are too small', () => {
    const dek = newDataKey();
    const blobId = newBlobId();
    const sealed = Buffer.from(sealChunkInto(dek, { blobId, index: 2, keyGeneration: 1, final: true }, randomBytes(1000), sealedBuf));
    const ok = { blobId, index: 2, keyGeneration: 1, final: true, plaintextLength: 1000 };
    expect(() => openChunkInto(dek, sealed, { ...ok, index: 3 }, plainBuf)).toThrow(expect.objectContaining({ code: 'CHUNK_MISMATCH' }));
    expect(() => openChunkInto(dek, sealed, { ...ok, blobId: newBlobId() }, plainBuf)).toThrow(expect.objectContaining({ code: 'CHUNK_MISMATCH' }));
    expect(() => openChunkInto(dek, sealed, { ...ok, final: false }, plainBuf)).toThrow(expect.objectContaining({ code: 'CHUNK_MISMATCH' }));
    expect(() => openChunkInto(newDataKey(), sealed, ok, plainBuf)).toThrow(expect.objectContaining({ code: 'CHUNK_AUTH_FAILED' }));
    expect(() => openChunkInto(dek, sealed.subarray(0, 500), ok, plainBuf)).toThrow(expect.objectContaining({ code: 'CHUNK_FORMAT' }));
    expect(() => openChunkInto(dek, sealed, ok, Buffer.alloc(999))).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => sealChunkInto(dek, { blobId, index: 0, keyGeneration: 1, final: true }, randomBytes(100), Buffer.alloc(163))).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    );
    expect(() => sealChunkInto(dek, { blobId, index: 0, keyGeneration: 1, final: true }, randomBytes(CHUNK_SIZE + 1), Buffer.alloc(MAX_SEALED_SIZE + 1))).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    );
  });
});

describe('sealStream with a buffer pool', () => {
  it('seals into pooled buffers, reuses released ones, and the chunks open to the source', async () => {
    const dek = newDataKey();
    const blobId = newBlobId();
    const source = randomBytes(3 * CHUNK_SIZE + 5);
    const pool = new BufferPool(MAX_SEALED_SIZE, 2);
    const seen = new Set<ArrayBufferLike>();
    const parts: Buffer[] = [];
    for await (const c of sealStream([source.subarray(0, 100), source.subarray(100)], dek, { blobId, keyGeneration: 1 }, { buffers: pool })) {
      seen.add(c.bytes.buffer);
      parts.push(Buffer.from(await openChunk(dek, c.bytes, { blobId, index: c.index, keyGeneration: 1, final: c.final })));
      c.release();
    }
    expect(Buffer.concat(parts).equals(source)).toBe(true);
    expect(parts.length).toBe(4);
    expect(seen.size).toBe(1); // each chunk released before the next: one buffer served all four
    expect(pool.kept).toBe(1);
  });

  it('refuses a pool whose buffers cannot hold a full sealed chunk', () => {
    expect(() => sealStream([], newDataKey(), { blobId: newBlobId(), keyGeneration: 1 }, { buffers: new BufferPool(CHUNK_SIZE, 2) })).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    );
  });
});
