// The S3 request handler: authenticates (SigV4, access keys), picks the operation from method, path and
// query (path-style addressing: /bucket/key), and turns every failure into S3's XML error. Subresources and
// features Coffer does not have answer NotImplemented, never a silent success.
import type { Principal, VaultBackend } from './backend.js';
import { DEFAULT_LIMITS, errorResponse, newRequestId, type S3Context, type S3Limits, type S3Request } from './context.js';
import { S3Error, toS3Error } from './errors.js';
import { createBucket, deleteBucket, getBucketLocation, getBucketVersioning, headBucket } from './buckets.js';
import { deleteObjects } from './delete-objects.js';
import { listBuckets, listObjectsV1, listObjectsV2 } from './listing.js';
import {
  abortMultipartUpload, completeMultipartUpload, createMultipartUpload, listMultipartUploads, listPartsOp, uploadPart, uploadPartCopy,
} from './multipart.js';
import { ObjectMetaCache } from './object-meta-cache.js';
import { copyObject, deleteObject, getObject, putObject } from './objects.js';
import { verifySigV4, type SecretLookup } from './sigv4.js';
import type { UploadSweeper } from './upload-sweep.js';

/** Bucket and object subresources that exist in S3 but not here. */
const UNSUPPORTED = [
  'acl', 'policy', 'policyStatus', 'cors', 'lifecycle', 'tagging', 'encryption', 'replication', 'website', 'logging', 'notification',
  'object-lock', 'legal-hold', 'retention', 'accelerate', 'requestPayment', 'analytics', 'inventory', 'metrics', 'intelligent-tiering',
  'ownershipControls', 'publicAccessBlock', 'versions', 'restore', 'select', 'torrent', 'attributes', 'session', 'rename',
];

/** Requests after which the bucket's sweep may run as their user (who can write there). */
const WRITES = new Set(['PUT', 'POST', 'DELETE']);

export interface S3HandlerOptions {
  backend: VaultBackend;
  lookup: SecretLookup;
  limits?: Partial<S3Limits>;
  now?: () => Date;
  /** Called with each request's outcome (for logs/metrics). */
  onResult?: (r: { method: string; path: string; status: number; code?: string; user?: string }) => void;
  /** Sweeps a bucket's abandoned multipart uploads after a successful write there, as the writer (upload-sweep.ts). */
  sweeper?: UploadSweeper;
  /** Default: a fresh cache per handler. */
  metaCache?: ObjectMetaCache;
}

export type S3Handler = (req: S3Request) => Promise<Response>;

export function createS3Handler(options: S3HandlerOptions): S3Handler {
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const metaCache = options.metaCache ?? new ObjectMetaCache();
  return async (req) => {
    const requestId = newRequestId();
    const head = req.method === 'HEAD';
    let user: string | undefined;
    try {
      const auth = await verifySigV4({ method: req.method, rawPath: req.rawPath, rawQuery: req.rawQuery, headers: req.headers }, options.lookup, options.now?.() ?? new Date());
      if (auth === null) throw new S3Error('AccessDenied', 'Anonymous access is not allowed: sign requests with a Coffer access key');
      user = auth.user;
      const who: Principal = { user: auth.user, admin: false };
      const res = await dispatch(req, { who, auth, backend: options.backend, limits, requestId, metaCache });
      res.headers.set('x-amz-request-id', requestId);
      const { bucket } = splitPath(req.rawPath);
      if (options.sweeper && bucket !== null && res.status < 300 && WRITES.has(req.method)) options.sweeper.touched(who, bucket);
      options.onResult?.({ method: req.method, path: req.rawPath, status: res.status, user });
      return res;
    } catch (e) {
      const err = toS3Error(e);
      options.onResult?.({ method: req.method, path: req.rawPath, status: err.status, code: err.code, user });
      return errorResponse(err, safeDecode(req.rawPath), requestId, head);
    }
  };
}

async function dispatch(req: S3Request, base: Omit<S3Context, 'req' | 'query' | 'bucket' | 'key'>): Promise<Response> {
  const { bucket, key } = splitPath(req.rawPath);
  const query = new URLSearchParams(req.rawQuery);
  if (bucket === null) {
    if (req.method === 'GET') return listBuckets(base.backend, base.who);
    throw new S3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.');
  }
  for (const sub of UNSUPPORTED) if (query.has(sub)) throw new S3Error('NotImplemented', `the ${sub} subresource is not supported`);
  const ctx: S3Context = { ...base, req, query, bucket, key };
  const m = req.method;
  if (key === null) {
    if (m === 'PUT') {
      if (query.has('versioning')) throw new S3Error('NotImplemented', 'versioning is not supported');
      return createBucket(ctx);
    }
    if (m === 'HEAD') return headBucket(ctx);
    if (m === 'DELETE') return deleteBucket(ctx);
    if (m === 'POST' && query.has('delete')) return deleteObjects(ctx);
    if (m === 'GET') {
      if (query.has('location')) return getBucketLocation(ctx);
      if (query.has('versioning')) return getBucketVersioning(ctx);
      if (query.has('uploads')) return listMultipartUploads(ctx);
      if (query.get('list-type') === '2') return listObjectsV2(ctx);
      if (query.has('list-type')) throw new S3Error('InvalidArgument', 'list-type must be 2');
      return listObjectsV1(ctx);
    }
    throw new S3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.');
  }
  const copy = req.headers.has('x-amz-copy-source');
  if (m === 'PUT') {
    if (query.has('uploadId') || query.has('partNumber')) return copy ? uploadPartCopy(ctx) : uploadPart(ctx);
    return copy ? copyObject(ctx) : putObject(ctx);
  }
  if (m === 'GET') return query.has('uploadId') ? listPartsOp(ctx) : getObject(ctx, false);
  if (m === 'HEAD') return getObject(ctx, true);
  if (m === 'DELETE') return query.has('uploadId') ? abortMultipartUpload(ctx) : deleteObject(ctx);
  if (m === 'POST') {
    if (query.has('uploads')) return createMultipartUpload(ctx);
    if (query.has('uploadId')) return completeMultipartUpload(ctx);
    throw new S3Error('NotImplemented', 'POST object (browser form uploads) is not supported');
  }
  throw new S3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.');
}

/** Path-style: `/bucket` or `/bucket/key…` (the key percent-decoded, kept whole, slashes included). */
export function splitPath(rawPath: string): { bucket: string | null; key: string | null } {
  const p = rawPath.startsWith('/') ? rawPath.slice(1) : rawPath;
  if (p === '') return { bucket: null, key: null };
  const slash = p.indexOf('/');
  const bucket = decode(slash < 0 ? p : p.slice(0, slash));
  const rest = slash < 0 ? '' : p.slice(slash + 1);
  return { bucket, key: rest === '' ? null : decode(rest) };
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new S3Error('InvalidArgument', 'the request path is not valid percent-encoding');
  }
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
