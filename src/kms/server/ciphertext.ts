// The embedded KMS's ciphertext blob format v1 and the canonical encryption-context encoding bound as AAD.
// Specified byte for byte in docs/kms.md ("Ciphertext blob"); a change here is a new version byte.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/** `CFKM` */
export const BLOB_MAGIC = Buffer.from([0x43, 0x46, 0x4b, 0x4d]);
export const BLOB_VERSION = 1;
const KEY_ID_LEN = 16;
const MATERIAL_ID_LEN = 16;
const NONCE_LEN = 12;
const TAG_LEN = 16;
/** magic(4) ‖ version(1) ‖ key id(16) ‖ material id(16) ‖ nonce(12) */
export const BLOB_HEADER_LEN = 4 + 1 + KEY_ID_LEN + MATERIAL_ID_LEN + NONCE_LEN;
/** AWS KMS limits Encrypt plaintext to 4096 bytes; so do we. */
export const MAX_PLAINTEXT = 4096;

export type EncryptionContext = Readonly<Record<string, string>>;

/** Thrown for any blob that is not a well-formed, authentic v1 blob (the server maps it to InvalidCiphertextException). */
export class BlobFormatError extends Error {
  override readonly name = 'BlobFormatError';
}

export interface BlobHeader {
  /** KMS key id as 16 UUID bytes. */
  keyId: Buffer;
  /** Which generation of the key's material sealed it (rotation keeps old ones). */
  materialId: Buffer;
}

/** UUID string ⇄ 16 bytes (the key id field). Throws BlobFormatError on a malformed UUID. */
export function uuidToBytes(uuid: string): Buffer {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(uuid)) {
    throw new BlobFormatError('malformed key id');
  }
  return Buffer.from(uuid.replaceAll('-', ''), 'hex');
}

export function bytesToUuid(b: Uint8Array): string {
  const h = Buffer.from(b).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * Canonical encoding of an encryption context: pairs sorted by the UTF-8 bytes of the key, then
 * u32be(count) ‖ for each pair: u32be(len key) ‖ key ‖ u32be(len value) ‖ value (all UTF-8).
 * Length-prefixed, so no two different contexts encode alike. An empty/absent context encodes as u32be(0).
 */
export function canonicalContext(ctx: EncryptionContext | undefined): Buffer {
  const pairs = Object.entries(ctx ?? {}).map(([k, v]) => [Buffer.from(k, 'utf8'), Buffer.from(v, 'utf8')] as const);
  pairs.sort((a, b) => Buffer.compare(a[0], b[0]));
  const parts: Buffer[] = [u32(pairs.length)];
  for (const [k, v] of pairs) parts.push(u32(k.length), k, u32(v.length), v);
  return Buffer.concat(parts);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/**
 * Seals `plaintext` (≤ 4096 bytes) under `material` (32 bytes) with AES-256-GCM; AAD = header ‖ canonical context.
 * The nonce is made here (96 random bits), never supplied by a caller.
 * @throws RangeError on a wrong material length or an oversized plaintext.
 */
export function sealBlob(header: BlobHeader, material: Uint8Array, plaintext: Uint8Array, ctx: EncryptionContext | undefined): Buffer {
  if (material.length !== 32) throw new RangeError('key material must be 32 bytes');
  if (header.keyId.length !== KEY_ID_LEN || header.materialId.length !== MATERIAL_ID_LEN) throw new RangeError('bad header ids');
  if (plaintext.length > MAX_PLAINTEXT) throw new RangeError(`plaintext larger than ${MAX_PLAINTEXT} bytes`);
  const head = Buffer.concat([BLOB_MAGIC, Buffer.from([BLOB_VERSION]), header.keyId, header.materialId, randomBytes(NONCE_LEN)]);
  const cipher = createCipheriv('aes-256-gcm', material, head.subarray(BLOB_HEADER_LEN - NONCE_LEN), { authTagLength: TAG_LEN });
  cipher.setAAD(Buffer.concat([head, canonicalContext(ctx)]));
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([head, ct, cipher.getAuthTag()]);
}

/** Reads the header of a blob without authenticating it (to find the key). @throws BlobFormatError */
export function parseBlobHeader(blob: Uint8Array): BlobHeader {
  if (blob.length < BLOB_HEADER_LEN + TAG_LEN) throw new BlobFormatError('ciphertext blob too short');
  const b = Buffer.from(blob);
  if (!b.subarray(0, 4).equals(BLOB_MAGIC)) throw new BlobFormatError('not a Coffer KMS ciphertext blob');
  if (b[4] !== BLOB_VERSION) throw new BlobFormatError(`unsupported ciphertext blob version ${b[4]}`);
  return { keyId: b.subarray(5, 5 + KEY_ID_LEN), materialId: b.subarray(5 + KEY_ID_LEN, 5 + KEY_ID_LEN + MATERIAL_ID_LEN) };
}

/** Authenticates and opens a blob; returns nothing unless the tag verifies. @throws BlobFormatError */
export function openBlob(blob: Uint8Array, material: Uint8Array, ctx: EncryptionContext | undefined): Buffer {
  parseBlobHeader(blob);
  const b = Buffer.from(blob);
  const head = b.subarray(0, BLOB_HEADER_LEN);
  const decipher = createDecipheriv('aes-256-gcm', material, head.subarray(BLOB_HEADER_LEN - NONCE_LEN), { authTagLength: TAG_LEN });
  decipher.setAAD(Buffer.concat([head, canonicalContext(ctx)]));
  decipher.setAuthTag(b.subarray(b.length - TAG_LEN));
  try {
    return Buffer.concat([decipher.update(b.subarray(BLOB_HEADER_LEN, b.length - TAG_LEN)), decipher.final()]);
  } catch (e) {
    throw new BlobFormatError('ciphertext blob failed authentication (wrong key, context or a modified blob)', { cause: e });
  }
}
