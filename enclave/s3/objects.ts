// Object operations: PutObject, GetObject, HeadObject, DeleteObject, CopyObject (S3 API reference, "Actions").
// A PUT streams the verified body into a new sealed vault file that replaces the old one atomically, then
// records the object's metadata sidecar (object-meta.ts). CopyObject re-seals: the source is read and opened
// in the enclave and written as a new blob under a new data key (no blob is shared by two files).
import { createHash } from 'node:crypto';
import { isCofferError } from '../../src/errors.js';
import { webBody, type BodyReader } from '../gateway/send-body.js';
import type { FileInfo, OpenedObject } from './backend.js';
import { emptyResponse, errorResponse, slowXmlResponse, withDirectBody, type S3Context } from './context.js';
import { S3Error, isNotFound, toS3Error } from './errors.js';
import { conditionsFrom, evaluateConditions, parseRange, toIsoDate } from './http-semantics.js';
import { keyOf, objectPath } from './mapping.js';
import { objectHeaders, refuseUnsupported, storedFrom } from './object-headers.js';
import { describe, removeMeta, writeMeta, type ObjectMeta } from './object-meta.js';
import { prepareBody } from './request-body.js';
import { xmlDocument } from './xml.js';

const EMPTY_MD5 = 'd41d8cd98f00b204e9800998ecf8427e';

export async function putObject(ctx: S3Context): Promise<Response> {
  const key = ctx.key as string;
  const { path, marker } = objectPath(ctx.bucket, key);
  refuseUnsupported(ctx.req.headers);
  if (ctx.req.headers.get('if-match') !== null) throw new S3Error('NotImplemented', 'conditional writes with If-Match are not supported');
  const ifNoneMatch = ctx.req.headers.get('if-none-match');
  if (ifNoneMatch !== null && ifNoneMatch.trim() !== '*') throw new S3Error('NotImplemented', 'If-None-Match on PUT supports only *');
  const stored = storedFrom(ctx.req.headers);
  const body = prepareBody(ctx.req.body ?? [], ctx.req.headers, ctx.auth, ctx.limits.maxObjectSize);
  if (marker) {
    if (body.size !== 0) throw new S3Error('InvalidArgument', 'an object whose key ends in "/" is a directory marker and must be empty');
    for await (const _ of body.stream) { /* verifies the (empty) body */ }
    await ensureBucket(ctx);
    await ctx.backend.mkdir(ctx.who, path, true).catch((e: unknown) => { throw conflictOr(e); });
    return emptyResponse(200, { etag: `"${EMPTY_MD5}"` });
  }
  await ensureParent(ctx, path);
  const info = await ctx.backend.put(ctx.who, path, body.stream, body.size, { overwrite: ifNoneMatch === null }).catch((e: unknown) => {
    if (isCofferError(e) && e.code === 'ALREADY_EXISTS') throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', { Condition: 'If-None-Match' });
    throw conflictOr(e);
  });
  const etag = `"${body.digests().md5Hex}"`;
  await writeMeta(ctx.backend, ctx.who, ctx.bucket, { v: 1, key, blobId: info.blobId as string, etag, headers: stored.headers, meta: stored.meta });
  return emptyResponse(200, { etag });
}

export async function getObject(ctx: S3Context, head: boolean): Promise<Response> {
  const key = ctx.key as string;
  const { path, marker } = objectPath(ctx.bucket, key);
  checkVersion(ctx.query);
  if (ctx.query.has('partNumber')) throw new S3Error('NotImplemented', 'GET by partNumber is not supported');
  if (marker) {
    const info = await ctx.backend.stat(ctx.who, path).catch((e: unknown) => { throw toS3Error(e); });
    if (info.type !== 'dir') throw new S3Error('NoSuchKey', 'The specified key does not exist.');
    return emptyResponse(200, { etag: `"${EMPTY_MD5}"`, 'content-length': '0', 'content-type': 'application/x-directory', 'last-modified': new Date(info.modifiedAt).toUTCString() });
  }
  if (head) {
    // no data key for a HEAD: the file's node (stat) and its sidecar say all a HEAD answers
    const info = await statObject(ctx, path);
    const answer = await answerFor(ctx, key, info);
    return answer instanceof Response ? answer : emptyResponse(answer.status, answer.headers);
  }
  // opened once: its records checked and its key released here, then conditions, range and body all come from
  // this one opening (a replacement meanwhile does not change what this answer describes or sends)
  const file = await openObject(ctx, path);
  let handedOver = false;
  try {
    const answer = await answerFor(ctx, key, file.info);
    if (answer instanceof Response) return answer;
    const { status, headers, start, end } = answer;
    // the file is closed (its key zeroed) when whichever body is read ends, fails or is abandoned
    let reader: 'web' | 'direct' | null = null;
    const readAs = (who: 'web' | 'direct'): BodyReader => (sink) => {
      if (reader !== null) return Promise.reject(new Error('the body is read once'));
      reader = who;
      return file.read(start, end, sink);
    };
    const done = (): void => file.close();
    handedOver = true;
    const res = new Response(webBody(readAs('web'), done), { status, headers });
    return withDirectBody(res, {
      read: readAs('direct'), done,
      failed: (e) => errorResponse(toS3Error(e), `/${ctx.bucket}/${key}`, ctx.requestId, false),
    });
  } finally {
    if (!handedOver) file.close();
  }
}

