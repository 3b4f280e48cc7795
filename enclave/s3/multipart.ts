// Multipart upload (docs/s3-api.md "Multipart"). Each upload is a staging directory in the bucket's reserved
// area, `/<bucket>/.coffer-s3/uploads/<uploadId>/`, holding `upload.json` (key, metadata, initiator) and one
// sealed vault file per part, named `p<part number, 5 digits>-<MD5 hex>` once its body verified (it is
// written as `t<part>-<random>` and renamed: a part is visible only whole). Parts arrive in any order and in
// parallel, each streamed with flat memory. CompleteMultipartUpload streams the listed parts, in order, into
// one new sealed file that replaces the object atomically at its commit (no half-completed object is ever
// visible; a crash before the commit leaves the staging directory, which a retried Complete uses again or the
// sweep removes), then writes the object's metadata and removes the staging directory. Aborted uploads go at
// once; abandoned ones are swept per bucket by upload-sweep.ts.
import { createHash, randomBytes } from 'node:crypto';
import type { FileInfo, Principal, VaultBackend } from './backend.js';
import { emptyResponse, readSmallBody, slowXmlResponse, xmlResponse, type S3Context } from './context.js';
import { S3Error, isNotFound, toS3Error } from './errors.js';
import { conditionsFrom, evaluateConditions, parseRange, toIsoDate } from './http-semantics.js';
import { RESERVED, objectPath } from './mapping.js';
import { refuseUnsupported, storedFrom } from './object-headers.js';
import { describe, writeMeta } from './object-meta.js';
import { ensureParent, parseCopySource } from './objects.js';
import { prepareBody } from './request-body.js';
import { parseXmlBody, xmlDocument } from './xml.js';

const MAX_PARTS = 10000;
const UPLOAD_META = 'upload.json';

interface UploadRecord { v: 1; key: string; initiated: string; initiator: string; headers: Record<string, string>; meta: Record<string, string> }
interface StoredPart { number: number; md5: string; size: number; name: string; modifiedAt: string }

export function uploadsDir(bucket: string): string {
  return `/${bucket}/${RESERVED}/uploads`;
}

/** An upload id: 128 random bits, then 64 bits of SHA-256(key) so an id presented with another key is refused at once. */
function newUploadId(key: string): string {
  return randomBytes(16).toString('hex') + keyTag(key);
}

function keyTag(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex').slice(0, 16);
}

function uploadDirOf(ctx: S3Context): string {
  const id = ctx.query.get('uploadId') ?? '';
  if (!/^[0-9a-f]{48}$/.test(id) || id.slice(32) !== keyTag(ctx.key as string)) throw new S3Error('NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.');
  return `${uploadsDir(ctx.bucket)}/${id}`;
}

export async function createMultipartUpload(ctx: S3Context): Promise<Response> {
  const key = ctx.key as string;
  const { marker } = objectPath(ctx.bucket, key);
  if (marker) throw new S3Error('InvalidArgument', 'a directory marker (key ending in "/") cannot be uploaded in parts');
  refuseUnsupported(ctx.req.headers);
  const stored = storedFrom(ctx.req.headers);
  const uploadId = newUploadId(key);
  const dir = `${uploadsDir(ctx.bucket)}/${uploadId}`;
  await ctx.backend.stat(ctx.who, `/${ctx.bucket}`).catch((e: unknown) => { throw toS3Error(e, 'NoSuchBucket'); });
  await ctx.backend.mkdir(ctx.who, dir, true).catch((e: unknown) => { throw toS3Error(e, 'NoSuchBucket'); });
  const record: UploadRecord = { v: 1, key, initiated: new Date().toISOString(), initiator: ctx.who.user, headers: stored.headers, meta: stored.meta };
  const bytes = Buffer.from(JSON.stringify(record));
  await ctx.backend.put(ctx.who, `${dir}/${UPLOAD_META}`, [bytes], bytes.length);
  return xmlResponse(xmlDocument('InitiateMultipartUploadResult', { Bucket: ctx.bucket, Key: key, UploadId: uploadId }));
}

function partNumberOf(q: URLSearchParams): number {
  const v = q.get('partNumber') ?? '';
  if (!/^\d{1,5}$/.test(v) || Number(v) < 1 || Number(v) > MAX_PARTS) throw new S3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive');
  return Number(v);
}

const partName = (n: number, md5: string): string => `p${String(n).padStart(5, '0')}-${md5}`;

