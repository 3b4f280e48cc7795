// Chunk format v1: constants, the 48-byte header codec and the chunk layout of a blob.
// Normative source: DESIGN.md "Chunk format v1"; the byte-level description is docs/format.md.
// Every chunk file is header(48) ‖ ciphertext ‖ tag(16); the header is also the AES-GCM AAD.
import { CofferError, ErrorCode } from '../errors.js';

/** Plaintext bytes per chunk (8 MiB). Every chunk but the last of a blob is exactly this long. */
export const CHUNK_SIZE = 8 * 1024 * 1024;
export const HEADER_SIZE = 48;
export const TAG_SIZE = 16;
export const NONCE_SIZE = 12;
export const BLOB_ID_SIZE = 16;
export const DEK_SIZE = 32;
/** `CFC1` = 0x43 0x46 0x43 0x31 (DESIGN.md: offset 0, 4 bytes, ASCII). */
export const MAGIC = 'CFC1';
const MAGIC_BYTES = Buffer.from(MAGIC, 'latin1');
export const VERSION = 1;
/** flags bit 0: last chunk of the blob. Every other flag bit must be 0. */
export const FLAG_FINAL = 0x01;
/** Largest sealed chunk: 8 MiB + 64 bytes. */
export const MAX_SEALED_SIZE = HEADER_SIZE + CHUNK_SIZE + TAG_SIZE;
/** Chunk index and key generation are u32. */
export const MAX_U32 = 0xffff_ffff;

// Field offsets (DESIGN.md table).
const OFF_VERSION = 4;
const OFF_FLAGS = 5;
const OFF_RESERVED = 6;
const OFF_BLOB_ID = 8;
const OFF_INDEX = 24;
const OFF_KEY_GENERATION = 28;
const OFF_LENGTH = 32;
const OFF_NONCE = 36;

export interface ChunkHeader {
  /** 16 bytes. */
  blobId: Uint8Array;
  /** u32. */
  index: number;
  /** u32. */
  keyGeneration: number;
  /** 0..CHUNK_SIZE; CHUNK_SIZE unless final; 0 only for chunk 0 of an empty blob. */
  plaintextLength: number;
  final: boolean;
  /** 12 bytes. */
  nonce: Uint8Array;
}

function formatError(message: string): CofferError {
  return new CofferError(ErrorCode.CHUNK_FORMAT, `chunk header: ${message}`);
}

function isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= MAX_U32;
}

/**
 * Checks the rules a header must satisfy beyond its byte layout (also applied before sealing, so no writer
 * can produce a chunk that no reader accepts). Throws CHUNK_FORMAT.
 */
export function checkHeaderFields(h: ChunkHeader): void {
  if (!(h.blobId instanceof Uint8Array) || h.blobId.length !== BLOB_ID_SIZE) throw formatError('blob id must be 16 bytes');
  if (!(h.nonce instanceof Uint8Array) || h.nonce.length !== NONCE_SIZE) throw formatError('nonce must be 12 bytes');
  if (typeof h.final !== 'boolean') throw formatError('final must be a boolean');
  if (!isU32(h.index)) throw formatError(`chunk index ${h.index} is not a u32`);
  if (!isU32(h.keyGeneration)) throw formatError(`key generation ${h.keyGeneration} is not a u32`);
  if (!Number.isInteger(h.plaintextLength) || h.plaintextLength < 0 || h.plaintextLength > CHUNK_SIZE) {
    throw formatError(`plaintext length ${h.plaintextLength} is outside 0..${CHUNK_SIZE}`);
  }
  // Chunk i holds bytes [i·8 MiB, min((i+1)·8 MiB, size)): only the last chunk may be short, and only the
  // single chunk of an empty blob may be empty.
  if (!h.final && h.plaintextLength !== CHUNK_SIZE) throw formatError('a non-final chunk must hold exactly 8 MiB');
  if (h.plaintextLength === 0 && h.index !== 0) throw formatError('only chunk 0 of an empty blob may be empty');
}

/** Writes the 48-byte header into `target[0..48)`. Throws CHUNK_FORMAT on an invalid field. */
export function encodeChunkHeaderInto(h: ChunkHeader, target: Uint8Array): void {
  checkHeaderFields(h);
  if (target.length < HEADER_SIZE) throw formatError('target buffer shorter than 48 bytes');
  const view = new DataView(target.buffer, target.byteOffset, HEADER_SIZE);
  target.set(MAGIC_BYTES, 0);
  view.setUint8(OFF_VERSION, VERSION);
  view.setUint8(OFF_FLAGS, h.final ? FLAG_FINAL : 0);
  view.setUint16(OFF_RESERVED, 0);
  target.set(h.blobId, OFF_BLOB_ID);
  view.setUint32(OFF_INDEX, h.index, false);
  view.setUint32(OFF_KEY_GENERATION, h.keyGeneration, false);
  view.setUint32(OFF_LENGTH, h.plaintextLength, false);
  target.set(h.nonce, OFF_NONCE);
}

