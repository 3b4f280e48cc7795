// Per-object S3 metadata (ETag, Content-Type, the other stored headers, x-amz-meta-*): the vault's file nodes
// carry none, so each object has a small sealed sidecar file `/<bucket>/.coffer-s3/meta/<sha256(key)>`, a JSON
// record bound to the object's blob id. A sidecar whose blob id is not the object's current one (the file was
// replaced or moved on the native API, or a PUT crashed between the two writes) is ignored: the object then has
// the fallback ETag `"<blob id>-1"` (never mistaken for an MD5) and no stored headers. docs/s3-api.md.
import { createHash } from 'node:crypto';
import { isCofferError } from '../../src/errors.js';
import type { FileInfo, Principal, VaultBackend } from './backend.js';
import { RESERVED } from './mapping.js';
import type { ObjectMetaCache } from './object-meta-cache.js';

/** Headers S3 stores with an object and returns on GET/HEAD. */
export const STORED_HEADERS = ['content-type', 'cache-control', 'content-disposition', 'content-encoding', 'content-language', 'expires'] as const;
const MAX_META_BYTES = 64 * 1024;

export interface ObjectMeta {
  v: 1;
  key: string;
  blobId: string;
  etag: string;
  headers: Record<string, string>;
  meta: Record<string, string>;
  /** Multipart: the part count (also the ETag's -N). */
  parts?: number;
}

export function metaDir(bucket: string): string {
  return `/${bucket}/${RESERVED}/meta`;
}

export function metaPath(bucket: string, key: string): string {
  return `${metaDir(bucket)}/${createHash('sha256').update(key, 'utf8').digest('hex')}`;
}

/** The ETag of an object with no valid sidecar. */
export function fallbackEtag(info: FileInfo): string {
  return `"${info.blobId ?? 'd41d8cd98f00b204e9800998ecf8427e'}-1"`;
}

/** Reads the sidecar of `key` if it describes `info`'s current content; null otherwise (never throws NOT_FOUND). */
export async function readMeta(backend: VaultBackend, who: Principal, bucket: string, key: string, info: FileInfo): Promise<ObjectMeta | null> {
  let text: string;
  try {
    const { info: m, body } = await backend.read(who, metaPath(bucket, key));
    if (m.size > MAX_META_BYTES) return null;
    const parts: Buffer[] = [];
    for await (const p of body) parts.push(Buffer.from(p));
    text = Buffer.concat(parts).toString('utf8');
  } catch (e) {
    if (isCofferError(e) && (e.code === 'NOT_FOUND' || e.code === 'NOT_A_DIRECTORY')) return null;
    throw e;
  }
  try {
    const m = JSON.parse(text) as ObjectMeta;
    return m.v === 1 && m.key === key && m.blobId === info.blobId && typeof m.etag === 'string' ? m : null;
  } catch {
    return null;
  }
}

/** Writes (replaces) the sidecar; creates the metadata directory when needed. */
export async function writeMeta(backend: VaultBackend, who: Principal, bucket: string, meta: ObjectMeta): Promise<void> {
  const bytes = Buffer.from(JSON.stringify(meta), 'utf8');
  if (bytes.length > MAX_META_BYTES) throw new Error('object metadata too large');
  const path = metaPath(bucket, meta.key);
  const put = (): Promise<FileInfo> => backend.put(who, path, [bytes], bytes.length, { overwrite: true });
  try {
    await put();
  } catch (e) {
    if (!isCofferError(e) || e.code !== 'NOT_FOUND') throw e;
    await backend.mkdir(who, metaDir(bucket), true);
    await put();
  }
}

/** Removes the sidecar of `key` (absent is fine). */
export async function removeMeta(backend: VaultBackend, who: Principal, bucket: string, key: string): Promise<void> {
  await backend.remove(who, metaPath(bucket, key), false).catch((e: unknown) => {
    if (!isCofferError(e) || e.code !== 'NOT_FOUND') throw e;
  });
}

/**
 * The ETag and stored headers of an object: from its sidecar, or the fallback. `cache`: sidecars already read for
 * this blob by this user (object-meta-cache.ts); `info` must come from this request's own stat.
 */
export async function describe(
  backend: VaultBackend, who: Principal, bucket: string, key: string, info: FileInfo, cache?: ObjectMetaCache,
): Promise<{ etag: string; meta: ObjectMeta | null }> {
  const cached = info.blobId !== null ? cache?.get(who, bucket, key, info.blobId) ?? null : null;
  const meta = cached ?? await readMeta(backend, who, bucket, key, info);
  if (meta && !cached) cache?.set(who, bucket, key, meta);
  return { etag: meta?.etag ?? fallbackEtag(info), meta };
}