export async function uploadPart(ctx: S3Context): Promise<Response> {
  const dir = uploadDirOf(ctx);
  const number = partNumberOf(ctx.query);
  await statUpload(ctx, dir);
  const body = prepareBody(ctx.req.body ?? [], ctx.req.headers, ctx.auth, ctx.limits.maxObjectSize);
  const md5 = await storePart(ctx, dir, number, body.stream, body.size, () => body.digests().md5Hex);
  return emptyResponse(200, { etag: `"${md5}"` });
}

export async function uploadPartCopy(ctx: S3Context): Promise<Response> {
  const dir = uploadDirOf(ctx);
  const number = partNumberOf(ctx.query);
  await statUpload(ctx, dir);
  const source = parseCopySource(ctx.req.headers.get('x-amz-copy-source') as string);
  const src = objectPath(source.bucket, source.key);
  const info = await ctx.backend.stat(ctx.who, src.path).catch((e: unknown) => { throw toS3Error(e); });
  if (info.type !== 'file' || src.marker) throw new S3Error('NoSuchKey', 'The specified key does not exist.');
  const { etag: sourceEtag } = await describe(ctx.backend, ctx.who, source.bucket, source.key, info);
  if (evaluateConditions(conditionsFrom(ctx.req.headers, 'x-amz-copy-source-if-'), { etag: sourceEtag, lastModified: new Date(info.modifiedAt) }) !== 'ok') {
    throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
  }
  const rangeHeader = ctx.req.headers.get('x-amz-copy-source-range');
  const range = rangeHeader === null ? { start: 0, end: info.size } : parseRange(rangeHeader, info.size);
  if (range === null) throw new S3Error('InvalidArgument', 'The x-amz-copy-source-range value must be of the form bytes=first-last');
  if (range.end - range.start > ctx.limits.maxObjectSize) throw new S3Error('EntityTooLarge', 'the part is too large');
  const { body } = await ctx.backend.read(ctx.who, src.path, range, info.blobId as string).catch((e: unknown) => { throw toS3Error(e); });
  const hash = createHash('md5');
  const hashed = (async function* () {
    for await (const p of body) {
      hash.update(p);
      yield p;
    }
  })();
  const md5 = await storePart(ctx, dir, number, hashed, range.end - range.start, () => hash.digest('hex'));
  return xmlResponse(xmlDocument('CopyPartResult', { LastModified: toIsoDate(new Date()), ETag: `"${md5}"` }));
}

/** Writes a part under a temporary name, then renames it to its final name (with its MD5); older copies go. */
async function storePart(ctx: S3Context, dir: string, number: number, stream: AsyncIterable<Uint8Array>, size: number, md5Of: () => string): Promise<string> {
  const temp = `${dir}/t${String(number).padStart(5, '0')}-${randomBytes(8).toString('hex')}`;
  await ctx.backend.put(ctx.who, temp, stream, size).catch((e: unknown) => { throw toS3Error(e, 'NoSuchUpload'); });
  const md5 = md5Of();
  const name = partName(number, md5);
  try {
    await ctx.backend.move(ctx.who, temp, `${dir}/${name}`, true);
  } catch (e) {
    await ctx.backend.remove(ctx.who, temp, false).catch(() => undefined);
    throw toS3Error(e, 'NoSuchUpload');
  }
  // an earlier upload of this part number with other content is replaced. Best effort: a leftover copy is never
  // used (Complete picks parts by their ETag's name) and goes with the staging directory; and in the enclave a
  // listing can be refused while a concurrent part is mid-rename (its node still carries the MAC of its temporary
  // name until the gateway re-MACs it), which must not fail this part.
  try {
    for (const p of await listParts(ctx.backend, ctx.who, dir, true)) {
      if (p.number === number && p.name !== name) await ctx.backend.remove(ctx.who, `${dir}/${p.name}`, false).catch(() => undefined);
    }
  } catch {
    // the cleanup waits for the next upload of this number, an abort, or the staging directory's removal
  }
  return md5;
}

async function statUpload(ctx: S3Context, dir: string): Promise<void> {
  await ctx.backend.stat(ctx.who, `${dir}/${UPLOAD_META}`).catch((e: unknown) => { throw toS3Error(e, isNotFound(e) ? 'NoSuchUpload' : 'NoSuchKey'); });
}

async function readUpload(backend: VaultBackend, who: Principal, dir: string): Promise<UploadRecord> {
  try {
    const { body } = await backend.read(who, `${dir}/${UPLOAD_META}`);
    const parts: Buffer[] = [];
    for await (const p of body) parts.push(Buffer.from(p));
    return JSON.parse(Buffer.concat(parts).toString('utf8')) as UploadRecord;
  } catch (e) {
    throw toS3Error(e, 'NoSuchUpload');
  }
}

