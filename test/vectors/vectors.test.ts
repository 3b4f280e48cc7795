// Checks the committed vectors three ways: regenerated with the project code, regenerated with an independent
// AES-GCM (@noble/ciphers, pure JS, test-only) and a header encoder written here from DESIGN.md, and opened
// with the project's openChunk (valid ones open, invalid ones fail with the stated code).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gcm } from '@noble/ciphers/aes.js';
import { describe, expect, it } from 'vitest';
import { isCofferError } from '../../src/errors.js';
import { openChunk, sealChunk, unwrapDataKey, wrapDataKey } from '../../src/crypto/index.js';
import { CHUNK, PLAINTEXT_LABEL, buildVectors, shake, type HeaderFields } from './build.js';
import { buildChunkFile, buildKeyFileVector, type ChunkVectorFile } from './generate.js';
import { invalidVectors } from './invalid.js';

const committed = JSON.parse(readFileSync(new URL('chunk-v1.json', import.meta.url), 'utf8')) as ChunkVectorFile;
const committedKeyFile = JSON.parse(readFileSync(new URL('keyfile-v1.json', import.meta.url), 'utf8')) as ReturnType<typeof buildKeyFileVector>;
const fromHex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));

/** Header written straight from the DESIGN.md table, independent of src/crypto/chunk-header.ts. */
function independentHeader(h: HeaderFields): Uint8Array {
  const b = new Uint8Array(48);
  const v = new DataView(b.buffer);
  b.set([0x43, 0x46, 0x43, 0x31], 0);
  v.setUint8(4, 1);
  v.setUint8(5, h.final ? 1 : 0);
  v.setUint16(6, 0);
  b.set(h.blobId, 8);
  v.setUint32(24, h.index);
  v.setUint32(28, h.keyGeneration);
  v.setUint32(32, h.plaintextLength);
  b.set(h.nonce, 36);
  return b;
}

function nobleSeal(dek: Uint8Array, h: HeaderFields, plaintext: Uint8Array): Uint8Array {
  const header = independentHeader(h);
  const body = gcm(dek, h.nonce, header).encrypt(plaintext); // ciphertext ‖ tag
  const out = new Uint8Array(48 + body.length);
  out.set(header, 0);
  out.set(body, 48);
  return out;
}

describe('chunk format v1 test vectors', () => {
  it('regenerated with the project code equal the committed file', () => {
    expect(buildChunkFile()).toEqual(committed);
  });

  it('regenerated independently with @noble/ciphers equal the committed file', () => {
    const noble = buildVectors(nobleSeal);
    const one = noble.blobs.find((b) => b.name === 'one-byte');
    const file = { ...noble, invalid: invalidVectors(one?.chunks[0]?.sealed ?? '', one?.blobId ?? '', one?.keyGeneration ?? 0) };
    expect(file).toEqual(committed);
  });

  it('cover the cases the format must handle', () => {
    expect(committed.blobs.map((b) => [b.size, b.chunks.length])).toEqual([
      [0, 1], [1, 1], [CHUNK, 1], [CHUNK + 1, 2], [2 * CHUNK + 12345, 3],
    ]);
    expect(committed.blobs[0]?.chunks[0]?.sealedLength).toBe(64);
    expect(committed.blobs[2]?.chunks[0]?.sealedLength).toBe(CHUNK + 64);
  });

  it('open with openChunk to the committed plaintext (small chunks from the committed hex)', async () => {
    const dek = fromHex(committed.dek);
    let opened = 0;
    for (const blob of committed.blobs) {
      for (const c of blob.chunks) {
        if (c.sealed === undefined) continue;
        const pt = await openChunk(dek, fromHex(c.sealed), {
          blobId: fromHex(blob.blobId), index: c.index, keyGeneration: blob.keyGeneration, final: c.final,
          plaintextLength: c.plaintextLength,
        });
        expect(createHash('sha256').update(pt).digest('hex')).toBe(c.plaintextSha256);
        const offset = c.index * CHUNK; // chunk i holds bytes [i·8 MiB, …) of the plaintext stream
        expect(Buffer.from(pt)).toEqual(shake(PLAINTEXT_LABEL, offset + c.plaintextLength).subarray(offset));
        opened++;
      }
    }
    expect(opened).toBe(3); // empty, one-byte, and the 1-byte second chunk of 8MiB-plus-1
  });

  it('random-nonce sealChunk differs from the vector only in nonce, ciphertext and tag', async () => {
    const blob = committed.blobs.find((b) => b.name === 'one-byte');
    const c = blob?.chunks[0];
    if (!blob || !c?.sealed) throw new Error('missing one-byte vector');
    const sealed = await sealChunk(fromHex(committed.dek), {
      blobId: fromHex(blob.blobId), index: 0, keyGeneration: blob.keyGeneration, final: true,
    }, shake(PLAINTEXT_LABEL, 1));
    expect(Buffer.from(sealed.subarray(0, 36)).toString('hex')).toBe(c.header.slice(0, 72));
    expect(Buffer.from(sealed.subarray(36, 48)).toString('hex')).not.toBe(c.nonce);
  });

  it('invalid vectors fail with their stated code', async () => {
    const dek = fromHex(committed.dek);
    expect(committed.invalid.length).toBeGreaterThan(15);
    for (const v of committed.invalid) {
      const result = openChunk(dek, fromHex(v.sealed), { ...v.expect, blobId: fromHex(v.expect.blobId) });
      await expect(result, v.name).rejects.toSatisfy((e: unknown) => isCofferError(e, v.error));
    }
  });
});

describe('key file (KeyRecord v1) test vector', () => {
  it('regenerated with the project code equals the committed file', () => {
    expect(buildKeyFileVector()).toEqual(committedKeyFile);
  });

  it('matches an independent AES-GCM wrap (@noble/ciphers) and unwraps', () => {
    const v = committedKeyFile as unknown as {
      kek: string; dek: string; blobId: string; nonce: string; aad: string; record: { wrapped: string; kekId: string };
    };
    expect(Buffer.from(fromHex(v.aad)).toString('latin1')).toBe(`coffer/keyrecord|keyfile|1|${v.blobId}`);
    const wrapped = gcm(fromHex(v.kek), fromHex(v.nonce), fromHex(v.aad)).encrypt(fromHex(v.dek));
    expect(Buffer.from(wrapped).toString('base64')).toBe(v.record.wrapped);
    const kekId = createHash('sha256').update('coffer/kek-id/v1\0', 'latin1').update(fromHex(v.kek)).digest('hex').slice(0, 16);
    expect(v.record.kekId).toBe(kekId);
    expect(Buffer.from(unwrapDataKey(fromHex(v.kek), v.record, v.blobId)).toString('hex')).toBe(v.dek);
    // a fresh wrap of the same key opens too, and uses another nonce
    const again = wrapDataKey(fromHex(v.kek), fromHex(v.dek), v.blobId);
    expect(again.nonce).not.toBe(Buffer.from(fromHex(v.nonce)).toString('base64'));
    expect(Buffer.from(unwrapDataKey(fromHex(v.kek), again, v.blobId)).toString('hex')).toBe(v.dek);
  });
});
