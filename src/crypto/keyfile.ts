// Client-held-key mode: a key file holds a 32-byte key-encryption key (KEK) that wraps each blob's data key
// (DEK) into a KeyRecord stored with the blob's metadata. AES-256-GCM with AAD binding scheme, version and
// blob id, so a record moved to another blob fails. Byte-level spec: docs/format.md "Key file and KeyRecord".
import { createCipheriv, createDecipheriv, createHash, createSecretKey, randomBytes } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CofferError, ErrorCode } from '../errors.js';
import { DEK_SIZE, NONCE_SIZE, TAG_SIZE } from './chunk-header.js';
import { isBlobIdHex } from './blob-id.js';
import { checkKey32, type DataKey } from './data-key.js';
import { assertTestVectorMode } from './test-only.js';

export const KEK_SIZE = 32;
export const KEY_RECORD_SCHEME = 'keyfile';
export const KEY_RECORD_VERSION = 1;
/** Domain separation for the KEK id hash: SHA-256(KEK_ID_DOMAIN ‖ KEK). */
export const KEK_ID_DOMAIN = 'coffer/kek-id/v1\0';
/** Prefix of the AAD: `coffer/keyrecord|keyfile|1|<blob hex>` (all ASCII). */
const AAD_DOMAIN = 'coffer/keyrecord';

// A type alias (not an interface) so it is assignable to the metadata store's `{ scheme } & Record<string, unknown>`.
export type KeyRecord = {
  scheme: 'keyfile';
  version: 1;
  /** 16 lowercase hex: which KEK wrapped this DEK (not secret; lets a client say "wrong key file"). */
  kekId: string;
  /** base64 (standard, padded) of the 12-byte nonce. */
  nonce: string;
  /** base64 (standard, padded) of the 32-byte encrypted DEK followed by the 16-byte tag. */
  wrapped: string;
  context: { 'coffer:blob': string };
};

function keyInvalid(message: string, cause?: unknown): CofferError {
  return new CofferError(ErrorCode.KEY_INVALID, message, cause === undefined ? {} : { cause });
}

function checkKey(key: Uint8Array, what: string): void {
  if (!(key instanceof Uint8Array) || key.length !== KEK_SIZE) throw keyInvalid(`${what} must be ${KEK_SIZE} bytes`);
}

function checkBlobHex(blobIdHex: string): void {
  if (!isBlobIdHex(blobIdHex)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'blob id must be 32 lowercase hex characters');
}

/** The KEK's public id: first 16 hex characters of SHA-256(KEK_ID_DOMAIN ‖ KEK). Throws KEY_INVALID. */
export function kekIdOf(kek: Uint8Array): string {
  checkKey(kek, 'key-encryption key');
  return createHash('sha256').update(KEK_ID_DOMAIN, 'latin1').update(kek).digest('hex').slice(0, 16);
}

/** The AES-GCM AAD of a KeyRecord for the given blob (ASCII, no terminator). */
export function keyRecordAad(blobIdHex: string): Uint8Array {
  checkBlobHex(blobIdHex);
  return Buffer.from(`${AAD_DOMAIN}|${KEY_RECORD_SCHEME}|${KEY_RECORD_VERSION}|${blobIdHex}`, 'latin1');
}

/** A new random 32-byte data key. */
export function newDataKey(): Uint8Array {
  return new Uint8Array(randomBytes(DEK_SIZE));
}

function wrap(kek: DataKey, dek: Uint8Array, blobIdHex: string, nonce: Uint8Array, kekId: string): KeyRecord {
  checkKey32(kek, `key-encryption key must be ${KEK_SIZE} bytes`);
  checkKey(dek, 'data key');
  const aad = keyRecordAad(blobIdHex);
  const cipher = createCipheriv('aes-256-gcm', kek, nonce, { authTagLength: TAG_SIZE });
  cipher.setAAD(aad);
  const wrapped = Buffer.concat([cipher.update(dek), cipher.final(), cipher.getAuthTag()]);
  return {
    scheme: KEY_RECORD_SCHEME,
    version: KEY_RECORD_VERSION,
    kekId,
    nonce: Buffer.from(nonce).toString('base64'),
    wrapped: wrapped.toString('base64'),
    context: { 'coffer:blob': blobIdHex },
  };
}

/** Wraps `dek` for blob `blobIdHex` under `kek` with a fresh nonce. Throws KEY_INVALID, INVALID_ARGUMENT. */
export function wrapDataKey(kek: Uint8Array, dek: Uint8Array, blobIdHex: string): KeyRecord {
  return wrap(kek, dek, blobIdHex, randomBytes(NONCE_SIZE), kekIdOf(kek));
}

