// Which request headers a PUT stores, which it refuses as unsupported (NotImplemented, never ignored), and the
// headers a GET/HEAD answers with (stored ones, x-amz-meta-*, then response-* overrides).
import { S3Error } from './errors.js';
import { toHttpDate } from './http-semantics.js';
import { STORED_HEADERS, type ObjectMeta } from './object-meta.js';
import type { FileInfo } from './backend.js';

/** S3 limits user metadata to 2 KB (names and values, UTF-8). */
const MAX_USER_META = 2048;
/** ACL values that describe what Coffer does anyway (owner-only plus vault grants): accepted, nothing stored. */
const ACCEPTED_ACLS = new Set(['private', 'bucket-owner-full-control']);

/** Throws NotImplemented for a request header asking for a feature Coffer does not have. */
export function refuseUnsupported(headers: Headers): void {
  headers.forEach((value, name) => {
    const n = name.toLowerCase();
    if (n.startsWith('x-amz-server-side-encryption')) throw new S3Error('NotImplemented', 'server-side encryption headers are not supported: every object is sealed by the enclave');
    if (n === 'x-amz-acl' && !ACCEPTED_ACLS.has(value.trim())) throw new S3Error('NotImplemented', `canned ACL ${value} is not supported; access follows vault grants`);
    if (n.startsWith('x-amz-grant-')) throw new S3Error('NotImplemented', 'ACL grants are not supported; access follows vault grants');
    if (n.startsWith('x-amz-object-lock-')) throw new S3Error('NotImplemented', 'object lock is not supported');
    if (n === 'x-amz-tagging') throw new S3Error('NotImplemented', 'object tagging is not supported');
    if (n === 'x-amz-website-redirect-location') throw new S3Error('NotImplemented', 'website redirects are not supported');
    if (n === 'x-amz-storage-class' && value.trim() !== 'STANDARD') throw new S3Error('NotImplemented', `storage class ${value} is not supported (STANDARD is)`);
    if (n === 'x-amz-expected-bucket-owner' || n === 'x-amz-source-expected-bucket-owner') throw new S3Error('NotImplemented', 'bucket owner checks (account ids) are not supported');
  });
}

/** The stored headers and user metadata of a PUT / CreateMultipartUpload / CopyObject REPLACE. */
export function storedFrom(headers: Headers): { headers: Record<string, string>; meta: Record<string, string> } {
  const stored: Record<string, string> = {};
  const meta: Record<string, string> = {};
  let size = 0;
  for (const h of STORED_HEADERS) {
    const v = headers.get(h);
    if (v === null) continue;
    if (h === 'content-encoding') {
      // aws-chunked is the transfer framing, not the object's encoding
      const rest = v.split(',').map((s) => s.trim()).filter((s) => s !== '' && s !== 'aws-chunked');
      if (rest.length > 0) stored[h] = rest.join(',');
      continue;
    }
    stored[h] = v;
  }
  headers.forEach((value, name) => {
    const n = name.toLowerCase();
    if (!n.startsWith('x-amz-meta-')) return;
    const k = n.slice('x-amz-meta-'.length);
    size += Buffer.byteLength(k) + Buffer.byteLength(value);
    meta[k] = value;
  });
  if (size > MAX_USER_META) throw new S3Error('MetadataTooLarge', 'Your metadata headers exceed the maximum allowed metadata size (2 KB)');
  return { headers: stored, meta };
}

const OVERRIDES: Record<string, string> = {
  'response-content-type': 'content-type',
  'response-content-language': 'content-language',
  'response-expires': 'expires',
  'response-cache-control': 'cache-control',
  'response-content-disposition': 'content-disposition',
  'response-content-encoding': 'content-encoding',
};

/** GET/HEAD response headers of an object. */
export function objectHeaders(info: FileInfo, etag: string, meta: ObjectMeta | null, query: URLSearchParams): Record<string, string> {
  const out: Record<string, string> = {
    etag,
    'last-modified': toHttpDate(new Date(info.modifiedAt)),
    'accept-ranges': 'bytes',
    'content-type': 'binary/octet-stream',
  };
  if (meta) {
    Object.assign(out, meta.headers);
    for (const [k, v] of Object.entries(meta.meta)) out[`x-amz-meta-${k}`] = v;
  }
  for (const [q, h] of Object.entries(OVERRIDES)) {
    const v = query.get(q);
    if (v !== null) out[h] = v;
  }
  return out;
}
