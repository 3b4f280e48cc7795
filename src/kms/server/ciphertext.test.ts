// The ciphertext blob v1 layout (docs/kms.md) and the canonical encryption-context encoding.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BLOB_HEADER_LEN, BlobFormatError, canonicalContext, openBlob, parseBlobHeader, sealBlob, uuidToBytes } from './ciphertext.js';

const keyId = uuidToBytes('11111111-2222-4333-8444-555555555555');
const materialId = randomBytes(16);
const material = randomBytes(32);

describe('ciphertext blob v1', () => {
  it('lays out magic, version, key id, material id, nonce, ciphertext, tag', () => {
    const blob = sealBlob({ keyId, materialId }, material, Buffer.from('abc'), { 'coffer:blob': 'ab' });
    expect(blob.subarray(0, 5)).toEqual(Buffer.from([0x43, 0x46, 0x4b, 0x4d, 1]));
    expect(blob.subarray(5, 21)).toEqual(keyId);
    expect(blob.subarray(21, 37)).toEqual(materialId);
    expect(blob.length).toBe(BLOB_HEADER_LEN + 3 + 16);
    expect(parseBlobHeader(blob).materialId).toEqual(materialId);
    expect(openBlob(blob, material, { 'coffer:blob': 'ab' }).toString()).toBe('abc');
  });

  it('binds the context canonically: order-independent, length-prefixed, absent = empty', () => {
    expect(canonicalContext({ b: '2', a: '1' })).toEqual(canonicalContext({ a: '1', b: '2' }));
    expect(canonicalContext({ ab: 'c' })).not.toEqual(canonicalContext({ a: 'bc' }));
    expect(canonicalContext(undefined)).toEqual(canonicalContext({}));
    expect(canonicalContext({ k: 'v' }).toString('hex')).toBe('00000001' + '00000001' + '6b' + '00000001' + '76');
    const blob = sealBlob({ keyId, materialId }, material, Buffer.from('x'), { ab: 'c' });
    expect(() => openBlob(blob, material, { a: 'bc' })).toThrow(BlobFormatError);
    expect(() => openBlob(blob, material, undefined)).toThrow(BlobFormatError);
    expect(() => openBlob(blob, randomBytes(32), { ab: 'c' })).toThrow(BlobFormatError);
  });

  it('rejects other versions, magic and short blobs before any crypto', () => {
    const blob = sealBlob({ keyId, materialId }, material, Buffer.from('x'), undefined);
    const v2 = Buffer.from(blob);
    v2[4] = 2;
    expect(() => parseBlobHeader(v2)).toThrow(/version 2/);
    expect(() => parseBlobHeader(Buffer.concat([Buffer.from('XXXX'), blob.subarray(4)]))).toThrow(/not a Coffer/);
    expect(() => parseBlobHeader(blob.subarray(0, 40))).toThrow(/too short/);
    expect(() => sealBlob({ keyId, materialId }, material, Buffer.alloc(4097), undefined)).toThrow(RangeError);
  });
});
