// Sealing and opening one chunk (format v1, DESIGN.md "Chunk format v1"): AES-256-GCM under the blob's DEK,
// IV = a fresh 96-bit random nonce made here, AAD = the whole 48-byte header.
// Two paths, one format (docs/crypto.md). sealChunk/openChunk use WebCrypto (`crypto.subtle`, OpenSSL with
// AES-NI underneath) on libuv's thread pool: the event loop is never held, and only plaintext whose tag
// verified comes back. sealChunkInto/openChunkInto, the bulk-transfer path, use Node's synchronous cipher in
// 64 KiB slices into buffers the caller reuses: WebCrypto copies its input and allocates its output on every
// call, and those fresh 8 MiB buffers cost more in page faults than the AES itself. The fixed-nonce path for
// test vectors shares sealInto with the bulk path; all are cross-checked against @noble/ciphers in the tests.
import { createCipheriv, createDecipheriv, randomBytes, webcrypto } from 'node:crypto';
import { checkKey32, type DataKey } from './data-key.js';
import { CofferError, ErrorCode } from '../errors.js';
import {
  CHUNK_SIZE, DEK_SIZE, HEADER_SIZE, MAX_SEALED_SIZE, NONCE_SIZE, TAG_SIZE,
  decodeChunkHeader, encodeChunkHeaderInto, sealedSize, type ChunkHeader,
} from './chunk-header.js';
import { assertTestVectorMode } from './test-only.js';

/** Which chunk of which blob is being sealed. */
export interface SealParams {
  blobId: Uint8Array;
  index: number;
  keyGeneration: number;
  final: boolean;
}

/** What the reader expects the chunk to be (from the blob's manifest). Every given field is checked. */
export interface OpenExpectation {
  blobId: Uint8Array;
  index: number;
  keyGeneration: number;
  final?: boolean;
  plaintextLength?: number;
}

// Node's Cipher.update has no "into" form, so ciphertext is produced in slices and copied into the output;
// slicing bounds the transient memory to one slice instead of a second 8 MiB buffer. 64 KiB, not 1 MiB: each
// slice's output is a fresh allocation that lives until the next garbage collection, and on Node 24 (which
// collects that off-heap garbage later, src/gc-tuning.ts) 1 MiB outputs came from memory the kernel had to
// fault in and zero each time: 2.5-3x the page faults of Node 20 and 0.2-0.4 s more system CPU per 512 MiB
// `coffer put`. 64 KiB outputs are recycled through malloc's free lists and stay in cache; the 8x more
// update() calls cost nothing measurable (docs/runtime.md, "Where Node 24's put client spent its CPU").
const SLICE = 64 * 1024;

/** Throws KEY_INVALID unless `dek` is 32 bytes (raw, or a secret KeyObject: data-key.ts). */
export function checkDek(dek: DataKey): void {
  checkKey32(dek, `data key must be ${DEK_SIZE} bytes`);
}

function seal(dek: Uint8Array, params: SealParams, plaintext: Uint8Array, nonce: Uint8Array): Uint8Array {
  checkDek(dek);
  checkPlaintext(plaintext);
  // allocUnsafe is safe here: header, ciphertext and tag together overwrite every byte.
  return sealInto(dek, params, plaintext, nonce, Buffer.allocUnsafe(sealedSize(plaintext.length)));
}

/** Header ‖ ciphertext ‖ tag into `out`, with Node's cipher in 64 KiB slices; returns the sealed view of `out`. */
function sealInto(dek: DataKey, params: SealParams, plaintext: Uint8Array, nonce: Uint8Array, out: Uint8Array): Uint8Array {
  const size = sealedSize(plaintext.length);
  if (!(out instanceof Uint8Array) || out.length < size) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `output buffer must hold at least ${size} bytes`);
  }
  const header = headerBytes({ ...params, plaintextLength: plaintext.length, nonce });
  out.set(header, 0);
  const cipher = createCipheriv('aes-256-gcm', dek, nonce, { authTagLength: TAG_SIZE });
  cipher.setAAD(header);
  let pos = HEADER_SIZE;
  for (let off = 0; off < plaintext.length; off += SLICE) {
    const part = cipher.update(plaintext.subarray(off, Math.min(off + SLICE, plaintext.length)));
    out.set(part, pos);
    pos += part.length;
  }
  const rest = cipher.final(); // empty for GCM, kept for correctness
  out.set(rest, pos);
  pos += rest.length;
  out.set(cipher.getAuthTag(), pos);
  return out.subarray(0, size);
}

/**
 * Seals one chunk with a fresh random nonce into a caller-owned buffer (at least sealedSize(plaintext.length)
 * bytes) and returns the sealed view of it: the bulk-transfer path, which reuses its buffers instead of
 * allocating (and page-faulting) two fresh 8 MiB buffers per chunk as WebCrypto does. Synchronous: Node's
 * AES-GCM (OpenSSL, AES-NI) at ≈ 2.2 GB/s holds the event loop ≈ 4 ms for a full chunk.
 * `plaintext` may sit in `out` itself, exactly at HEADER_SIZE (sealed in place); any other overlap is refused.
 * Throws as sealChunk, and INVALID_ARGUMENT when `out` is too small or overlaps `plaintext` otherwise.
 */