/** What a GET or HEAD of `info` answers: a 304 or another early Response, or the status, headers and byte range to send. */
async function answerFor(ctx: S3Context, key: string, info: FileInfo): Promise<Response | { status: number; headers: Record<string, string>; start: number; end: number }> {
  const { etag, meta } = await describe(ctx.backend, ctx.who, ctx.bucket, key, info, ctx.metaCache);
  const outcome = evaluateConditions(conditionsFrom(ctx.req.headers), { etag, lastModified: new Date(info.modifiedAt) });
  if (outcome === 'precondition-failed') throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
  const headers = objectHeaders(info, etag, meta, ctx.query);
  if (outcome === 'not-modified') return emptyResponse(304, { etag, 'last-modified': headers['last-modified'] as string });
  const range = parseRange(ctx.req.headers.get('range'), info.size);
  const start = range?.start ?? 0;
  const end = range?.end ?? info.size;
  headers['content-length'] = String(end - start);
  if (range) headers['content-range'] = `bytes ${start}-${end - 1}/${info.size}`;
  return { status: range ? 206 : 200, headers, start, end };
}

/** Opens the object at `path` for reading (VaultBackend.open). Throws NoSuchKey, NoSuchBucket, the mapped vault errors. */
async function openObject(ctx: S3Context, path: string): Promise<OpenedObject> {
  try {
    return await ctx.backend.open(ctx.who, path);
  } catch (e) {
    if (isNotFound(e)) {
      await ensureBucket(ctx);
      throw new S3Error('NoSuchKey', 'The specified key does not exist.');
    }
    throw toS3Error(e); // IS_A_DIRECTORY: NoSuchKey
  }
}

export async function deleteObject(ctx: S3Context): Promise<Response> {
  checkVersion(ctx.query);
  await deleteKey(ctx, ctx.key as string);
  return emptyResponse(204);
}

/** Deletes one key; absent keys are fine (S3 answers 204). Throws S3Error. */
export async function deleteKey(ctx: S3Context, key: string): Promise<void> {
  const { path, marker } = objectPath(ctx.bucket, key);
  try {
    if (marker) {
      // only a directory is a marker: "x/" never deletes a file "x"
      if ((await ctx.backend.stat(ctx.who, path)).type !== 'dir') return;
      await ctx.backend.remove(ctx.who, path, false);
    } else {
      const info = await ctx.backend.stat(ctx.who, path);
      if (info.type !== 'file') return;
      await ctx.backend.remove(ctx.who, path, false);
      await removeMeta(ctx.backend, ctx.who, ctx.bucket, key);
    }
  } catch (e) {
    if (isCofferError(e) && e.code === 'DIRECTORY_NOT_EMPTY') return;
    if (!isNotFound(e)) throw toS3Error(e);
    await ensureBucket(ctx);
    return;
  }
  await pruneEmptyParents(ctx, path);
}

/**
 * Directories are implicit in S3: once the last key below a prefix is gone, the prefix is gone. So after a
 * delete, emptied parent directories are removed up to the bucket (a directory still holding anything stays).
 */
async function pruneEmptyParents(ctx: S3Context, path: string): Promise<void> {
  const bucketRoot = `/${ctx.bucket}`;
  for (let dir = parentOf(path); dir !== bucketRoot && dir.startsWith(`${bucketRoot}/`); dir = parentOf(dir)) {
    try {
      await ctx.backend.remove(ctx.who, dir, false);
    } catch {
      return; // not empty, gone already, or not ours to remove
    }
  }
}