/** The stored parts of an upload, by part number (with `all`, every copy, else the newest of each number). */
async function listParts(backend: VaultBackend, who: Principal, dir: string, all = false): Promise<StoredPart[]> {
  const found: StoredPart[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await backend.list(who, dir, { after, limit: 1000 });
    for (const i of page.items) {
      const m = /^p(\d{5})-([0-9a-f]{32})$/.exec(i.name);
      if (m && i.type === 'file') found.push({ number: Number(m[1]), md5: m[2] as string, size: i.size, name: i.name, modifiedAt: i.modifiedAt });
    }
    if (page.next === null) break;
    after = page.next;
  }
  if (all) return found;
  const newest = new Map<number, StoredPart>();
  for (const p of found) {
    const prev = newest.get(p.number);
    if (!prev || p.modifiedAt > prev.modifiedAt) newest.set(p.number, p);
  }
  return [...newest.values()].sort((a, b) => a.number - b.number);
}

export async function completeMultipartUpload(ctx: S3Context): Promise<Response> {
  const key = ctx.key as string;
  const dir = uploadDirOf(ctx);
  const body = prepareBody(ctx.req.body ?? [], ctx.req.headers, ctx.auth, ctx.limits.maxXmlBytes);
  const doc = parseXmlBody((await readSmallBody(body.stream, ctx.limits.maxXmlBytes)).toString('utf8'), 'CompleteMultipartUpload');
  const record = await readUpload(ctx.backend, ctx.who, dir);
  const requested = ((doc.Part ?? []) as Array<Record<string, unknown>>).map((p) => ({
    number: Number(p.PartNumber), etag: String(p.ETag ?? '').trim().replace(/^"|"$/g, '').toLowerCase(),
  }));
  if (requested.length === 0) throw new S3Error('MalformedXML', 'You must specify at least one part');
  if (requested.length > MAX_PARTS) throw new S3Error('MalformedXML', 'too many parts');
  const stored = new Map((await listParts(ctx.backend, ctx.who, dir)).map((p) => [p.number, p]));
  for (let i = 0; i < requested.length; i++) {
    const r = requested[i] as { number: number; etag: string };
    if (!Number.isInteger(r.number) || r.number < 1 || r.number > MAX_PARTS) throw new S3Error('InvalidPart', `part ${String(r.number)} is not a valid part number`);
    if (i > 0 && r.number <= (requested[i - 1] as { number: number }).number) throw new S3Error('InvalidPartOrder', 'The list of parts was not in ascending order. Parts must be ordered by part number.');
  }
  const chosen: StoredPart[] = [];
  for (let i = 0; i < requested.length; i++) {
    const r = requested[i] as { number: number; etag: string };
    const p = stored.get(r.number);
    if (!p || p.md5 !== r.etag) {
      throw new S3Error('InvalidPart', 'One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part\'s entity tag.', { PartNumber: String(r.number), ETag: r.etag });
    }
    if (i < requested.length - 1 && p.size < ctx.limits.minPartSize) {
      throw new S3Error('EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed object size.', { PartNumber: String(r.number), ProposedSize: String(p.size), MinSizeAllowed: String(ctx.limits.minPartSize) });
    }
    chosen.push(p);
  }
  const { path } = objectPath(ctx.bucket, key);
  await ensureParent(ctx, path);
  const total = chosen.reduce((n, p) => n + p.size, 0);
  const etag = `"${createHash('md5').update(Buffer.concat(chosen.map((p) => Buffer.from(p.md5, 'hex')))).digest('hex')}-${chosen.length}"`;
  const backend = ctx.backend;
  const who = ctx.who;
  async function* concatenated(): AsyncGenerator<Uint8Array> {
    for (const p of chosen) {
      const { body: partBody, info } = await backend.read(who, `${dir}/${p.name}`);
      if (info.size !== p.size) throw new S3Error('InvalidPart', `part ${p.number} changed during the completion`);
      yield* partBody;
    }
  }
  return slowXmlResponse(async () => {
    const written: FileInfo = await backend.put(who, path, concatenated(), total, { overwrite: true }).catch((e: unknown) => { throw toS3Error(e); });
    await writeMeta(backend, who, ctx.bucket, { v: 1, key, blobId: written.blobId as string, etag, headers: record.headers, meta: record.meta, parts: chosen.length });
    await backend.remove(who, dir, true).catch(() => undefined); // left behind, the sweep takes it
    return xmlDocument('CompleteMultipartUploadResult', { Location: `/${ctx.bucket}/${encodeURIComponent(key)}`, Bucket: ctx.bucket, Key: key, ETag: etag });
  }, ctx.requestId, `/${ctx.bucket}/${key}`);
}

