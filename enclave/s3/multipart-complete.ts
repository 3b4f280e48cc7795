// CompleteMultipartUpload (docs/s3-api.md "Multipart: how parts become sealed chunks"). Two ways to the object:
// - placed (zero-copy): every part but the last was sealed straight into the upload's blob, all with the same
//   length of k chunks, at chunk (part-1)·k; Complete seals only the last part (from its staged file) or, if the
//   last part was placed too, its last chunk again with FINAL, commits the blob (bound at `<staging>/object`)
//   and moves it onto the key. Taken only when nothing else can sit at any index the object uses (see `planOf`).
// - re-sealed (fallback, correct whatever the parts): the parts are streamed in order into a new sealed file —
//   staged parts from their files, placed parts from the blob's chunks with their MD5 recomputed and compared.
// - joined: equal staged parts (not whole chunks: rclone's 5 MiB) were joined into the blob as they arrived
//   (multipart-join.ts); Complete seals only what follows the last joined chunk, then commits and moves as above.
// Either way the object appears only at the vault's commit/move (atomic), then its sidecar is written and the
// staging directory removed.
import { createHash } from 'node:crypto';
import { isCofferError } from '../../src/errors.js';
import type { FileInfo } from './backend.js';
import { slowXmlResponse, type S3Context } from './context.js';
import { S3Error, toS3Error } from './errors.js';
import { objectPath } from './mapping.js';
import { writeMeta } from './object-meta.js';
import { ensureParent } from './objects.js';
import { joinedPlan, sealJoinedTail, type JoinedPlan } from './multipart-join.js';
import { CHUNK, forgetUpload, type Staging, type StoredPart, type UploadRecord } from './upload-staging.js';
import { xmlDocument } from './xml.js';

interface Requested { number: number; etag: string }

/** The placed way's plan: what to seal at Complete, and where. */
interface PlacedPlan {
  /** Chunks per placed part. */
  k: number;
  /** The staged last part sealed from chunk `(N-1)·k` with FINAL, or null when the last part was placed. */
  tail: StoredPart | null;
  chunkCount: number;
  size: number;
  /** Name of the completion marker (a hash of the plan). */
  marker: string;
}

export async function completeParts(ctx: S3Context, dir: string, record: UploadRecord, requested: Requested[], staging: Staging): Promise<Response> {
  const chosen = choose(ctx, requested, staging.parts);
  const key = ctx.key as string;
  const { path } = objectPath(ctx.bucket, key);
  await ensureParent(ctx, path);
  const etag = `"${createHash('md5').update(Buffer.concat(chosen.map((p) => Buffer.from(p.md5, 'hex')))).digest('hex')}-${chosen.length}"`;
  const plan = planOf(record, chosen, staging);
  const joined = plan ? null : joinedPlan(record, chosen, staging);
  const { backend, who } = ctx;
  return slowXmlResponse(async () => {
    let written = plan ? await completePlaced(ctx, dir, record, plan, path) : joined ? await completeJoined(ctx, dir, record, joined, staging, path) : null;
    written ??= await completeResealed(ctx, dir, record, chosen, path);
    await writeMeta(backend, who, ctx.bucket, { v: 1, key, blobId: written.blobId as string, etag, headers: record.headers, meta: record.meta, parts: chosen.length });
    await backend.remove(who, dir, true).catch(() => undefined); // left behind, the sweep takes it
    forgetUpload(dir);
    if (written.blobId !== record.blob?.blobId && record.blob) await backend.placed?.abort(who, record.blob.blobId).catch(() => undefined);
    return xmlDocument('CompleteMultipartUploadResult', { Location: `/${ctx.bucket}/${encodeURIComponent(key)}`, Bucket: ctx.bucket, Key: key, ETag: etag });
  }, ctx.requestId, `/${ctx.bucket}/${key}`);
}

/** For each requested part, the stored copy with that ETag (a placed copy first: it costs nothing at Complete). */
function choose(ctx: S3Context, requested: Requested[], parts: StoredPart[]): StoredPart[] {
  const chosen: StoredPart[] = [];
  for (const [i, r] of requested.entries()) {
    const matching = parts.filter((p) => p.number === r.number && p.md5 === r.etag);
    const p = matching.find((m) => m.chunks !== undefined) ?? matching.sort((a, b) => b.modifiedAt.localeCompare(a.modifiedAt))[0];
    if (!p) {
      throw new S3Error('InvalidPart', 'One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part\'s entity tag.', { PartNumber: String(r.number), ETag: r.etag });
    }
    if (i < requested.length - 1 && p.size < ctx.limits.minPartSize) {
      throw new S3Error('EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed object size.', { PartNumber: String(r.number), ProposedSize: String(p.size), MinSizeAllowed: String(ctx.limits.minPartSize) });
    }
    chosen.push(p);
  }
  return chosen;
}

/**
 * The placed plan, or null when the parts do not fit it. It needs: parts numbered 1..N; parts 1..N-1 placed,
 * all with the same k chunks, the upload's one geometry (`g/k…`); the last placed with k chunks too, or staged with no claim on its number (an
 * earlier placed attempt could have left chunks where its tail goes); no claim on a number above N (commit
 * refuses chunks beyond the count, and they could overlap the tail); and no completion marker of another plan
 * (an earlier Complete may have sealed another tail at these indices). Under those, every chunk index the
 * object uses was sealed by exactly one attempt of one part (claims are exclusive), or by this plan's tail.
 */