export async function copyObject(ctx: S3Context): Promise<Response> {
  const key = ctx.key as string;
  const { path, marker } = objectPath(ctx.bucket, key);
  if (marker) throw new S3Error('InvalidArgument', 'cannot copy onto a directory marker');
  refuseUnsupported(ctx.req.headers);
  const source = parseCopySource(ctx.req.headers.get('x-amz-copy-source') as string);
  const srcPath = objectPath(source.bucket, source.key);
  if (srcPath.marker) throw new S3Error('InvalidArgument', 'cannot copy a directory marker');
  const directive = (ctx.req.headers.get('x-amz-metadata-directive') ?? 'COPY').toUpperCase();
  if (directive !== 'COPY' && directive !== 'REPLACE') throw new S3Error('InvalidArgument', 'x-amz-metadata-directive must be COPY or REPLACE');
  if (ctx.req.headers.has('x-amz-tagging-directive') && ctx.req.headers.get('x-amz-tagging-directive') !== 'COPY') throw new S3Error('NotImplemented', 'object tagging is not supported');
  const info = await ctx.backend.stat(ctx.who, srcPath.path).catch((e: unknown) => { throw toS3Error(e); });
  if (info.type !== 'file') throw new S3Error('NoSuchKey', 'The specified key does not exist.');
  const { etag, meta } = await describe(ctx.backend, ctx.who, source.bucket, source.key, info, ctx.metaCache);
  if (evaluateConditions(conditionsFrom(ctx.req.headers, 'x-amz-copy-source-if-'), { etag, lastModified: new Date(info.modifiedAt) }) !== 'ok') {
    throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
  }
  if (srcPath.path === path && directive === 'COPY') {
    throw new S3Error('InvalidRequest', 'This copy request is illegal because it is trying to copy an object to itself without changing the object\'s metadata, storage class, website redirect location or encryption attributes.');
  }
  const stored = directive === 'REPLACE' ? storedFrom(ctx.req.headers) : { headers: meta?.headers ?? {}, meta: meta?.meta ?? {} };
  await ensureParent(ctx, path);
  const resource = `/${ctx.bucket}/${key}`;
  return slowXmlResponse(async () => {
    const { body } = await ctx.backend.read(ctx.who, srcPath.path, undefined, info.blobId as string).catch((e: unknown) => { throw toS3Error(e); });
    const md5 = createHash('md5');
    const hashed = (async function* () {
      for await (const p of body) {
        md5.update(p);
        yield p;
      }
    })();
    const written = await ctx.backend.put(ctx.who, path, hashed, info.size, { overwrite: true }).catch((e: unknown) => { throw conflictOr(e); });
    const newEtag = `"${md5.digest('hex')}"`;
    await writeMeta(ctx.backend, ctx.who, ctx.bucket, { v: 1, key, blobId: written.blobId as string, etag: newEtag, headers: stored.headers, meta: stored.meta });
    return xmlDocument('CopyObjectResult', { LastModified: toIsoDate(new Date(written.modifiedAt)), ETag: newEtag });
  }, ctx.requestId, resource);
}

/** `x-amz-copy-source`: `[/]bucket/key[?versionId=null]`, URL-encoded. */
export function parseCopySource(header: string): { bucket: string; key: string } {
  let value = header.trim();
  const q = value.indexOf('?');
  if (q >= 0) {
    const v = new URLSearchParams(value.slice(q + 1)).get('versionId');
    if (v !== null && v !== 'null') throw new S3Error('NotImplemented', 'versioning is not supported');
    value = value.slice(0, q);
  }
  let decoded: string;
  try {
    decoded = decodeURIComponent(value);
  } catch {
    throw new S3Error('InvalidArgument', 'x-amz-copy-source is not valid percent-encoding');
  }
  if (decoded.startsWith('/')) decoded = decoded.slice(1);
  const slash = decoded.indexOf('/');
  if (slash <= 0 || slash === decoded.length - 1) throw new S3Error('InvalidArgument', 'Copy Source must mention the source bucket and key: sourcebucket/sourcekey');
  return { bucket: decoded.slice(0, slash), key: decoded.slice(slash + 1) };
}

export async function statObject(ctx: S3Context, path: string): Promise<FileInfo> {
  let info: FileInfo;
  try {
    info = await ctx.backend.stat(ctx.who, path);
  } catch (e) {
    if (isNotFound(e)) {
      await ensureBucket(ctx);
      throw new S3Error('NoSuchKey', 'The specified key does not exist.');
    }
    throw toS3Error(e);
  }
  if (info.type !== 'file') throw new S3Error('NoSuchKey', 'The specified key does not exist.');
  return info;
}

/** Throws NoSuchBucket when the request's bucket is not a top-level directory. */
export async function ensureBucket(ctx: S3Context): Promise<void> {
  const info = await ctx.backend.stat(ctx.who, `/${ctx.bucket}`).catch((e: unknown) => { throw toS3Error(e, 'NoSuchBucket'); });
  if (info.type !== 'dir') throw new S3Error('NoSuchBucket', 'The specified bucket does not exist');
}

/** The bucket must exist; the directories of the key are created as needed. */
export async function ensureParent(ctx: S3Context, path: string): Promise<void> {
  await ensureBucket(ctx);
  const parent = parentOf(path);
  if (parent !== `/${ctx.bucket}`) await ctx.backend.mkdir(ctx.who, parent, true).catch((e: unknown) => { throw conflictOr(e); });
}

function parentOf(path: string): string {
  return path.slice(0, path.lastIndexOf('/')) || '/';
}

/** A key whose path runs into a file, or a file key where a directory is: the vault cannot hold both. */
function conflictOr(e: unknown): S3Error {
  if (isCofferError(e) && (e.code === 'NOT_A_DIRECTORY' || e.code === 'IS_A_DIRECTORY' || e.code === 'ALREADY_EXISTS')) {
    return new S3Error('InvalidRequest', 'the key conflicts with an existing object or prefix: in the vault a name is either an object or a directory ("a" and "a/b" cannot both exist)');
  }
  return toS3Error(e);
}

function checkVersion(query: URLSearchParams): void {
  const v = query.get('versionId');
  if (v !== null && v !== 'null') throw new S3Error('InvalidArgument', 'Invalid version id specified (versioning is not supported)');
}

export { keyOf };
export type { ObjectMeta };
