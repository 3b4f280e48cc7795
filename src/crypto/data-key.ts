// A data key (DEK) in either of the two forms the crypto functions take: its 32 raw bytes, or a secret KeyObject
// made from them once for several uses (put -r seals a file, tags its source and binds its upload under one key).
// Why a KeyObject: Node's createCipheriv/createHmac/hkdfSync, handed raw bytes, first test whether they are a
// KeyObject or a CryptoKey, and on Node 24 each test throws and catches a TypeError (stack trace included):
// ≈ 25 µs a call, four calls a small file (docs/benchmarks.md "put -r: the client's per-file CPU"). Handed a
// KeyObject, the first test succeeds and nothing is thrown. The key bytes then also sit in the KeyObject's native
// memory until it is garbage-collected, as they already sit in every cipher and HMAC context made from them;
// Node clears both when it frees them (OPENSSL_clear_free). The caller still zeroes its raw bytes.
import { KeyObject, createSecretKey } from 'node:crypto';
import { CofferError, ErrorCode } from '../errors.js';
import { DEK_SIZE } from './chunk-header.js';

export type DataKey = Uint8Array | KeyObject;

/** Throws KEY_INVALID with `message` unless `key` is 32 bytes (a Uint8Array, or a secret KeyObject of 32 bytes). */
export function checkKey32(key: DataKey, message: string): void {
  const ok = key instanceof KeyObject ? key.type === 'secret' && key.symmetricKeySize === DEK_SIZE : key instanceof Uint8Array && key.length === DEK_SIZE;
  if (!ok) throw new CofferError(ErrorCode.KEY_INVALID, message);
}

/** A 32-byte key as a secret KeyObject (a copy: the caller still zeroes `key`). Throws KEY_INVALID. */
export function dataKeyObject(key: Uint8Array): KeyObject {
  checkKey32(key, `data key must be ${DEK_SIZE} bytes`);
  return createSecretKey(key);
}