function planOf(record: UploadRecord, chosen: StoredPart[], staging: Staging): PlacedPlan | null {
  if (!record.blob) return null;
  const n = chosen.length;
  const k = (chosen[0] as StoredPart).chunks ?? (n === 1 ? 1 : undefined);
  if (k === undefined) return null;
  if (chosen.some((p) => p.chunks !== undefined) && staging.geometry !== k) return null;
  for (const [i, p] of chosen.entries()) {
    if (p.number !== i + 1) return null;
    if (i < n - 1 && p.chunks !== k) return null;
  }
  const last = chosen[n - 1] as StoredPart;
  if (last.chunks !== undefined && last.chunks !== k) return null;
  const tail = last.chunks === undefined ? last : null;
  if (tail && staging.claims.has(n)) return null;
  if (tail && tail.size === 0 && n > 1) return null; // an empty last part: the re-sealed way handles it
  for (const c of staging.claims) if (c > n) return null;
  if (staging.joinClaims.size > 0 || staging.joins.length > 0) return null; // joined chunks may sit at these indices
  const size = chosen.reduce((t, p) => t + p.size, 0);
  const chunkCount = Math.max(1, Math.ceil(size / CHUNK));
  const marker = `f${createHash('sha256').update(JSON.stringify([k, chosen.map((p) => [p.name, p.blobId ?? null])])).digest('hex').slice(0, 16)}`;
  if (staging.plans.some((m) => m !== marker)) return null;
  return { k, tail, chunkCount, size, marker };
}

async function completePlaced(ctx: S3Context, dir: string, record: UploadRecord, plan: PlacedPlan, path: string): Promise<FileInfo> {
  const { backend, who } = ctx;
  const placed = backend.placed;
  const blob = record.blob;
  if (!placed || !blob) throw new S3Error('InternalError', 'the placed upload is not available');
  const n = plan.chunkCount;
  try {
    // the marker first: a later Complete with another plan then knows these indices may hold this plan's chunks
    await backend.mkdir(who, `${dir}/${plan.marker}`, false).catch((e: unknown) => { if (!isCofferError(e) || e.code !== 'ALREADY_EXISTS') throw e; });
    if (plan.tail) {
      const first = (plan.tail.number - 1) * plan.k;
      const { body, info } = await backend.read(who, `${dir}/${plan.tail.name}`, undefined, plan.tail.blobId ?? undefined);
      if (info.size !== plan.tail.size) throw new S3Error('InvalidPart', `part ${plan.tail.number} changed during the completion`);
      await placed.seal(who, blob, first, body, info.size, true);
    } else {
      // the last part was placed: its last chunk again, now FINAL (the not-FINAL copy can never be read as the last)
      await placed.seal(who, blob, n - 1, placed.read(who, blob, n - 1, 1), CHUNK, true);
    }
  } catch (e) {
    // a Complete retried after its commit finds the upload committed: the commit below answers as before
    if (!(isCofferError(e) && e.code === 'UPLOAD_STATE')) throw toS3Error(e);
  }
  return commitAndMove(ctx, dir, blob, n, plan.size, path);
}

/** Commits the placed upload and moves `<staging>/object` onto the key (the object appears only here). */
async function commitAndMove(ctx: S3Context, dir: string, blob: NonNullable<UploadRecord['blob']>, chunkCount: number, size: number, path: string): Promise<FileInfo> {
  const placed = ctx.backend.placed as NonNullable<S3Context['backend']['placed']>;
  const committed = await placed.commit(ctx.who, blob, chunkCount, size).catch((e: unknown) => { throw toS3Error(e); });
  if (committed.path === path) return committed; // a retried Complete whose move was done before
  return ctx.backend.move(ctx.who, `${dir}/object`, path, true).catch((e: unknown) => { throw toS3Error(e); });
}

/** The joined way; null (nothing sealed) when the tail's claim is someone else's: the caller re-seals. */
async function completeJoined(ctx: S3Context, dir: string, record: UploadRecord, plan: JoinedPlan, staging: Staging, path: string): Promise<FileInfo | null> {
  const blob = record.blob;
  if (!ctx.backend.placed || !blob) return null;
  try {
    if (!await sealJoinedTail(ctx, dir, blob, plan, staging)) return null;
  } catch (e) {
    // a Complete retried after its commit finds the upload committed: the commit below answers as before
    if (!(isCofferError(e) && e.code === 'UPLOAD_STATE')) throw toS3Error(e);
  }
  return commitAndMove(ctx, dir, blob, plan.chunkCount, plan.size, path);
}

async function completeResealed(ctx: S3Context, dir: string, record: UploadRecord, chosen: StoredPart[], path: string): Promise<FileInfo> {
  const { backend, who } = ctx;
  const total = chosen.reduce((n, p) => n + p.size, 0);
  async function* concatenated(): AsyncGenerator<Uint8Array> {
    for (const p of chosen) {
      if (p.chunks === undefined) {
        const { body: partBody, info } = await backend.read(who, `${dir}/${p.name}`);
        if (info.size !== p.size) throw new S3Error('InvalidPart', `part ${p.number} changed during the completion`);
        yield* partBody;
        continue;
      }
      // a placed part, read back from the blob: its chunks open only as this blob's, at these indices, under its
      // key; its MD5 is recomputed so that chunks another attempt left there are never taken for this part
      if (!backend.placed || !record.blob) throw new S3Error('InternalError', 'the placed upload is not available');
      const md5 = createHash('md5');
      for await (const piece of backend.placed.read(who, record.blob, (p.number - 1) * p.chunks, p.chunks)) {
        md5.update(piece);
        yield piece;
      }
      if (md5.digest('hex') !== p.md5) throw new S3Error('InvalidPart', `part ${p.number} no longer holds what was uploaded`, { PartNumber: String(p.number) });
    }
  }
  return backend.put(who, path, concatenated(), total, { overwrite: true }).catch((e: unknown) => { throw toS3Error(e); });
}
