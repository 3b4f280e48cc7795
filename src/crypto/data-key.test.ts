// A data key handed over as a KeyObject (data-key.ts) must give byte-for-byte what its raw bytes give: the same
// chunks (checked by an independent AES-GCM, @noble/ciphers), the same upload binding tags, the same refusals;
// and key-file wrapping through the wrapper's KeyObject must unwrap with the raw KEK.
import { gcm } from '@noble/ciphers/aes.js';
import { createSecretKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  HEADER_SIZE, blobIdToHex, checkDek, dataKeyObject, dataKeyWrapper, decodeChunkHeader, newBlobId, newDataKey, openChunk, openChunkInto,
  sealChunkInto, sealedSize, unwrapDataKey, uploadBindingTag, verifyUploadBindingTag,
} from './index.js';

describe('data keys as KeyObjects', () => {
  it('seals what noble and the raw-key paths open, and opens what the raw key sealed', async () => {
    for (const len of [0, 1, 16_384, 100_000]) {
      const dek = newDataKey();
      const key = dataKeyObject(dek);
      const blobId = newBlobId();
      const plaintext = randomBytes(len);
      const params = { blobId, index: 0, keyGeneration: 1, final: true };
      const sealed = Buffer.from(sealChunkInto(key, params, plaintext, Buffer.alloc(sealedSize(len))));
      const h = decodeChunkHeader(sealed);
      expect(Buffer.from(gcm(dek, h.nonce, sealed.subarray(0, HEADER_SIZE)).decrypt(sealed.subarray(HEADER_SIZE))).equals(plaintext)).toBe(true);
      expect(Buffer.from(await openChunk(dek, sealed, { blobId, index: 0, keyGeneration: 1, final: true })).equals(plaintext)).toBe(true);
      const sealedRaw = sealChunkInto(dek, params, plaintext, Buffer.alloc(sealedSize(len)));
      const out = Buffer.alloc(len);
      expect(Buffer.from(openChunkInto(key, sealedRaw, { blobId, index: 0, keyGeneration: 1, final: true }, out)).equals(plaintext)).toBe(true);
    }
  });

  it('refuses a chunk sealed under another key, as with raw bytes', () => {
    const blobId = newBlobId();
    const sealed = sealChunkInto(dataKeyObject(newDataKey()), { blobId, index: 0, keyGeneration: 1, final: true }, Buffer.from('x'), Buffer.alloc(65));
    expect(() => openChunkInto(dataKeyObject(newDataKey()), sealed, { blobId, index: 0, keyGeneration: 1 }, Buffer.alloc(1))).toThrow(
      expect.objectContaining({ code: 'CHUNK_AUTH_FAILED' }),
    );
  });

  it('gives the same upload binding tag as the raw key', () => {
    const dek = newDataKey();
    const b = { blobId: blobIdToHex(newBlobId()), path: '/a/b', owner: 'alice', size: 42 };
    const tag = uploadBindingTag(dataKeyObject(dek), b);
    expect(tag).toBe(uploadBindingTag(dek, b));
    expect(verifyUploadBindingTag(dek, b, tag)).toBe(true);
    expect(verifyUploadBindingTag(dataKeyObject(newDataKey()), b, tag)).toBe(false);
  });

  it('refuses keys of another size or kind (KEY_INVALID)', () => {
    const bad = [new Uint8Array(16), createSecretKey(randomBytes(16)), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey];
    for (const k of bad) {
      expect(() => checkDek(k)).toThrow(expect.objectContaining({ code: 'KEY_INVALID' }));
      expect(() => uploadBindingTag(k, { blobId: 'x', path: '/a', owner: 'o', size: 1 })).toThrow(expect.objectContaining({ code: 'KEY_INVALID' }));
    }
    expect(() => dataKeyObject(new Uint8Array(31))).toThrow(expect.objectContaining({ code: 'KEY_INVALID' }));
  });

  it('wraps through the wrapper\'s KeyObject what the raw KEK unwraps', () => {
    const kek = randomBytes(32);
    const dek = newDataKey();
    const blob = blobIdToHex(newBlobId());
    const record = dataKeyWrapper(kek)(dek, blob);
    expect(Buffer.from(unwrapDataKey(kek, record, blob)).equals(Buffer.from(dek))).toBe(true);
    expect(() => unwrapDataKey(randomBytes(32), record, blob)).toThrow(expect.objectContaining({ code: 'KEY_INVALID' }));
  });
});
