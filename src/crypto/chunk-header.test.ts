// Unit tests for the chunk header codec, the layout helpers and blob id strings.
import { describe, expect, it } from 'vitest';
import { isCofferError, type ErrorCode } from '../errors.js';
import {
  CHUNK_SIZE, HEADER_SIZE, MAX_U32, decodeChunkHeader, encodeChunkHeader, expectedChunkLayout, sealedSize,
  type ChunkHeader,
} from './chunk-header.js';
import { blobIdFromHex, blobIdToHex, isBlobIdHex, newBlobId } from './blob-id.js';

const base: ChunkHeader = {
  blobId: Uint8Array.from({ length: 16 }, (_, i) => i + 1),
  index: 0x01020304,
  keyGeneration: 0x0a0b0c0d,
  plaintextLength: 5,
  final: true,
  nonce: Uint8Array.from({ length: 12 }, (_, i) => 0xf0 + i),
};

function throwsCode(fn: () => unknown, code: ErrorCode): void {
  expect(fn).toThrow();
  try {
    fn();
  } catch (e) {
    expect(isCofferError(e, code), String(e)).toBe(true);
  }
}

describe('chunk header', () => {
  it('encodes every field at its DESIGN.md offset, big-endian', () => {
    const b = Buffer.from(encodeChunkHeader(base));
    expect(b.length).toBe(HEADER_SIZE);
    expect(b.toString('hex')).toBe(
      '43464331' + '01' + '01' + '0000' + '0102030405060708090a0b0c0d0e0f10' + '01020304' + '0a0b0c0d' + '00000005' +
      'f0f1f2f3f4f5f6f7f8f9fafb',
    );
  });

  it('round-trips', () => {
    expect(decodeChunkHeader(encodeChunkHeader(base))).toEqual(base);
    const full = { ...base, final: false, plaintextLength: CHUNK_SIZE, index: MAX_U32, keyGeneration: 0 };
    expect(decodeChunkHeader(encodeChunkHeader(full))).toEqual(full);
  });

  it('reads only the first 48 bytes of a longer buffer and copies out the arrays', () => {
    const b = new Uint8Array(100);
    b.set(encodeChunkHeader(base));
    const h = decodeChunkHeader(b);
    b.fill(0);
    expect(h).toEqual(base);
  });

  it.each([
    ['short input', (b: Uint8Array) => b.subarray(0, 47)],
    ['bad magic', (b: Uint8Array) => { b[3] = 0x32; return b; }],
    ['version 2', (b: Uint8Array) => { b[4] = 2; return b; }],
    ['unknown flag bit', (b: Uint8Array) => { b[5] = 0x02 | 0x01; return b; }],
    ['reserved non-zero', (b: Uint8Array) => { b[7] = 1; return b; }],
    ['length above 8 MiB', (b: Uint8Array) => { new DataView(b.buffer).setUint32(32, CHUNK_SIZE + 1); return b; }],
    ['short non-final chunk', (b: Uint8Array) => { b[5] = 0; return b; }],
    ['empty chunk at index > 0', (b: Uint8Array) => { new DataView(b.buffer).setUint32(32, 0); return b; }],
  ])('rejects %s with CHUNK_FORMAT', (_name, edit) => {
    throwsCode(() => decodeChunkHeader(edit(encodeChunkHeader(base))), 'CHUNK_FORMAT');
  });

  it('refuses to encode fields a reader would reject', () => {
    throwsCode(() => encodeChunkHeader({ ...base, blobId: new Uint8Array(15) }), 'CHUNK_FORMAT');
    throwsCode(() => encodeChunkHeader({ ...base, nonce: new Uint8Array(16) }), 'CHUNK_FORMAT');
    throwsCode(() => encodeChunkHeader({ ...base, index: -1 }), 'CHUNK_FORMAT');
    throwsCode(() => encodeChunkHeader({ ...base, keyGeneration: MAX_U32 + 1 }), 'CHUNK_FORMAT');
    throwsCode(() => encodeChunkHeader({ ...base, plaintextLength: 1.5 }), 'CHUNK_FORMAT');
    throwsCode(() => encodeChunkHeader({ ...base, final: false }), 'CHUNK_FORMAT');
    throwsCode(() => encodeChunkHeader({ ...base, final: undefined as unknown as boolean }), 'CHUNK_FORMAT');
  });
});

describe('layout', () => {
  it('sealedSize adds 64 bytes and checks the range', () => {
    expect(sealedSize(0)).toBe(64);
    expect(sealedSize(CHUNK_SIZE)).toBe(CHUNK_SIZE + 64);
    throwsCode(() => sealedSize(CHUNK_SIZE + 1), 'INVALID_ARGUMENT');
  });

  it.each([
    [0, [0]],
    [1, [1]],
    [CHUNK_SIZE - 1, [CHUNK_SIZE - 1]],
    [CHUNK_SIZE, [CHUNK_SIZE]],
    [CHUNK_SIZE + 1, [CHUNK_SIZE, 1]],
    [3 * CHUNK_SIZE, [CHUNK_SIZE, CHUNK_SIZE, CHUNK_SIZE]],
  ])('size %i → %j', (size, lengths) => {
    const l = expectedChunkLayout(size);
    expect(l.chunkCount).toBe(lengths.length);
    expect(l.lengths()).toEqual(lengths);
    expect(l.lastChunkLength).toBe(lengths.at(-1));
    expect(l.offsetOf(l.chunkCount - 1)).toBe((l.chunkCount - 1) * CHUNK_SIZE);
    throwsCode(() => l.plaintextLengthOf(l.chunkCount), 'INVALID_ARGUMENT');
  });

  it('handles huge sizes without allocating and rejects bad ones', () => {
    const l = expectedChunkLayout(2 ** 45 + 7);
    expect(l.chunkCount).toBe(2 ** 22 + 1);
    expect(l.plaintextLengthOf(2 ** 22)).toBe(7);
    throwsCode(() => expectedChunkLayout(-1), 'INVALID_ARGUMENT');
    throwsCode(() => expectedChunkLayout(0.5), 'INVALID_ARGUMENT');
    throwsCode(() => expectedChunkLayout(2 ** 53), 'INVALID_ARGUMENT');
  });
});

describe('blob ids', () => {
  it('convert strictly between 16 bytes and 32 lowercase hex', () => {
    const id = newBlobId();
    expect(id.length).toBe(16);
    const hex = blobIdToHex(id);
    expect(hex).toMatch(/^[0-9a-f]{32}$/);
    expect(blobIdFromHex(hex)).toEqual(id);
    expect(isBlobIdHex(hex)).toBe(true);
    expect(blobIdToHex(newBlobId())).not.toBe(hex);
  });

  it.each(['', 'ABCDEF0123456789abcdef0123456789', '0x' + '0'.repeat(30), '0'.repeat(31), '0'.repeat(33), 'g'.repeat(32)])(
    'rejects %j', (bad) => {
      throwsCode(() => blobIdFromHex(bad), 'INVALID_ARGUMENT');
      expect(isBlobIdHex(bad)).toBe(false);
    },
  );

  it('rejects byte arrays of the wrong length', () => {
    throwsCode(() => blobIdToHex(new Uint8Array(17)), 'INVALID_ARGUMENT');
  });
});
