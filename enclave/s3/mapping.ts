// Bucket and key ↔ vault path. A bucket is a top-level directory of the vault; an object key is the path
// below it, `/` separating directories (docs/s3-api.md "Mapping"). Keys that cannot be vault paths are
// refused with InvalidArgument (never silently rewritten): empty segments (`a//b`, a leading `/`), `.` and
// `..` segments, control characters, a segment over 255 bytes. A key ending in `/` is a directory marker.
import { S3Error } from './errors.js';

/** The reserved directory in every bucket that holds object metadata and multipart uploads. */
export const RESERVED = '.coffer-s3';
export const MAX_KEY_BYTES = 1024;

/** Bucket names CreateBucket accepts (S3's rules for new buckets; no IP-address form, no `..`). */
export function checkNewBucketName(name: string): void {
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(name) || name.includes('..') || /^\d+\.\d+\.\d+\.\d+$/.test(name)) {
    throw new S3Error('InvalidBucketName', 'The specified bucket is not valid.', { BucketName: name });
  }
}

/** A bucket as named in a request: any valid vault name (existing top-level directories keep theirs). */
export function bucketPath(bucket: string): string {
  if (!isValidSegment(bucket) || bucket.startsWith('.')) throw new S3Error('InvalidBucketName', 'The specified bucket is not valid.', { BucketName: bucket });
  return `/${bucket}`;
}

export interface ObjectPath {
  /** The vault path (without the trailing `/` of a marker). */
  path: string;
  /** True for a key ending in `/`: a directory marker. */
  marker: boolean;
}

/** Throws S3Error InvalidArgument / KeyTooLongError for keys that are no vault path. */
export function objectPath(bucket: string, key: string): ObjectPath {
  const base = bucketPath(bucket);
  if (key === '') throw new S3Error('InvalidArgument', 'the object key is empty');
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) throw new S3Error('KeyTooLongError', 'Your key is too long');
  const marker = key.endsWith('/');
  const body = marker ? key.slice(0, -1) : key;
  const segments = body.split('/');
  for (const s of segments) {
    if (!isValidSegment(s)) {
      throw new S3Error('InvalidArgument', `the key "${key}" cannot be stored in the vault: empty, "." or ".." segments and control characters are not allowed`);
    }
  }
  if (segments[0] === RESERVED) throw new S3Error('InvalidArgument', `keys under ${RESERVED}/ are reserved`);
  return { path: `${base}/${body}`, marker };
}

/** The key of a vault path under a bucket (`/b/x/y` → `x/y`). */
export function keyOf(bucket: string, path: string): string {
  return path.slice(bucket.length + 2);
}

function isValidSegment(s: string): boolean {
  // eslint-disable-next-line no-control-regex
  return s !== '' && s !== '.' && s !== '..' && !/[\u0000-\u001f\u007f]/.test(s) && Buffer.byteLength(s, 'utf8') <= 255;
}
