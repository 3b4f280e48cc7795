// Unit tests for sealChunk/openChunk: round trips, the order of checks, and that nothing unauthenticated leaks.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isCofferError, type ErrorCode } from '../errors.js';
import { CHUNK_SIZE, HEADER_SIZE, TAG_SIZE, decodeChunkHeader } from './chunk-header.js';
import { openChunk, sealChunk, sealChunkWithFixedNonceForTestVectors } from './chunk.js';
import { newBlobId } from './blob-id.js';

const dek = new Uint8Array(randomBytes(32));
const blobId = newBlobId();

async function rejectsCode(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await expect(p).rejects.toSatisfy((e: unknown) => isCofferError(e, code));
}

describe('sealChunk / openChunk', () => {
  it('round-trips a short final chunk and a full 8 MiB chunk', async () => {
    const small = new Uint8Array(randomBytes(1000));
    const s1 = await sealChunk(dek, { blobId, index: 3, keyGeneration: 9, final: true }, small);
    expect(s1.length).toBe(HEADER_SIZE + 1000 + TAG_SIZE);
    expect(await openChunk(dek, s1, { blobId, index: 3, keyGeneration: 9, final: true, plaintextLength: 1000 })).toEqual(Buffer.from(small));

    const full = new Uint8Array(randomBytes(CHUNK_SIZE));
    const s2 = await sealChunk(dek, { blobId, index: 0, keyGeneration: 1, final: false }, full);
    expect(s2.length).toBe(CHUNK_SIZE + 64);
    const back = await openChunk(dek, s2, { blobId, index: 0, keyGeneration: 1, final: false });
    expect(Buffer.compare(back, full)).toBe(0);
  });

  it('round-trips the empty chunk of an empty blob', async () => {
    const s = await sealChunk(dek, { blobId, index: 0, keyGeneration: 0, final: true }, new Uint8Array(0));
    expect(s.length).toBe(64);
    expect((await openChunk(dek, s, { blobId, index: 0, keyGeneration: 0, final: true })).length).toBe(0);
  });

  it('makes a fresh nonce for every call', async () => {
    const pt = new Uint8Array(10);
    const nonces = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const s = await sealChunk(dek, { blobId, index: 0, keyGeneration: 0, final: true }, pt);
      nonces.add(Buffer.from(decodeChunkHeader(s).nonce).toString('hex'));
    }
    expect(nonces.size).toBe(50);
  });

  it('rejects bad arguments before doing any work', async () => {
    const p = { blobId, index: 0, keyGeneration: 0, final: true };
    await rejectsCode(sealChunk(new Uint8Array(16), p, new Uint8Array(1)), 'KEY_INVALID');
    await rejectsCode(sealChunk(dek, p, new Uint8Array(CHUNK_SIZE + 1)), 'INVALID_ARGUMENT');
    await rejectsCode(sealChunk(dek, { ...p, final: false }, new Uint8Array(10)), 'INVALID_ARGUMENT');
    await rejectsCode(sealChunk(dek, { ...p, index: 1 }, new Uint8Array(0)), 'INVALID_ARGUMENT');
    await rejectsCode(sealChunk(dek, { ...p, blobId: new Uint8Array(8) }, new Uint8Array(1)), 'INVALID_ARGUMENT');
    await rejectsCode(sealChunk(dek, { ...p, keyGeneration: 2 ** 32 }, new Uint8Array(1)), 'INVALID_ARGUMENT');
    await rejectsCode(openChunk(new Uint8Array(31), new Uint8Array(64), { blobId, index: 0, keyGeneration: 0 }), 'KEY_INVALID');
  });

  it('checks lengths, then header fields, then the tag', async () => {
    const pt = new Uint8Array(randomBytes(100));
    const s = await sealChunk(dek, { blobId, index: 5, keyGeneration: 2, final: true }, pt);
    const expectOk = { blobId, index: 5, keyGeneration: 2 };
    await rejectsCode(openChunk(dek, s.subarray(0, 63), expectOk), 'CHUNK_FORMAT');
    await rejectsCode(openChunk(dek, s.subarray(0, s.length - 1), expectOk), 'CHUNK_FORMAT');
    await rejectsCode(openChunk(dek, s, { ...expectOk, blobId: newBlobId() }), 'CHUNK_MISMATCH');
    await rejectsCode(openChunk(dek, s, { ...expectOk, index: 6 }), 'CHUNK_MISMATCH');
    await rejectsCode(openChunk(dek, s, { ...expectOk, keyGeneration: 3 }), 'CHUNK_MISMATCH');
    await rejectsCode(openChunk(dek, s, { ...expectOk, final: false }), 'CHUNK_MISMATCH');
    await rejectsCode(openChunk(dek, s, { ...expectOk, plaintextLength: 99 }), 'CHUNK_MISMATCH');
    await rejectsCode(openChunk(new Uint8Array(randomBytes(32)), s, expectOk), 'CHUNK_AUTH_FAILED');
    const tampered = Uint8Array.from(s);
    tampered[HEADER_SIZE + 10] = (tampered[HEADER_SIZE + 10] ?? 0) ^ 1;
    await rejectsCode(openChunk(dek, tampered, expectOk), 'CHUNK_AUTH_FAILED');
  });

  it('the fixed-nonce entry point works in tests and reproduces a chunk exactly', async () => {
    const nonce = new Uint8Array(12).fill(7);
    const p = { blobId, index: 0, keyGeneration: 0, final: true };
    const a = sealChunkWithFixedNonceForTestVectors(dek, p, new Uint8Array(3), nonce);
    const b = sealChunkWithFixedNonceForTestVectors(dek, p, new Uint8Array(3), nonce);
    expect(Buffer.compare(a, b)).toBe(0);
  });

  it('the fixed-nonce entry point refuses outside test mode', () => {
    const saved = process.env.VITEST;
    delete process.env.VITEST;
    try {
      expect(() => sealChunkWithFixedNonceForTestVectors(dek, { blobId, index: 0, keyGeneration: 0, final: true },
        new Uint8Array(1), new Uint8Array(12))).toThrow(/test vectors only/);
    } finally {
      process.env.VITEST = saved;
    }
  });
});