/**
 * A wrapper for many data keys under one KEK (put -r wraps one per file): the KEK's id is hashed once, not per
 * key. The records are those of wrapDataKey. Throws KEY_INVALID (a KEK of the wrong size), INVALID_ARGUMENT.
 */
export function dataKeyWrapper(kek: Uint8Array): (dek: Uint8Array, blobIdHex: string) => KeyRecord {
  const kekId = kekIdOf(kek);
  // a KeyObject made once: handed raw bytes, createCipheriv throws and catches twice per key to find out they are
  // not one (data-key.ts). It lives as long as the wrapper, which is the run; the caller's KEK bytes do too.
  const key = createSecretKey(kek);
  return (dek, blobIdHex) => wrap(key, dek, blobIdHex, randomBytes(NONCE_SIZE), kekId);
}

/** Test vectors only (refuses outside vitest / the vector generator): wraps with a caller-chosen nonce. */
export function wrapDataKeyWithFixedNonceForTestVectors(kek: Uint8Array, dek: Uint8Array, blobIdHex: string, nonce: Uint8Array): KeyRecord {
  assertTestVectorMode('wrapDataKeyWithFixedNonceForTestVectors');
  if (!(nonce instanceof Uint8Array) || nonce.length !== NONCE_SIZE) throw keyInvalid('nonce must be 12 bytes');
  return wrap(kek, dek, blobIdHex, nonce, kekIdOf(kek));
}

const RECORD_KEYS = ['context', 'kekId', 'nonce', 'scheme', 'version', 'wrapped'];

function strictBase64(value: unknown, bytes: number, field: string): Buffer {
  if (typeof value !== 'string') throw keyInvalid(`key record: ${field} must be a string`);
  const decoded = Buffer.from(value, 'base64');
  // Node's decoder skips junk; re-encoding makes the accepted spelling unique (standard alphabet, padded).
  if (decoded.length !== bytes || decoded.toString('base64') !== value) {
    throw keyInvalid(`key record: ${field} must be canonical base64 of ${bytes} bytes`);
  }
  return decoded;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;
}

/**
 * Validates an untrusted value (e.g. from JSON.parse) as a KeyRecord. Unknown or missing fields, another
 * scheme or version, malformed base64 or ids all throw KEY_INVALID.
 */
export function parseKeyRecord(value: unknown): KeyRecord {
  if (!isPlainObject(value)) throw keyInvalid('key record must be a JSON object');
  const keys = Object.keys(value).sort();
  if (keys.length !== RECORD_KEYS.length || keys.some((k, i) => k !== RECORD_KEYS[i])) {
    throw keyInvalid(`key record must have exactly the fields ${RECORD_KEYS.join(', ')}`);
  }
  if (value.scheme !== KEY_RECORD_SCHEME) throw keyInvalid(`key record scheme ${JSON.stringify(value.scheme)} is not "keyfile"`);
  if (value.version !== KEY_RECORD_VERSION) throw keyInvalid(`key record version ${JSON.stringify(value.version)} is not supported`);
  if (typeof value.kekId !== 'string' || !/^[0-9a-f]{16}$/.test(value.kekId)) throw keyInvalid('key record: kekId must be 16 lowercase hex');
  strictBase64(value.nonce, NONCE_SIZE, 'nonce');
  strictBase64(value.wrapped, DEK_SIZE + TAG_SIZE, 'wrapped');
  const ctx = value.context;
  if (!isPlainObject(ctx) || Object.keys(ctx).length !== 1 || !isBlobIdHex(ctx['coffer:blob'])) {
    throw keyInvalid('key record: context must be exactly { "coffer:blob": <32 lowercase hex> }');
  }
  return {
    scheme: KEY_RECORD_SCHEME, version: KEY_RECORD_VERSION, kekId: value.kekId,
    nonce: value.nonce as string, wrapped: value.wrapped as string, context: { 'coffer:blob': ctx['coffer:blob'] },
  };
}

/**
 * Unwraps the DEK of blob `blobIdHex` from an untrusted record. Throws KEY_INVALID if the record is malformed,
 * names another blob, was made with another key file, or fails authentication (edited or moved);
 * INVALID_ARGUMENT for a malformed blobIdHex.
 */
export function unwrapDataKey(kek: Uint8Array, record: unknown, blobIdHex: string): Uint8Array {
  return unwrap(kek, record, blobIdHex, kekIdOf(kek));
}

/**
 * An unwrapper for many data keys under one KEK (get -r opens one per file): the KEK's id is hashed once, not per
 * key; every check of unwrapDataKey is made per record. Throws as unwrapDataKey (KEY_INVALID for a bad KEK now).
 */
