// The hot path (WebCrypto, random nonce made inside) checked against an independent AES-GCM: @noble/ciphers'
// pure-JS gcm (test-only). Chunks sealed by sealChunk open with noble; chunks sealed by noble open with
// openChunk; and a one-bit change is refused by both.
import { gcm } from '@noble/ciphers/aes.js';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CHUNK_SIZE, HEADER_SIZE, decodeChunkHeader, encodeChunkHeader, newBlobId, newDataKey, openChunk, sealChunk } from './index.js';

describe('WebCrypto hot path vs @noble/ciphers', () => {
  it('sealChunk output opens with noble gcm (nonce from the header, AAD = the header)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 70_000 }), fc.integer({ min: 0, max: 1000 }), async (len, index) => {
        const dek = newDataKey();
        const blobId = newBlobId();
        const plaintext = randomBytes(len);
        const sealed = await sealChunk(dek, { blobId, index: len === 0 ? 0 : index, keyGeneration: 3, final: true }, plaintext);
        const h = decodeChunkHeader(sealed);
        const opened = gcm(dek, h.nonce, sealed.subarray(0, HEADER_SIZE)).decrypt(sealed.subarray(HEADER_SIZE));
        expect(Buffer.from(opened).equals(plaintext)).toBe(true);
      }),
      { numRuns: 40 },
    );
  });

  it('a full 8 MiB chunk sealed by noble opens with openChunk, and a flipped bit is refused', async () => {
    const dek = newDataKey();
    const blobId = newBlobId();
    const plaintext = randomBytes(CHUNK_SIZE);
    const nonce = randomBytes(12);
    const header = encodeChunkHeader({ blobId, index: 7, keyGeneration: 1, plaintextLength: CHUNK_SIZE, final: false, nonce });
    const body = gcm(dek, nonce, header).encrypt(plaintext);
    const sealed = Buffer.concat([header, body]);
    const opened = await openChunk(dek, sealed, { blobId, index: 7, keyGeneration: 1, final: false });
    expect(Buffer.from(opened).equals(plaintext)).toBe(true);
    sealed[HEADER_SIZE + 12345] = (sealed[HEADER_SIZE + 12345] as number) ^ 0x80;
    await expect(openChunk(dek, sealed, { blobId, index: 7, keyGeneration: 1 })).rejects.toMatchObject({ code: 'CHUNK_AUTH_FAILED' });
  });

  it('every seal uses a fresh nonce', async () => {
    const dek = newDataKey();
    const blobId = newBlobId();
    const nonces = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const sealed = await sealChunk(dek, { blobId, index: 0, keyGeneration: 1, final: true }, new Uint8Array(16));
      nonces.add(Buffer.from(decodeChunkHeader(sealed).nonce).toString('hex'));
    }
    expect(nonces.size).toBe(200);
  });
});
