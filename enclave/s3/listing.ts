// ListObjectsV2, ListObjects (v1) and ListBuckets. Keys come from walking the bucket's directory tree in S3's
// order (UTF-8 byte order of whole keys), which is not the vault's per-directory name order: a directory "a"
// holds keys "a/…", which sort after a sibling "a-b" ('-' < '/') but before "a0". So a directory is held back
// while the names that sort between "a" and "a/" go by (they follow it directly in name order), then walked.
// Continuations seek: each level lists only names after the continuation key's segment (plus the few
// prefixes of it that sort after it as directories), so a page costs the same at any depth of a listing.
import type { FileInfo, Principal, VaultBackend } from './backend.js';
import { xmlResponse, type S3Context } from './context.js';
import { S3Error, isNotFound, toS3Error } from './errors.js';
import { toIsoDate } from './http-semantics.js';
import { RESERVED } from './mapping.js';
import { describe } from './object-meta.js';
import { xmlDocument } from './xml.js';

const PAGE = 1000;

interface Entry { key: string; info: FileInfo; dir: boolean }
type Item = { kind: 'object'; key: string; info: FileInfo } | { kind: 'prefix'; key: string };

/** Directory entries in name order, starting at names ≥ `from` (and the prefixes of `from` that may sort after it). */
async function* entries(backend: VaultBackend, who: Principal, dir: string, from: string | null): AsyncGenerator<FileInfo> {
  if (from !== null && from !== '') {
    // names before `from` in name order that still matter: `from` itself, and directories named by a prefix of
    // it followed by a character below '/' (they sort as "prefix/", after `from`)
    const extra: FileInfo[] = [];
    const candidates = new Set<string>([from]);
    for (let i = 1; i < from.length; i++) if ((from[i] as string) < '/') candidates.add(from.slice(0, i));
    for (const name of [...candidates].sort(byteOrder)) {
      const info = await backend.stat(who, `${dir}/${name}`).catch((e: unknown) => { if (isNotFound(e)) return null; throw e; });
      if (info && (name === from || info.type === 'dir')) extra.push(info);
    }
    yield* extra;
  }
  let after = from !== null && from !== '' ? from : undefined;
  for (;;) {
    const page = await backend.list(who, dir, { after, limit: PAGE });
    yield* page.items;
    if (page.next === null) return;
    after = page.next;
  }
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * Items of `dir` (key prefix `keyPrefix`, ending in '/' or empty at the bucket) in S3 order, all keys > `after`.
 * With `recursive`, directories are walked (an empty one yields its "dir/" marker); otherwise they are
 * prefixes. `nameStart` limits the names at this level to those starting with it (the ListObjects prefix).
 */
async function* walk(
  backend: VaultBackend, who: Principal, dir: string, keyPrefix: string, after: string, recursive: boolean, nameStart: string, top: boolean,
): AsyncGenerator<Item> {
  // where to start at this level: the continuation's segment here, or the prefix's
  let from: string | null = nameStart;
  if (after.startsWith(keyPrefix) && after.length > keyPrefix.length) {
    const rest = after.slice(keyPrefix.length);
    const seg = rest.includes('/') ? rest.slice(0, rest.indexOf('/')) : rest;
    if (byteOrder(seg, nameStart) > 0) from = seg;
  } else if (after !== '' && byteOrder(after, keyPrefix) > 0) {
    return; // everything under this directory sorts before the continuation
  }
  const held: Entry[] = [];
  async function* release(upTo: string | null): AsyncGenerator<Item> {
    // emit held directories that nothing still to come can precede
    while (held.length > 0) {
      const d = held[held.length - 1] as Entry;
      const name = d.info.name;
      if (upTo !== null && upTo.startsWith(name) && upTo.length > name.length && (upTo[name.length] as string) < '/') return;
      held.pop();
      yield* emitDir(d);
    }
  }
  async function* emitDir(d: Entry): AsyncGenerator<Item> {
    const cp = `${d.key}/`;
    if (!recursive) {
      if (byteOrder(cp, after) > 0) yield { kind: 'prefix', key: cp };
      return;
    }
    let any = false;
    for await (const item of walk(backend, who, d.info.path, cp, after, true, '', false)) {
      any = true;
      yield item;
    }
    if (!any && byteOrder(cp, after) > 0 && !(await hasChildren(backend, who, d.info.path))) yield { kind: 'object', key: cp, info: d.info };
  }
  for await (const info of entries(backend, who, dir, from)) {
    if (top && info.name === RESERVED) continue;
    if (!info.name.startsWith(nameStart)) {
      if (byteOrder(info.name, nameStart) > 0) break; // past every name with the prefix
      continue;
    }
    yield* release(info.name);
    const key = keyPrefix + info.name;
    if (info.type === 'dir') {
      held.push({ key, info, dir: true });
    } else if (byteOrder(key, after) > 0) {
      yield { kind: 'object', key, info };
    }
  }
  yield* release(null);
}

async function hasChildren(backend: VaultBackend, who: Principal, dir: string): Promise<boolean> {
  return (await backend.list(who, dir, { limit: 1 })).items.length > 0;
}

interface ListParams { prefix: string; delimiter: string; maxKeys: number; after: string }

interface ListResult { objects: Array<{ key: string; info: FileInfo }>; prefixes: string[]; truncated: boolean; last: string | null }

async function list(ctx: S3Context, p: ListParams): Promise<ListResult> {
  if (p.delimiter !== '' && p.delimiter !== '/') throw new S3Error('NotImplemented', 'only "/" is supported as a delimiter');
  const bucketDir = `/${ctx.bucket}`;
  await ctx.backend.stat(ctx.who, bucketDir).catch((e: unknown) => { throw toS3Error(e, 'NoSuchBucket'); });
  const result: ListResult = { objects: [], prefixes: [], truncated: false, last: null };
  if (p.maxKeys === 0) return result;
  const cut = p.prefix.lastIndexOf('/');
  const dirKey = p.prefix.slice(0, cut + 1); // "" or "a/b/"
  const nameStart = p.prefix.slice(cut + 1);
  if (dirKey.split('/').slice(0, -1).some((s) => s === '' || s === '.' || s === '..')) return result; // no such directory can exist
  if (dirKey.startsWith(`${RESERVED}/`)) return result;
  const dir = dirKey === '' ? bucketDir : `${bucketDir}/${dirKey.slice(0, -1)}`;
  const after = byteOrder(p.after, p.prefix) > 0 ? p.after : '';
  try {
    for await (const item of walk(ctx.backend, ctx.who, dir, dirKey, after, p.delimiter === '', nameStart, dirKey === '')) {
      if (result.objects.length + result.prefixes.length >= p.maxKeys) {
        result.truncated = true;
        break;
      }
      if (item.kind === 'prefix') result.prefixes.push(item.key);
      else result.objects.push({ key: item.key, info: item.info });
      result.last = item.key;
    }
  } catch (e) {
    if (isNotFound(e)) return result; // the prefix's directory does not exist (or went away)
    throw toS3Error(e, 'NoSuchBucket');
  }
  return result;
}

function maxKeysOf(q: URLSearchParams): number {
  const v = q.get('max-keys');
  if (v === null) return 1000;
  if (!/^\d+$/.test(v)) throw new S3Error('InvalidArgument', 'max-keys must be a non-negative integer');
  return Math.min(1000, Number(v));
}

function encoderOf(q: URLSearchParams): (s: string) => string {
  const t = q.get('encoding-type');
  if (t === null) return (s) => s;
  if (t !== 'url') throw new S3Error('InvalidArgument', 'Invalid Encoding Method specified in Request');
  return (s) => encodeURIComponent(s).replace(/%2F/g, '/').replace(/%20/g, '+');
}

async function contents(ctx: S3Context, objects: ListResult['objects'], enc: (s: string) => string): Promise<Array<Record<string, unknown>>> {
  // ETags come from each object's sidecar: read a few at a time, in order
  const out: Array<Record<string, unknown>> = new Array(objects.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < objects.length) {
      const i = next++;
      const o = objects[i] as ListResult['objects'][number];
      const etag = o.key.endsWith('/') ? '"d41d8cd98f00b204e9800998ecf8427e"'
        : (await describe(ctx.backend, ctx.who, ctx.bucket, o.key, o.info, ctx.metaCache)).etag;
      out[i] = {
        Key: enc(o.key), LastModified: toIsoDate(new Date(o.info.modifiedAt)), ETag: etag,
        Size: o.key.endsWith('/') ? 0 : o.info.size, StorageClass: 'STANDARD',
      };
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, objects.length) }, worker));
  return out;
}

