// Pack file v2 (docs/format.md "Pack file v2"): many whole sealed chunks back to back, then one 32-byte index
// entry per chunk, then a 48-byte trailer (magic `CFP2`, version 2, entry count, SHA-256 of index ‖ trailer head).
// A pack is self-describing: its index is rebuilt from the file alone. This module only encodes and checks the
// container; it never looks inside a chunk (the store knows nothing of the chunk format).
import { createHash, randomBytes } from 'node:crypto';
import { CofferError, ErrorCode } from '../src/errors.js';
import type { ChunkRef } from './types.js';

export const PACK_MAGIC = Buffer.from('CFP2', 'ascii');
export const PACK_VERSION = 2;
export const PACK_ENTRY_SIZE = 32;
export const PACK_TRAILER_SIZE = 48;
export const PACK_MAX_ENTRIES = 65_536;
/** The smallest and largest sealed chunk (chunk v1: 64 bytes empty, 8 MiB + 64 full). */
export const PACKED_CHUNK_MIN = 64;
export const PACKED_CHUNK_MAX = 8 * 1024 * 1024 + 64;

/** One chunk's place in a pack. */
export interface PackEntry extends ChunkRef {
  offset: number;
  length: number;
}

const PACK_ID = /^[0-9a-f]{32}$/;

/** A new pack id: 16 random bytes as 32 lowercase hex digits. */
export function newPackId(): string {
  return randomBytes(16).toString('hex');
}

export function isPackId(id: string): boolean {
  return PACK_ID.test(id);
}

function bad(message: string): CofferError {
  return new CofferError(ErrorCode.CHUNK_FORMAT, `pack: ${message}`);
}

/** The index entries and trailer that follow the chunks of `entries` (offsets already laid out from 0). */
export function encodePackIndex(entries: PackEntry[]): Buffer {
  if (entries.length < 1 || entries.length > PACK_MAX_ENTRIES) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `a pack holds 1..${PACK_MAX_ENTRIES} chunks`);
  const out = Buffer.alloc(entries.length * PACK_ENTRY_SIZE + PACK_TRAILER_SIZE);
  entries.forEach((e, i) => {
    const at = i * PACK_ENTRY_SIZE;
    out.write(e.blobId, at, 16, 'hex');
    out.writeUInt32BE(e.index, at + 16);
    out.writeBigUInt64BE(BigInt(e.offset), at + 20);
    out.writeUInt32BE(e.length, at + 28);
  });
  const t = entries.length * PACK_ENTRY_SIZE;
  PACK_MAGIC.copy(out, t);
  out[t + 4] = PACK_VERSION;
  out.writeUInt32BE(entries.length, t + 8);
  createHash('sha256').update(out.subarray(0, t + 16)).digest().copy(out, t + 16);
  return out;
}

/** Reads the entry count from a pack's last 48 bytes. Throws CHUNK_FORMAT for a bad magic, version, reserved bytes or count. */
export function packEntryCount(trailer: Buffer): number {
  if (trailer.length !== PACK_TRAILER_SIZE) throw bad('trailer is not 48 bytes');
  if (!trailer.subarray(0, 4).equals(PACK_MAGIC)) throw bad('bad magic');
  if (trailer[4] !== PACK_VERSION) throw bad(`unknown version ${trailer[4]}`);
  if (trailer[5] !== 0 || trailer[6] !== 0 || trailer[7] !== 0 || trailer.readUInt32BE(12) !== 0) throw bad('reserved bytes are not zero');
  const n = trailer.readUInt32BE(8);
  if (n < 1 || n > PACK_MAX_ENTRIES) throw bad(`entry count ${n} out of range`);
  return n;
}

/**
 * Checks a pack's index and trailer (`tail` = its last 32·n + 48 bytes) against the file size and returns the
 * entries. Throws CHUNK_FORMAT on any failure (docs/format.md reader rules), so a damaged pack is never half-used.
 */
export function decodePackIndex(tail: Buffer, fileSize: number): PackEntry[] {
  const n = packEntryCount(tail.subarray(tail.length - PACK_TRAILER_SIZE));
  const indexBytes = n * PACK_ENTRY_SIZE;
  if (tail.length !== indexBytes + PACK_TRAILER_SIZE) throw bad('index length disagrees with the entry count');
  if (fileSize < indexBytes + PACK_TRAILER_SIZE + n * PACKED_CHUNK_MIN) throw bad('file too short for its entry count');
  const digest = createHash('sha256').update(tail.subarray(0, indexBytes + 16)).digest();
  if (!digest.equals(tail.subarray(indexBytes + 16))) throw bad('index checksum mismatch');
  const entries: PackEntry[] = [];
  const seen = new Set<string>();
  let next = 0;
  for (let i = 0; i < n; i++) {
    const at = i * PACK_ENTRY_SIZE;
    const blobId = tail.toString('hex', at, at + 16);
    const index = tail.readUInt32BE(at + 16);
    const offset = Number(tail.readBigUInt64BE(at + 20));
    const length = tail.readUInt32BE(at + 28);
    if (offset !== next) throw bad(`entry ${i} starts at ${offset}, not ${next}`);
    if (length < PACKED_CHUNK_MIN || length > PACKED_CHUNK_MAX) throw bad(`entry ${i} has length ${length}`);
    const key = `${blobId}/${index}`;
    if (seen.has(key)) throw bad(`chunk ${key} appears twice`);
    seen.add(key);
    entries.push({ blobId, index, offset, length });
    next = offset + length;
  }
  if (next !== fileSize - indexBytes - PACK_TRAILER_SIZE) throw bad('chunks do not end where the index begins');
  return entries;
}
