// The uploader's binding tag: keyed by the data key, it binds blob, path, owner and size; anything else fails.
import { describe, expect, it } from 'vitest';
import { uploadBindingTag, verifyUploadBindingTag } from './index.js';

const dek = new Uint8Array(32).fill(3);
const b = { blobId: '0a'.repeat(16), path: '/docs/a.bin', owner: 'alice', size: 10 };

describe('upload binding tag', () => {
  it('verifies for exactly the blob, path, owner and size it was made for, under the same data key', () => {
    const tag = uploadBindingTag(dek, b);
    expect(tag).toMatch(/^ub1\.[0-9a-f]{64}$/);
    expect(verifyUploadBindingTag(dek, b, tag)).toBe(true);
    for (const change of [{ blobId: '0b'.repeat(16) }, { path: '/docs/b.bin' }, { path: '/docs/a.bi' }, { owner: 'mallory' }, { size: 11 }]) {
      expect(verifyUploadBindingTag(dek, { ...b, ...change }, tag), JSON.stringify(change)).toBe(false);
    }
    // field boundaries are encoded: moving a character from the path to the owner changes the tag
    expect(verifyUploadBindingTag(dek, { ...b, path: '/docs/a.bina', owner: 'lice' }, tag)).toBe(false);
    expect(verifyUploadBindingTag(new Uint8Array(32).fill(4), b, tag)).toBe(false);
    for (const bad of [undefined, '', tag.toUpperCase(), tag.slice(0, -1), `ub2.${tag.slice(4)}`]) expect(verifyUploadBindingTag(dek, b, bad)).toBe(false);
    expect(() => uploadBindingTag(new Uint8Array(16), b)).toThrow(/32-byte/);
  });
});