export function sealChunkInto(dek: DataKey, params: SealParams, plaintext: Uint8Array, out: Uint8Array): Uint8Array {
  checkDek(dek);
  checkPlaintext(plaintext);
  if (out instanceof Uint8Array && out.buffer === plaintext.buffer) {
    // in place (seal-reader.ts reads a chunk straight into its sealed buffer): each 64 KiB slice is enciphered
    // before its ciphertext is written back over it, and the header goes before it, the tag after
    const inPlace = plaintext.byteOffset === out.byteOffset + HEADER_SIZE;
    const apart = plaintext.byteOffset + plaintext.length <= out.byteOffset || out.byteOffset + out.length <= plaintext.byteOffset;
    if (!inPlace && !apart) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'plaintext overlaps the output buffer (only exactly in place is allowed)');
  }
  return sealInto(dek, params, plaintext, randomBytes(NONCE_SIZE), out);
}

/**
 * Seals one chunk with a fresh random nonce. Returns header ‖ ciphertext ‖ tag.
 * Throws KEY_INVALID (DEK not 32 bytes), INVALID_ARGUMENT (plaintext over 8 MiB, a non-final chunk that is
 * not exactly 8 MiB, an empty chunk other than chunk 0, bad blob id, index or key generation).
 */
export async function sealChunk(dek: Uint8Array, params: SealParams, plaintext: Uint8Array): Promise<Uint8Array> {
  checkDek(dek);
  checkPlaintext(plaintext);
  const nonce = randomBytes(NONCE_SIZE);
  const header = headerBytes({ ...params, plaintextLength: plaintext.length, nonce });
  const sealedBody = await webcrypto.subtle.encrypt(
    { name: 'AES-GCM', iv: nonce, additionalData: header, tagLength: TAG_SIZE * 8 },
    await gcmKey(dek),
    plaintext,
  );
  const out = Buffer.allocUnsafe(HEADER_SIZE + sealedBody.byteLength);
  out.set(header, 0);
  out.set(new Uint8Array(sealedBody), HEADER_SIZE);
  return out;
}

// Imported per call (microseconds) rather than cached per DEK object: a cache keyed by the array would outlive
// a caller's `dek.fill(0)` and go stale if an array were ever reused for another key.
function gcmKey(dek: Uint8Array): Promise<webcrypto.CryptoKey> {
  return webcrypto.subtle.importKey('raw', dek, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
}

function checkPlaintext(plaintext: Uint8Array): void {
  if (!(plaintext instanceof Uint8Array)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'plaintext must be a Uint8Array');
  if (plaintext.length > CHUNK_SIZE) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `chunk plaintext of ${plaintext.length} bytes exceeds ${CHUNK_SIZE}`);
  }
}

/** The encoded header; a header no reader would accept is the caller's mistake (INVALID_ARGUMENT). */
function headerBytes(header: ChunkHeader): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE);
  try {
    encodeChunkHeaderInto(header, out);
  } catch (e) {
    if (e instanceof CofferError) throw new CofferError(ErrorCode.INVALID_ARGUMENT, e.message, { cause: e });
    throw e;
  }
  return out;
}

/**
 * Test vectors only: seals with a caller-chosen nonce. Refuses (INTERNAL) outside vitest and the vector
 * generator; not exported from the package entry. Never use a nonce twice under one key.
 */
export function sealChunkWithFixedNonceForTestVectors(
  dek: Uint8Array, params: SealParams, plaintext: Uint8Array, nonce: Uint8Array,
): Uint8Array {
  assertTestVectorMode('sealChunkWithFixedNonceForTestVectors');
  return seal(dek, params, plaintext, nonce);
}

