// Multipart upload (docs/s3-api.md "Multipart"). Each upload is a staging directory in the bucket's reserved
// area, `/<bucket>/.coffer-s3/uploads/<uploadId>/`, holding `upload.json` (key, metadata, initiator) and one
// sealed vault file per part, named `p<part number, 5 digits>-<MD5 hex>` once its body verified (written
// straight to that name when a Content-MD5 gives it, else as `t<part>-<random>` then renamed; either way the vault
// file appears only at its commit, so a part is visible only whole). Parts arrive in any order and in
// parallel, each streamed with flat memory. CompleteMultipartUpload streams the listed parts, in order, into
// one new sealed file that replaces the object atomically at its commit (no half-completed object is ever
// visible; a crash before the commit leaves the staging directory, which a retried Complete uses again or the
// sweep removes), then writes the object's metadata and removes the staging directory. Aborted uploads go at
// once; abandoned ones are swept per bucket by upload-sweep.ts.
import { createHash, randomBytes } from 'node:crypto';
import { isCofferError } from '../../src/errors.js';
import type { FileInfo, Principal, VaultBackend } from './backend.js';
import { emptyResponse, readSmallBody, xmlResponse, type S3Context } from './context.js';
import { S3Error, isNotFound, toS3Error } from './errors.js';
import { conditionsFrom, evaluateConditions, parseRange, toIsoDate } from './http-semantics.js';
import { RESERVED, objectPath } from './mapping.js';
import { refuseUnsupported, storedFrom } from './object-headers.js';
import { describe } from './object-meta.js';
import { parseCopySource } from './objects.js';
import { prepareBody } from './request-body.js';
import { completeParts } from './multipart-complete.js';
import { heldFrom, holdPart, partPlaced, partStaged, releaseHeld, stopJoining } from './multipart-join.js';
import { CHUNK, UPLOAD_META, claimName, pad, firstCopyHere, forgetUpload, geometryOf, newestParts, placedName, readStaging, readUpload, remember, stagedName, type StoredPart, type UploadRecord } from './upload-staging.js';
import { parseXmlBody, xmlDocument } from './xml.js';

const MAX_PARTS = 10000;

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
  // the placed upload's file is bound inside the staging directory and moved onto the key at Complete, so that
  // nothing (not even the key's parent directories) appears before then
  const blob = ctx.backend.placed ? await ctx.backend.placed.open(ctx.who, `${dir}/object`).catch((e: unknown) => { throw toS3Error(e, 'NoSuchBucket'); }) : undefined;
  const record: UploadRecord = { v: blob ? 2 : 1, key, initiated: new Date().toISOString(), initiator: ctx.who.user, headers: stored.headers, meta: stored.meta, ...(blob ? { blob } : {}) };
  const bytes = Buffer.from(JSON.stringify(record));
  await ctx.backend.put(ctx.who, `${dir}/${UPLOAD_META}`, [bytes], bytes.length);
  remember(ctx.who, dir, record, true);
  return xmlResponse(xmlDocument('InitiateMultipartUploadResult', { Bucket: ctx.bucket, Key: key, UploadId: uploadId }));
}

function partNumberOf(q: URLSearchParams): number {
  const v = q.get('partNumber') ?? '';
  if (!/^\d{1,5}$/.test(v) || Number(v) < 1 || Number(v) > MAX_PARTS) throw new S3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive');
  return Number(v);
}

export async function uploadPart(ctx: S3Context): Promise<Response> {
  const dir = uploadDirOf(ctx);
  const number = partNumberOf(ctx.query);
  await knownUpload(ctx, dir);
  const body = prepareBody(ctx.req.body ?? [], ctx.req.headers, ctx.auth, ctx.limits.maxObjectSize);
  const placed = body.size > 0 && body.size % CHUNK === 0 ? await placePart(ctx, dir, number, body.stream, body.size, () => body.digests().md5Hex) : null;
  const md5 = placed ?? await storePart(ctx, dir, number, body.stream, body.size, () => body.digests().md5Hex, body.expectedMd5, true);
  if (placed) partPlaced(dir);
  return emptyResponse(200, { etag: `"${md5}"` });
}

/**
 * Seals a part whose length is a whole number of chunks straight into the upload's blob at chunk (number-1)·k
 * (k = its length in chunks, which must be the upload's one geometry: geometryOf), once: the first attempt at a part number claims its range (an exclusive mkdir),
 * and a later attempt (a re-upload, a retry) is staged instead, so no chunk index is ever sealed twice with
 * different bytes. Returns the MD5, or null when the part must be staged (an upload without a placed blob, a
 * part number claimed already). The record `d<part>-<k>-<md5>` is made only after the whole body verified.
 */
