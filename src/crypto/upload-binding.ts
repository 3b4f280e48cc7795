// The uploader's binding tag (docs/metadata.md "Record MACs", docs/format.md "Upload binding tag v1"): a client
// sealing a file in KMS mode holds the blob's data key while it uploads, and only it and attested enclaves ever do.
// It tags which blob it puts at which path, for which owner, of which size, under a key derived from the data key;
// the enclave, once the KMS gave it the data key, checks the tag before it endorses the file, so the untrusted
// host cannot bind that blob to another path or owner.
import { createHmac, createSecretKey, hkdfSync, timingSafeEqual } from 'node:crypto';
import { CofferError, ErrorCode } from '../errors.js';
import { checkKey32, type DataKey } from './data-key.js';

export const UPLOAD_BINDING_PREFIX = 'ub1.';
const FORM = /^ub1\.[0-9a-f]{64}$/;
const INFO = 'coffer upload binding v1';

export interface UploadBinding {
  blobId: string;
  /** The absolute vault path, as the storage service writes it. */
  path: string;
  /** The token subject that uploads (the node's owner). */
  owner: string;
  size: number;
}

function field(b: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head[0] = 0x01;
  head.writeUInt32BE(b.length, 1);
  return Buffer.concat([head, b]);
}

function message(b: UploadBinding): Buffer {
  if (!Number.isSafeInteger(b.size) || b.size < 0) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'upload binding: size must be a non-negative integer');
  const size = Buffer.alloc(9);
  size[0] = 0x02;
  size.writeBigUInt64BE(BigInt(b.size), 1);
  return Buffer.concat([Buffer.from('coffer-upload-binding\u0000\u0001', 'latin1'), ...[b.blobId, b.path, b.owner].map((s) => field(Buffer.from(s, 'utf8'))), size]);
}

/** `ub1.` + HMAC-SHA-256(HKDF-SHA-256(dek, info "coffer upload binding v1"), message). @throws CofferError KEY_INVALID, INVALID_ARGUMENT */
export function uploadBindingTag(dek: DataKey, b: UploadBinding): string {
  checkKey32(dek, 'an upload binding tag is keyed by a 32-byte data key');
  const raw = Buffer.from(hkdfSync('sha256', dek, Buffer.alloc(0), INFO, 32));
  try {
    // a KeyObject: handed raw bytes, createHmac throws and catches twice to find out they are not one (data-key.ts)
    return UPLOAD_BINDING_PREFIX + createHmac('sha256', createSecretKey(raw)).update(message(b)).digest('hex');
  } finally {
    raw.fill(0);
  }
}

/** Whether `tag` binds this blob to this path, owner and size under `dek` (false for anything malformed). */
export function verifyUploadBindingTag(dek: DataKey, b: UploadBinding, tag: unknown): boolean {
  if (typeof tag !== 'string' || !FORM.test(tag)) return false;
  let want: string;
  try {
    want = uploadBindingTag(dek, b);
  } catch {
    return false;
  }
  return timingSafeEqual(Buffer.from(want, 'ascii'), Buffer.from(tag, 'ascii'));
}