function mismatch(field: string, expected: unknown, found: unknown): CofferError {
  return new CofferError(ErrorCode.CHUNK_MISMATCH, `chunk ${field} is ${String(found)}, expected ${String(expected)}`, {
    details: { field },
  });
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/**
 * Checks a sealed chunk's lengths, header format and header fields against `expect`; returns the header.
 * Throws KEY_INVALID, INVALID_ARGUMENT, CHUNK_FORMAT, CHUNK_MISMATCH as openChunk.
 */
function checkSealed(dek: DataKey, sealed: Uint8Array, expect: OpenExpectation): ChunkHeader {
  checkDek(dek);
  if (!(sealed instanceof Uint8Array)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'sealed chunk must be a Uint8Array');
  if (sealed.length < HEADER_SIZE + TAG_SIZE || sealed.length > MAX_SEALED_SIZE) {
    throw new CofferError(ErrorCode.CHUNK_FORMAT, `sealed chunk of ${sealed.length} bytes is outside ${HEADER_SIZE + TAG_SIZE}..${MAX_SEALED_SIZE}`);
  }
  const h = decodeChunkHeader(sealed);
  if (sealed.length !== sealedSize(h.plaintextLength)) {
    throw new CofferError(ErrorCode.CHUNK_FORMAT, `sealed chunk is ${sealed.length} bytes but its header says ${sealedSize(h.plaintextLength)}`);
  }
  if (!sameBytes(h.blobId, expect.blobId)) {
    throw mismatch('blob id', Buffer.from(expect.blobId).toString('hex'), Buffer.from(h.blobId).toString('hex'));
  }
  if (h.index !== expect.index) throw mismatch('index', expect.index, h.index);
  if (h.keyGeneration !== expect.keyGeneration) throw mismatch('key generation', expect.keyGeneration, h.keyGeneration);
  if (expect.final !== undefined && h.final !== expect.final) throw mismatch('FINAL flag', expect.final, h.final);
  if (expect.plaintextLength !== undefined && h.plaintextLength !== expect.plaintextLength) {
    throw mismatch('plaintext length', expect.plaintextLength, h.plaintextLength);
  }
  return h;
}

function authFailed(h: ChunkHeader, cause: unknown): CofferError {
  return new CofferError(ErrorCode.CHUNK_AUTH_FAILED, `chunk ${h.index}: authentication tag did not verify (wrong key or altered chunk)`, { cause });
}

/**
 * Opens one sealed chunk and returns its plaintext, only after the tag verified.
 * Order of checks: lengths, header format, header fields against `expect`, then the tag.
 * Throws KEY_INVALID (DEK not 32 bytes), CHUNK_FORMAT (too short/long, bad magic, version, reserved bits,
 * flags, or a size that disagrees with the header's length), CHUNK_MISMATCH (blob id, index, key generation,
 * FINAL or length differ from `expect`), CHUNK_AUTH_FAILED (tag did not verify: wrong key or altered bytes).
 */
export async function openChunk(dek: Uint8Array, sealed: Uint8Array, expect: OpenExpectation): Promise<Uint8Array> {
  const h = checkSealed(dek, sealed, expect);
  let plaintext: ArrayBuffer;
  try {
    // WebCrypto verifies the tag before it hands back a single byte.
    plaintext = await webcrypto.subtle.decrypt(
      { name: 'AES-GCM', iv: h.nonce, additionalData: sealed.subarray(0, HEADER_SIZE), tagLength: TAG_SIZE * 8 },
      await gcmKey(dek),
      sealed.subarray(HEADER_SIZE),
    );
  } catch (e) {
    throw authFailed(h, e);
  }
  return Buffer.from(plaintext);
}

/**
 * Opens one sealed chunk into a caller-owned buffer (at least the chunk's plaintext length) and returns the
 * plaintext view of it, only after the tag verified: the bulk-transfer path (see sealChunkInto), synchronous.
 * Node's decipher writes plaintext before the tag is checked, so on a bad tag every byte written to `out` is
 * zeroed before CHUNK_AUTH_FAILED is thrown: the caller never sees unauthenticated plaintext.
 * `out` may be the chunk's own ciphertext (`sealed.subarray(HEADER_SIZE)`, same memory): each slice is
 * deciphered before its plaintext is written back over it, so a download needs one buffer per chunk, not two.
 * Any other overlap of `out` and `sealed` is refused.
 * Checks and throws as openChunk, and INVALID_ARGUMENT when `out` is too small or overlaps `sealed` otherwise.
 */
export function openChunkInto(dek: DataKey, sealed: Uint8Array, expect: OpenExpectation, out: Uint8Array): Uint8Array {
  const h = checkSealed(dek, sealed, expect);
  if (!(out instanceof Uint8Array) || out.length < h.plaintextLength) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `output buffer must hold at least ${h.plaintextLength} bytes`);
  }
  if (out.buffer === sealed.buffer) {
    const inPlace = out.byteOffset === sealed.byteOffset + HEADER_SIZE;
    const apart = out.byteOffset + h.plaintextLength <= sealed.byteOffset || sealed.byteOffset + sealed.length <= out.byteOffset;
    if (!inPlace && !apart) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'output buffer overlaps the sealed chunk (only exactly in place is allowed)');
  }
  const end = HEADER_SIZE + h.plaintextLength;
  const decipher = createDecipheriv('aes-256-gcm', dek, h.nonce, { authTagLength: TAG_SIZE });
  decipher.setAAD(sealed.subarray(0, HEADER_SIZE));
  decipher.setAuthTag(sealed.subarray(end, end + TAG_SIZE));
  let pos = 0;
  try {
    for (let off = HEADER_SIZE; off < end; off += SLICE) {
      const part = decipher.update(sealed.subarray(off, Math.min(off + SLICE, end)));
      out.set(part, pos);
      pos += part.length;
    }
    const rest = decipher.final(); // throws when the tag does not verify
    out.set(rest, pos);
    pos += rest.length;
  } catch (e) {
    out.fill(0, 0, Math.max(pos, h.plaintextLength));
    throw authFailed(h, e);
  }
  return out.subarray(0, h.plaintextLength);
}
