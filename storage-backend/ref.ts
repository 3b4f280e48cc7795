// Validation shared by every ChunkStore implementation: blob ids, chunk indices, byte ranges and put options.
// Everything a caller passes is checked here first, so no implementation ever builds a path or an object key
// from an unchecked string.
import { CofferError, ErrorCode } from '../src/errors.js';
import type { ByteRange, ChunkRef, PutOptions } from './types.js';

const BLOB_ID = /^[0-9a-f]{32}$/;
const U32_MAX = 0xffff_ffff;

/** Throws INVALID_ARGUMENT unless `blobId` is exactly 32 lowercase hex characters. */
export function assertBlobId(blobId: unknown): asserts blobId is string {
  if (typeof blobId !== 'string' || !BLOB_ID.test(blobId)) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'blob id must be 32 lowercase hex characters', {
      details: { blobId: typeof blobId === 'string' ? blobId.slice(0, 80) : typeof blobId },
    });
  }
}

/** Throws INVALID_ARGUMENT unless `index` is an integer in [0, 2^32 - 1]. */
export function assertChunkIndex(index: unknown): asserts index is number {
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index > U32_MAX) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'chunk index must be an integer in [0, 4294967295]', {
      details: { index: typeof index === 'number' ? index : typeof index },
    });
  }
}

/** Throws INVALID_ARGUMENT unless `ref` is `{ blobId, index }` with valid values (and nothing else). */
export function assertChunkRef(ref: unknown): asserts ref is ChunkRef {
  if (typeof ref !== 'object' || ref === null) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'chunk reference must be an object { blobId, index }');
  }
  const r = ref as Record<string, unknown>;
  assertBlobId(r.blobId);
  assertChunkIndex(r.index);
}

/** The chunk's name inside its blob: the index as 8 lowercase hex digits (sorts like the number). */
export function chunkName(index: number): string {
  return index.toString(16).padStart(8, '0');
}

const CHUNK_NAME = /^[0-9a-f]{8}$/;

/** Parses a name made by chunkName, or returns null for anything else (temp files, foreign files). */
export function parseChunkName(name: string): number | null {
  return CHUNK_NAME.test(name) ? Number.parseInt(name, 16) : null;
}

function assertNonNegativeInteger(value: unknown, what: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `${what} must be a non-negative integer`, { details: { [what]: value } });
  }
}

/** Throws INVALID_ARGUMENT for unknown keys or bad values in put options (fail closed on typos). */
export function assertPutOptions(options: PutOptions | undefined): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'put options must be an object');
  }
  for (const key of Object.keys(options)) {
    if (key !== 'maxBytes' && key !== 'expectedSize' && key !== 'signal' && key !== 'beforeRename' && key !== 'sha256') {
      throw new CofferError(ErrorCode.INVALID_ARGUMENT, `unknown put option "${key}"`);
    }
  }
  if (options.maxBytes !== undefined) assertNonNegativeInteger(options.maxBytes, 'maxBytes');
  if (options.expectedSize !== undefined) assertNonNegativeInteger(options.expectedSize, 'expectedSize');
  if (options.beforeRename !== undefined && typeof options.beforeRename !== 'function') {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'beforeRename must be a function');
  }
  if (options.sha256 !== undefined && (typeof options.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(options.sha256))) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'sha256 must be 64 lowercase hex digits');
  }
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'signal must be an AbortSignal');
  }
}

/** Throws INVALID_ARGUMENT unless `olderThanMs` is a non-negative integer number of milliseconds. */
export function assertSweepAge(olderThanMs: unknown): asserts olderThanMs is number {
  assertNonNegativeInteger(olderThanMs, 'olderThanMs');
}

/**
 * Resolves an inclusive range against a stored size, as HTTP Range does (RFC 9110 §14.1.2): an `end` past the
 * last byte means "to the end". Throws INVALID_ARGUMENT for a malformed range (negative, non-integer,
 * end < start) and RANGE_NOT_SATISFIABLE when `start` is at or past the end (always, for an empty chunk).
 */
export function resolveRange(range: ByteRange, size: number): { start: number; end: number } {
  assertRange(range);
  if (range.start >= size) {
    throw new CofferError(ErrorCode.RANGE_NOT_SATISFIABLE, `range starts at ${range.start} but the chunk has ${size} bytes`, {
      details: { start: range.start, end: range.end, size },
    });
  }
  return { start: range.start, end: Math.min(range.end, size - 1) };
}

/** Throws INVALID_ARGUMENT for a malformed range (not an object, negative, non-integer, end < start). */
export function assertRange(range: unknown): asserts range is ByteRange {
  if (typeof range !== 'object' || range === null) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'range must be an object { start, end }');
  }
  const r = range as Record<string, unknown>;
  assertNonNegativeInteger(r.start, 'start');
  assertNonNegativeInteger(r.end, 'end');
  if (r.end < r.start) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'range end is before its start', { details: { start: r.start, end: r.end } });
  }
}