export async function listObjectsV2(ctx: S3Context): Promise<Response> {
  const q = ctx.query;
  const enc = encoderOf(q);
  const token = q.get('continuation-token');
  let after = q.get('start-after') ?? '';
  if (token !== null) {
    const decoded = Buffer.from(token, 'base64url').toString('utf8');
    if (token === '' || !decoded.startsWith('k:')) throw new S3Error('InvalidArgument', 'The continuation token provided is incorrect');
    after = decoded.slice(2);
  }
  const p: ListParams = { prefix: q.get('prefix') ?? '', delimiter: q.get('delimiter') ?? '', maxKeys: maxKeysOf(q), after };
  const r = await list(ctx, p);
  const body: Record<string, unknown> = {
    Name: ctx.bucket, Prefix: enc(p.prefix), ...(q.has('start-after') ? { StartAfter: enc(q.get('start-after') as string) } : {}),
    ...(token !== null ? { ContinuationToken: token } : {}),
    KeyCount: r.objects.length + r.prefixes.length, MaxKeys: p.maxKeys, ...(p.delimiter ? { Delimiter: enc(p.delimiter) } : {}),
    IsTruncated: r.truncated,
    ...(r.truncated && r.last !== null ? { NextContinuationToken: Buffer.from(`k:${r.last}`, 'utf8').toString('base64url') } : {}),
    ...(q.get('encoding-type') === 'url' ? { EncodingType: 'url' } : {}),
    Contents: await contents(ctx, r.objects, enc),
    CommonPrefixes: r.prefixes.map((x) => ({ Prefix: enc(x) })),
  };
  return xmlResponse(xmlDocument('ListBucketResult', body));
}