async function placePart(ctx: S3Context, dir: string, number: number, stream: AsyncIterable<Uint8Array>, size: number, md5Of: () => string): Promise<string | null> {
  const placed = ctx.backend.placed;
  if (!placed) return null;
  const record = await readUpload(ctx.backend, ctx.who, dir);
  if (!record.blob) return null;
  const chunks = size / CHUNK;
  if (await geometryOf(ctx.backend, ctx.who, dir, chunks).catch((e: unknown) => { throw toS3Error(e, 'NoSuchUpload'); }) !== chunks) return null;
  try {
    await ctx.backend.mkdir(ctx.who, `${dir}/${claimName(number)}`, false);
  } catch (e) {
    if (isCofferError(e) && e.code === 'ALREADY_EXISTS') return null;
    throw toS3Error(e, 'NoSuchUpload');
  }
  await placed.seal(ctx.who, record.blob, (number - 1) * chunks, stream, size, false).catch((e: unknown) => { throw toS3Error(e, 'NoSuchUpload'); });
  const md5 = md5Of();
  await ctx.backend.mkdir(ctx.who, `${dir}/${placedName(number, chunks, md5)}`, false).catch((e: unknown) => { throw toS3Error(e, 'NoSuchUpload'); });
  return md5;
}

export async function uploadPartCopy(ctx: S3Context): Promise<Response> {
  const dir = uploadDirOf(ctx);
  const number = partNumberOf(ctx.query);
  await knownUpload(ctx, dir);
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

/**
 * Stores a staged part as the sealed file `p<n>-<md5>`; older copies of the number go. With a Content-MD5 the
 * name is known before the body: the part is written straight to it (FileOps.put's file appears only at its commit,
 * after every chunk is durable and the body passed every check, Content-MD5 included, so a cut-off or wrong body
 * never shows under the name). Without one it is written under a temporary name and renamed once its MD5 is known.
 * `ownPieces`: `stream` is a request body, whose pieces are never reused or changed once given out, so the upload's
 * joiner may keep them as they are (HeldPart); a part from another source (UploadPartCopy's reader) is not held.
 */
async function storePart(ctx: S3Context, dir: string, number: number, stream: AsyncIterable<Uint8Array>, size: number, md5Of: () => string, expectedMd5: string | null = null, ownPieces = false): Promise<string> {
  const target = expectedMd5 === null ? `${dir}/t${String(number).padStart(5, '0')}-${randomBytes(8).toString('hex')}` : `${dir}/${stagedName(number, expectedMd5)}`;
  // No copy of this number from here yet (see below): `p<n>-<md5>` is made as a new file (no overwrite), which costs
  // one access request less; if one is there after all (another enclave's), before a byte of the body was taken,
  // it is replaced as usual.
  const fresh = firstCopyHere(dir, number);
  // the bytes as they are stored, kept for the upload's joiner (so it need not read the part back)
  let held = ownPieces ? holdPart(size) : null;
  let info: FileInfo;
  try {
    let pulled = false;
    const body = (async function* () {
      pulled = true;
      yield* held ? heldFrom(stream, held) : stream;
    })();
    const overwrite = expectedMd5 !== null && !fresh;
    info = await ctx.backend.put(ctx.who, target, body, size, { overwrite }).catch(async (e: unknown) => {
      if (expectedMd5 !== null && !overwrite && !pulled && isCofferError(e) && e.code === 'ALREADY_EXISTS') return ctx.backend.put(ctx.who, target, body, size, { overwrite: true });
      throw e;
    }).catch((e: unknown) => { throw toS3Error(e, 'NoSuchUpload'); });
  } catch (e) {
    releaseHeld(held ?? undefined);
    throw e;
  }
  const md5 = md5Of();
  const name = stagedName(number, md5);
  if (expectedMd5 === null) {
    try {
      info = await ctx.backend.move(ctx.who, target, `${dir}/${name}`, true);
    } catch (e) {
      releaseHeld(held ?? undefined);
      await ctx.backend.remove(ctx.who, target, false).catch(() => undefined);
      throw toS3Error(e, 'NoSuchUpload');
    }
  }
  // the upload's joiner seals what this part completes into the placed blob, in the background
  const record = await readUpload(ctx.backend, ctx.who, dir).catch((e: unknown) => {
    releaseHeld(held ?? undefined);
    throw e;
  });
  partStaged(ctx.backend, ctx.who, dir, record, number, { name, md5, size, blobId: info.blobId, ...(held ? { bytes: held } : {}) });
  held = null;
  // an earlier upload of this part number with other content is replaced. Best effort: a leftover copy is never
  // used (Complete picks parts by their ETag's name) and goes with the staging directory; and in the enclave a
  // listing can be refused while a concurrent part is mid-rename (its node still carries the MAC of its temporary
  // name until the gateway re-MACs it), which must not fail this part.
  // Only this number's copies are looked at (they sort together, right after `p<n>-`): a listing of the whole
  // staging directory per part cost O(parts) each, O(parts²) per upload.
  // An upload this enclave made, whose number it has not stored before, has no older copy from here; one from
  // another enclave would be left (harmless, as above) and go with the staging directory.
  if (fresh) return md5;
  try {
    const prefix = `p${pad(number)}-`;
    const page = await ctx.backend.list(ctx.who, dir, { after: prefix, limit: 16 });
    for (const i of page.items) {
      if (!i.name.startsWith(prefix)) break;
      if (i.type === 'file' && i.name !== name) await ctx.backend.remove(ctx.who, `${dir}/${i.name}`, false).catch(() => undefined);
    }
  } catch {
    // the cleanup waits for the next upload of this number, an abort, or the staging directory's removal
  }
  return md5;
}

/**
 * Throws NoSuchUpload unless the upload exists: its record as this enclave keeps it (it made the upload or read
 * its record before: no round trip), else read now (and then kept). A kept upload that was aborted or completed
 * elsewhere still fails closed: every write of a part goes into the staging directory, and a write there when it
 * is gone is NOT_FOUND → NoSuchUpload (nothing sealed: the claim or the file's upload is refused first).
 */
async function knownUpload(ctx: S3Context, dir: string): Promise<void> {
  await readUpload(ctx.backend, ctx.who, dir);
}

/** The stored parts of an upload, by part number (with `all`, every copy, else the newest of each number). */
async function listParts(backend: VaultBackend, who: Principal, dir: string, all = false): Promise<StoredPart[]> {
  const { parts } = await readStaging(backend, who, dir);
  return all ? parts.filter((p) => p.chunks === undefined) : newestParts(parts);
}

export async function completeMultipartUpload(ctx: S3Context): Promise<Response> {
  const dir = uploadDirOf(ctx);
  const body = prepareBody(ctx.req.body ?? [], ctx.req.headers, ctx.auth, ctx.limits.maxXmlBytes);
  const doc = parseXmlBody((await readSmallBody(body.stream, ctx.limits.maxXmlBytes)).toString('utf8'), 'CompleteMultipartUpload');
  const record = await readUpload(ctx.backend, ctx.who, dir);
  const requested = ((doc.Part ?? []) as Array<Record<string, unknown>>).map((p) => ({
    number: Number(p.PartNumber), etag: String(p.ETag ?? '').trim().replace(/^"|"$/g, '').toLowerCase(),
  }));
  if (requested.length === 0) throw new S3Error('MalformedXML', 'You must specify at least one part');
  if (requested.length > MAX_PARTS) throw new S3Error('MalformedXML', 'too many parts');
  for (let i = 0; i < requested.length; i++) {
    const r = requested[i] as { number: number; etag: string };
    if (!Number.isInteger(r.number) || r.number < 1 || r.number > MAX_PARTS) throw new S3Error('InvalidPart', `part ${String(r.number)} is not a valid part number`);
    if (i > 0 && r.number <= (requested[i - 1] as { number: number }).number) throw new S3Error('InvalidPartOrder', 'The list of parts was not in ascending order. Parts must be ordered by part number.');
  }
  await stopJoining(dir); // its batch in flight finishes (claim and record) before the staging is read
  const staging = await readStaging(ctx.backend, ctx.who, dir).catch((e: unknown) => { throw toS3Error(e, 'NoSuchUpload'); });
  return completeParts(ctx, dir, record, requested, staging);
}

export async function abortMultipartUpload(ctx: S3Context): Promise<Response> {
  const dir = uploadDirOf(ctx);
  const record = await readUpload(ctx.backend, ctx.who, dir);
  await stopJoining(dir);
  await ctx.backend.remove(ctx.who, dir, true).catch((e: unknown) => { throw toS3Error(e, 'NoSuchUpload'); });
  forgetUpload(dir);
  // its sealed parts go with it (best effort: the storage service's GC frees an upload left open anyway)
  if (record.blob) await ctx.backend.placed?.abort(ctx.who, record.blob.blobId).catch(() => undefined);
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
  const all = (await listParts(ctx.backend, ctx.who, dir).catch((e: unknown) => { throw toS3Error(e, 'NoSuchUpload'); })).filter((p) => p.number > marker);
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

/** Every entry of `dir` as `who` sees it (all pages); none when it does not exist. */
export async function listDir(backend: VaultBackend, who: Principal, dir: string): Promise<FileInfo[]> {
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