export async function abortMultipartUpload(ctx: S3Context): Promise<Response> {
  const dir = uploadDirOf(ctx);
  await statUpload(ctx, dir);
  await ctx.backend.remove(ctx.who, dir, true).catch((e: unknown) => { throw toS3Error(e, 'NoSuchUpload'); });
  return emptyResponse(204);
}

export async function listPartsOp(ctx: S3Context): Promise<Response> {
  const dir = uploadDirOf(ctx);
  const record = await readUpload(ctx.backend, ctx.who, dir);
  const markerText = ctx.query.get('part-number-marker') ?? '0';
  const maxText = ctx.query.get('max-parts') ?? '1000';
  if (!/^\d+$/.test(markerText) || !/^\d+$/.test(maxText)) throw new S3Error('InvalidArgument', 'part-number-marker and max-parts must be integers');
  const marker = Number(markerText);
  const max = Math.min(1000, Number(maxText));
  const all = (await listParts(ctx.backend, ctx.who, dir)).filter((p) => p.number > marker);
  const page = all.slice(0, max);
  const truncated = all.length > page.length;
  return xmlResponse(xmlDocument('ListPartsResult', {
    Bucket: ctx.bucket, Key: record.key, UploadId: ctx.query.get('uploadId'),
    Initiator: { ID: record.initiator, DisplayName: record.initiator }, Owner: { ID: record.initiator, DisplayName: record.initiator },
    StorageClass: 'STANDARD', PartNumberMarker: marker, ...(truncated ? { NextPartNumberMarker: page[page.length - 1]?.number } : {}),
    MaxParts: max, IsTruncated: truncated,
    Part: page.map((p) => ({ PartNumber: p.number, LastModified: toIsoDate(new Date(p.modifiedAt)), ETag: `"${p.md5}"`, Size: p.size })),
  }));
}

export async function listMultipartUploads(ctx: S3Context): Promise<Response> {
  const q = ctx.query;
  if ((q.get('delimiter') ?? '') !== '') throw new S3Error('NotImplemented', 'ListMultipartUploads with a delimiter is not supported');
  await ctx.backend.stat(ctx.who, `/${ctx.bucket}`).catch((e: unknown) => { throw toS3Error(e, 'NoSuchBucket'); });
  const prefix = q.get('prefix') ?? '';
  const keyMarker = q.get('key-marker') ?? '';
  const idMarker = q.get('upload-id-marker') ?? '';
  const maxText = q.get('max-uploads') ?? '1000';
  if (!/^\d+$/.test(maxText)) throw new S3Error('InvalidArgument', 'max-uploads must be an integer');
  const max = Math.min(1000, Number(maxText));
  const uploads: Array<{ id: string; record: UploadRecord }> = [];
  for (const d of await listDir(ctx.backend, ctx.who, uploadsDir(ctx.bucket))) {
    if (d.type !== 'dir') continue;
    const record = await readUpload(ctx.backend, ctx.who, d.path).catch(() => null);
    if (!record || !record.key.startsWith(prefix)) continue;
    uploads.push({ id: d.name, record });
  }
  uploads.sort((a, b) => Buffer.compare(Buffer.from(a.record.key), Buffer.from(b.record.key)) || a.record.initiated.localeCompare(b.record.initiated) || a.id.localeCompare(b.id));
  const after = uploads.filter((u) => keyMarker === '' || u.record.key > keyMarker || (u.record.key === keyMarker && idMarker !== '' && u.id > idMarker));
  const page = after.slice(0, max);
  const truncated = after.length > page.length;
  const last = page[page.length - 1];
  return xmlResponse(xmlDocument('ListMultipartUploadsResult', {
    Bucket: ctx.bucket, KeyMarker: keyMarker, UploadIdMarker: idMarker,
    ...(truncated && last ? { NextKeyMarker: last.record.key, NextUploadIdMarker: last.id } : {}),
    Prefix: prefix, MaxUploads: max, IsTruncated: truncated,
    Upload: page.map((u) => ({
      Key: u.record.key, UploadId: u.id, Initiator: { ID: u.record.initiator, DisplayName: u.record.initiator },
      Owner: { ID: u.record.initiator, DisplayName: u.record.initiator }, StorageClass: 'STANDARD', Initiated: u.record.initiated,
    })),
  }));
}

async function listDir(backend: VaultBackend, who: Principal, dir: string): Promise<FileInfo[]> {
  const out: FileInfo[] = [];
  let after: string | undefined;
  try {
    for (;;) {
      const page = await backend.list(who, dir, { after, limit: 1000 });
      out.push(...page.items);
      if (page.next === null) return out;
      after = page.next;
    }
  } catch (e) {
    if (isNotFound(e)) return out;
    throw e;
  }
}