export async function listObjectsV1(ctx: S3Context): Promise<Response> {
  const q = ctx.query;
  const enc = encoderOf(q);
  const p: ListParams = { prefix: q.get('prefix') ?? '', delimiter: q.get('delimiter') ?? '', maxKeys: maxKeysOf(q), after: q.get('marker') ?? '' };
  const r = await list(ctx, p);
  const body: Record<string, unknown> = {
    Name: ctx.bucket, Prefix: enc(p.prefix), Marker: enc(p.after), MaxKeys: p.maxKeys, ...(p.delimiter ? { Delimiter: enc(p.delimiter) } : {}),
    IsTruncated: r.truncated, ...(r.truncated && r.last !== null ? { NextMarker: enc(r.last) } : {}),
    ...(q.get('encoding-type') === 'url' ? { EncodingType: 'url' } : {}),
    Contents: await contents(ctx, r.objects, enc),
    CommonPrefixes: r.prefixes.map((x) => ({ Prefix: enc(x) })),
  };
  return xmlResponse(xmlDocument('ListBucketResult', body));
}

/** Every top-level directory the user can see is a bucket (names starting with "." are not buckets). */
export async function listBuckets(backend: VaultBackend, who: Principal): Promise<Response> {
  const buckets: Array<Record<string, unknown>> = [];
  try {
    for await (const info of entries(backend, who, '/', null)) {
      if (info.type === 'dir' && !info.name.startsWith('.')) buckets.push({ Name: info.name, CreationDate: toIsoDate(new Date(info.modifiedAt)) });
    }
  } catch (e) {
    throw toS3Error(e);
  }
  return xmlResponse(xmlDocument('ListAllMyBucketsResult', { Owner: { ID: who.user, DisplayName: who.user }, Buckets: { Bucket: buckets } }));
}