export function dataKeyUnwrapper(kek: Uint8Array): (record: unknown, blobIdHex: string) => Uint8Array {
  const kekId = kekIdOf(kek);
  // a KeyObject made once, as dataKeyWrapper does: with raw bytes createDecipheriv spends ≈ 50 µs a call finding
  // out they are not a KeyObject (≈ 4 µs with one; docs/benchmarks.md, get -r with synchronous writes)
  const key = createSecretKey(kek);
  return (record, blobIdHex) => unwrap(key, record, blobIdHex, kekId);
}

function unwrap(kek: DataKey, record: unknown, blobIdHex: string, mine: string): Uint8Array {
  checkKey32(kek, `key-encryption key must be ${KEK_SIZE} bytes`);
  checkBlobHex(blobIdHex);
  const r = parseKeyRecord(record);
  if (r.context['coffer:blob'] !== blobIdHex) throw keyInvalid(`key record belongs to blob ${r.context['coffer:blob']}, not ${blobIdHex}`);
  if (r.kekId !== mine) throw keyInvalid(`key record was wrapped with key ${r.kekId}; this key file is ${mine}`);
  const nonce = strictBase64(r.nonce, NONCE_SIZE, 'nonce');
  const wrapped = strictBase64(r.wrapped, DEK_SIZE + TAG_SIZE, 'wrapped');
  const decipher = createDecipheriv('aes-256-gcm', kek, nonce, { authTagLength: TAG_SIZE });
  // AAD from the caller's blob id, not the record's: an edited context cannot make a moved record verify.
  decipher.setAAD(keyRecordAad(blobIdHex));
  decipher.setAuthTag(wrapped.subarray(DEK_SIZE));
  const dek = decipher.update(wrapped.subarray(0, DEK_SIZE));
  try {
    decipher.final();
  } catch (e) {
    dek.fill(0);
    throw keyInvalid('key record did not authenticate (edited, moved to another blob, or another key)', e);
  }
  return new Uint8Array(dek.buffer, dek.byteOffset, dek.length);
}

async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch (_) {
    // Some platforms cannot fsync a directory; the file itself is already synced.
  } finally {
    await fh?.close();
  }
}

/**
 * Writes a new key file: 32 random bytes, mode 0600, synced to disk. Refuses to overwrite (ALREADY_EXISTS).
 * Returns the new key's kekId. Other I/O errors become INTERNAL (NO_SPACE when the disk is full).
 */
export async function generateKeyFile(path: string): Promise<{ kekId: string }> {
  const kek = randomBytes(KEK_SIZE);
  let fh: FileHandle;
  try {
    fh = await open(path, 'wx', 0o600); // O_CREAT|O_EXCL: never replaces an existing key
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new CofferError(ErrorCode.ALREADY_EXISTS, `key file ${path} already exists`);
    throw e;
  }
  try {
    await fh.chmod(0o600); // in case the umask was odd; mode bits can only have been narrowed
    await fh.writeFile(kek);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await syncDir(dirname(path));
  const kekId = kekIdOf(kek);
  kek.fill(0);
  return { kekId };
}

/**
 * Reads a key file. Throws NOT_FOUND if it does not exist; KEY_INVALID if it is not a regular file, is not
 * exactly 32 bytes, or (on POSIX) grants any permission to group or others — like ssh with private keys,
 * a key others can read is refused rather than warned about (fix with `chmod 600 FILE`).
 */
export async function readKeyFile(path: string): Promise<Uint8Array> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new CofferError(ErrorCode.NOT_FOUND, `key file ${path} does not exist`);
    throw e;
  }
  try {
    const st = await fh.stat(); // the opened file itself: no race between the check and the read
    if (!st.isFile()) throw keyInvalid(`key file ${path} is not a regular file`);
    if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
      throw keyInvalid(`key file ${path} is accessible by group or others (mode ${(st.mode & 0o777).toString(8)}); run chmod 600`);
    }
    if (st.size !== KEK_SIZE) throw keyInvalid(`key file ${path} must be exactly ${KEK_SIZE} bytes, found ${st.size}`);
    const kek = Buffer.alloc(KEK_SIZE);
    const { bytesRead } = await fh.read(kek, 0, KEK_SIZE, 0);
    if (bytesRead !== KEK_SIZE) throw keyInvalid(`key file ${path} changed while being read`);
    return new Uint8Array(kek.buffer, kek.byteOffset, KEK_SIZE);
  } finally {
    await fh.close();
  }
}