/** Encodes a header to a new 48-byte array. Throws CHUNK_FORMAT on an invalid field. */
export function encodeChunkHeader(h: ChunkHeader): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE);
  encodeChunkHeaderInto(h, out);
  return out;
}

/**
 * Decodes and validates the header at `bytes[0..48)` (longer input, such as a whole chunk, is fine; only
 * the first 48 bytes are read). Returned arrays are copies. Throws CHUNK_FORMAT on unknown magic or version,
 * non-zero reserved bits or bytes, a length above 8 MiB, or field combinations the layout forbids.
 */
export function decodeChunkHeader(bytes: Uint8Array): ChunkHeader {
  if (bytes.length < HEADER_SIZE) throw formatError(`need ${HEADER_SIZE} bytes, got ${bytes.length}`);
  for (let i = 0; i < MAGIC_BYTES.length; i++) {
    if (bytes[i] !== MAGIC_BYTES[i]) throw formatError('bad magic (not a Coffer chunk)');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_SIZE);
  const version = view.getUint8(OFF_VERSION);
  if (version !== VERSION) throw formatError(`unsupported version ${version}`);
  const flags = view.getUint8(OFF_FLAGS);
  if ((flags & ~FLAG_FINAL) !== 0) throw formatError(`unknown flag bits 0x${flags.toString(16).padStart(2, '0')}`);
  if (view.getUint16(OFF_RESERVED) !== 0) throw formatError('reserved bytes are not zero');
  const header: ChunkHeader = {
    blobId: bytes.slice(OFF_BLOB_ID, OFF_BLOB_ID + BLOB_ID_SIZE),
    index: view.getUint32(OFF_INDEX, false),
    keyGeneration: view.getUint32(OFF_KEY_GENERATION, false),
    plaintextLength: view.getUint32(OFF_LENGTH, false),
    final: (flags & FLAG_FINAL) !== 0,
    nonce: bytes.slice(OFF_NONCE, OFF_NONCE + NONCE_SIZE),
  };
  checkHeaderFields(header);
  return header;
}

/** Size on disk of a chunk holding `plaintextLength` bytes. Throws INVALID_ARGUMENT outside 0..8 MiB. */
export function sealedSize(plaintextLength: number): number {
  if (!Number.isInteger(plaintextLength) || plaintextLength < 0 || plaintextLength > CHUNK_SIZE) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `plaintext length ${plaintextLength} is outside 0..${CHUNK_SIZE}`);
  }
  return HEADER_SIZE + plaintextLength + TAG_SIZE;
}

/** The chunks of a blob of a given size. */
export interface ChunkLayout {
  size: number;
  /** ≥ 1: an empty blob has one empty chunk. */
  chunkCount: number;
  /** Plaintext length of the last (FINAL) chunk. */
  lastChunkLength: number;
  /** Plaintext length of chunk `index`. Throws INVALID_ARGUMENT outside 0..chunkCount-1. */
  plaintextLengthOf(index: number): number;
  /** Offset in the blob of chunk `index`'s first byte. Throws INVALID_ARGUMENT outside 0..chunkCount-1. */
  offsetOf(index: number): number;
  /** Each chunk's plaintext length, in order (convenient for small blobs; allocates chunkCount numbers). */
  lengths(): number[];
}

/**
 * Chunk count and per-chunk plaintext lengths of a blob of `size` bytes. Size 0 gives one empty chunk.
 * Throws INVALID_ARGUMENT if size is not a safe non-negative integer or needs more than 2^32 chunks.
 */
export function expectedChunkLayout(size: number): ChunkLayout {
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `blob size ${size} is not a non-negative safe integer`);
  }
  const chunkCount = size === 0 ? 1 : Math.ceil(size / CHUNK_SIZE);
  if (chunkCount - 1 > MAX_U32) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `blob size ${size} needs more than 2^32 chunks`);
  const lastChunkLength = size - (chunkCount - 1) * CHUNK_SIZE;
  const checkIndex = (index: number): void => {
    if (!Number.isInteger(index) || index < 0 || index >= chunkCount) {
      throw new CofferError(ErrorCode.INVALID_ARGUMENT, `chunk index ${index} is outside 0..${chunkCount - 1}`);
    }
  };
  return Object.freeze({
    size,
    chunkCount,
    lastChunkLength,
    plaintextLengthOf(index: number): number {
      checkIndex(index);
      return index === chunkCount - 1 ? lastChunkLength : CHUNK_SIZE;
    },
    offsetOf(index: number): number {
      checkIndex(index);
      return index * CHUNK_SIZE;
    },
    lengths(): number[] {
      return Array.from({ length: chunkCount }, (_, i) => (i === chunkCount - 1 ? lastChunkLength : CHUNK_SIZE));
    },
  });
}
