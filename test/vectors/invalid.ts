// Invalid-chunk vectors: each is the committed "one-byte" chunk with one deliberate defect, and the error code a
// v1 reader must answer with. Derived from the valid vector, so they need no generator of their own.
export interface InvalidVector {
  name: string;
  /** Sealed bytes, hex. */
  sealed: string;
  /** What the reader expects (blob id hex, index, key generation, final). */
  expect: { blobId: string; index: number; keyGeneration: number; final: boolean };
  error: 'CHUNK_FORMAT' | 'CHUNK_MISMATCH' | 'CHUNK_AUTH_FAILED';
}

type Edit = (b: Buffer) => Buffer;

const setByte = (offset: number, value: number): Edit => (b) => { b[offset] = value; return b; };
const xorByte = (offset: number, mask: number): Edit => (b) => { b[offset] = (b[offset] ?? 0) ^ mask; return b; };
const setU32 = (offset: number, value: number): Edit => (b) => { b.writeUInt32BE(value, offset); return b; };

/** Builds the invalid vectors from the valid one-byte chunk (65 bytes: header ‖ 1 ciphertext byte ‖ tag). */
export function invalidVectors(oneByteSealedHex: string, blobIdHex: string, keyGeneration: number): InvalidVector[] {
  const expect = { blobId: blobIdHex, index: 0, keyGeneration, final: true };
  const cases: Array<[string, Edit, InvalidVector['error'], Partial<InvalidVector['expect']>?]> = [
    ['bad magic', setByte(0, 0x44), 'CHUNK_FORMAT'],
    ['version 2', setByte(4, 2), 'CHUNK_FORMAT'],
    ['version 0', setByte(4, 0), 'CHUNK_FORMAT'],
    ['unknown flag bit 1', setByte(5, 0x03), 'CHUNK_FORMAT'],
    ['unknown flag bit 7', setByte(5, 0x81), 'CHUNK_FORMAT'],
    ['reserved byte 6 non-zero', setByte(6, 1), 'CHUNK_FORMAT'],
    ['reserved byte 7 non-zero', setByte(7, 0x80), 'CHUNK_FORMAT'],
    ['length above 8 MiB', setU32(32, 8 * 1024 * 1024 + 1), 'CHUNK_FORMAT'],
    ['length disagrees with file size', setU32(32, 2), 'CHUNK_FORMAT'],
    ['non-final chunk shorter than 8 MiB', setByte(5, 0), 'CHUNK_FORMAT'],
    ['truncated by one byte', (b) => b.subarray(0, b.length - 1), 'CHUNK_FORMAT'],
    ['one byte appended', (b) => Buffer.concat([b, Buffer.of(0)]), 'CHUNK_FORMAT'],
    ['header only', (b) => b.subarray(0, 48), 'CHUNK_FORMAT'],
    ['other blob id', xorByte(8, 0x01), 'CHUNK_MISMATCH'],
    ['other index', setU32(24, 1), 'CHUNK_MISMATCH'],
    ['other key generation', setU32(28, keyGeneration + 1), 'CHUNK_MISMATCH'],
    ['nonce bit flipped', xorByte(36, 0x01), 'CHUNK_AUTH_FAILED'],
    ['ciphertext bit flipped', xorByte(48, 0x80), 'CHUNK_AUTH_FAILED'],
    ['tag bit flipped', xorByte(64, 0x01), 'CHUNK_AUTH_FAILED'],
    ['expected at index 1', (b) => b, 'CHUNK_MISMATCH', { index: 1 }],
    ['expected non-final', (b) => b, 'CHUNK_MISMATCH', { final: false }],
  ];
  return cases.map(([name, edit, error, over]) => ({
    name,
    sealed: edit(Buffer.from(oneByteSealedHex, 'hex')).toString('hex'),
    expect: { ...expect, ...over },
    error,
  }));
}
