// Garbage collection of blobs: stale uploads ('uploading' past the grace period) and released blobs
// ('deleting') lose their chunks, their upload-chunk records and finally their blob record — in that order,
// each step idempotent, so a GC interrupted at any point simply redoes the rest on the next run.
// Also: committed blobs no file points to (a commit or overwrite interrupted between its two writes) are
// released after the grace period, chunk directories without any blob record are removed, and the chunk
// store's crash leftovers are swept.
import { ErrorCode, isCofferError } from '../errors.js';
import { SYSTEM_ACTOR, type VaultContext } from './context.js';
import { audit } from './tree.js';

const PAGE = 100;

export interface GcOptions {
  /** Max committed blobs examined for orphans per run (the scan resumes where it stopped). Default 1000. */
  orphanScanLimit?: number;
  /** Chunk-store temporary files older than this are removed. Default 1 h. */
  tempGraceMs?: number;
}

export interface GcReport {
  expiredUploads: number;
  orphanedBlobs: number;
  purgedBlobs: number;
  strayChunkBlobs: number;
  temporaryFiles: number;
  /** Blobs in 'deleting' still referenced by a file (left alone; should not happen). */
  skipped: string[];
  /** Blobs whose chunks the chunk store failed to delete this pass (tried again on the next). */
  failed: Array<{ blobId: string; code: string; message: string }>;
}

/** Per-vault GC state (the orphan scan cursor). */
export interface GcState {
  orphanCursor?: string;
}

/** One GC pass at time `now`. Safe to run concurrently with traffic and with itself. Throws store errors. */
export async function runGc(ctx: VaultContext, now: Date, state: GcState = {}, options: GcOptions = {}): Promise<GcReport> {
  const report: GcReport = { expiredUploads: 0, orphanedBlobs: 0, purgedBlobs: 0, strayChunkBlobs: 0, temporaryFiles: 0, skipped: [], failed: [] };
  const graceEdge = new Date(now.getTime() - ctx.uploadGraceMs);

  // 1. stale uploads → deleting
  for (;;) {
    const stale = await ctx.store.listBlobsByState('uploading', graceEdge, PAGE);
    for (const b of stale) {
      // a chunk stored since the listing touched the blob: it is active again (the transition below can only
      // compare the state, so the age is read afresh right before it)
      const fresh = await ctx.store.getBlob(b.id);
      if (!fresh || fresh.updatedAt >= graceEdge) continue;
      if (await transition(ctx, b.id, 'uploading')) {
        report.expiredUploads++;
        await audit(ctx, SYSTEM_ACTOR, 'gc.expire-upload', b.id, { path: String(b.attrs.path ?? '') });
      }
    }
    if (stale.length < PAGE) break;
  }

  // 2. orphaned committed blobs → deleting (bounded scan, resumes at the cursor)
  let scanned = 0;
  const scanLimit = options.orphanScanLimit ?? 1000;
  while (scanned < scanLimit) {
    const page = await ctx.store.listBlobs({ after: state.orphanCursor, limit: Math.min(PAGE, scanLimit - scanned) });
    for (const b of page.items) {
      scanned++;
      if (b.state !== 'committed' || b.updatedAt >= graceEdge) continue;
      if ((await ctx.store.findNodesByBlob(b.id)).length > 0) continue;
      // read afresh after finding no node: a blob unreferenced only for a moment (a move --overwrite or a commit
      // that may put it back) was touched before that moment began (holdBlob)
      const fresh = await ctx.store.getBlob(b.id);
      if (fresh?.state !== 'committed' || fresh.updatedAt >= graceEdge) continue;
      if (await transition(ctx, b.id, 'committed')) {
        report.orphanedBlobs++;
        await audit(ctx, SYSTEM_ACTOR, 'gc.orphan', b.id);
      }
    }
    state.orphanCursor = page.next ?? undefined;
    if (page.next === null) break;
  }

  // 3. deleting → chunks, upload records, blob record removed. Deleting chunk files cannot be undone, so first
  // the writes that released these blobs (a remove, an overwrite, the transitions above) are made durable: a
  // power loss must not roll a file back to a blob whose chunks are gone (the metadata store may acknowledge
  // writes before they are on disk: SQLite synchronous=NORMAL).
  const skipped = new Set<string>();
  let synced = false;
  for (;;) {
    const doomed = (await ctx.store.listBlobsByState('deleting', new Date(now.getTime() + 1), PAGE + skipped.size)).filter((b) => !skipped.has(b.id));
    if (doomed.length === 0) break;
    if (!synced) {
      await ctx.store.sync();
      synced = true;
    }
    for (const b of doomed) {
      if ((await ctx.store.findNodesByBlob(b.id)).length > 0) {
        skipped.add(b.id);
        continue;
      }
      try {
        await ctx.chunks.deleteBlob(b.id);
      } catch (e) {
        // one blob the chunk store cannot delete (EACCES, a foreign symlink…) must not stop every later purge,
        // the stray sweep and the temp sweep: it is reported and retried on the next pass
        if (!isCofferError(e) || e.code === ErrorCode.METADATA) throw e;
        skipped.add(b.id);
        report.failed.push({ blobId: b.id, code: e.code, message: e.message });
        continue;
      }
      await ctx.store.deleteUploadChunks(b.id);
      if (!(await ctx.store.deleteBlob(b.id))) continue; // purged by another GC pass meanwhile: its entry, not ours
      report.purgedBlobs++;
      await audit(ctx, SYSTEM_ACTOR, 'gc.purge', b.id, { previousState: b.state });
    }
  }
  report.skipped = [...skipped].filter((id) => !report.failed.some((f) => f.blobId === id));

  // 4. chunk directories with no blob record (a chunk PUT that raced a purge), and packed chunks no record
  // points at (a batch that crashed between its pack and its records) once their pack is older than the grace:
  // a batch writes its pack before its records (docs/vault.md "Many small files")
  for await (const id of ctx.chunks.listBlobs({ settledMs: options.tempGraceMs ?? 60 * 60 * 1000 })) {
    if (!(await ctx.store.getBlob(id))) {
      try {
        await ctx.chunks.deleteBlob(id);
        report.strayChunkBlobs++;
      } catch (e) {
        if (!isCofferError(e) || e.code === ErrorCode.METADATA) throw e;
        report.failed.push({ blobId: id, code: e.code, message: e.message });
      }
    }
  }

  // 5. crash leftovers of the chunk store
  report.temporaryFiles = await ctx.chunks.sweepTemporary(options.tempGraceMs ?? 60 * 60 * 1000);
  return report;
}

async function transition(ctx: VaultContext, id: string, from: 'uploading' | 'committed'): Promise<boolean> {
  try {
    await ctx.store.updateBlob(id, from, { state: 'deleting' }, { strict: true }); // another GC pass that got there first audits it
    return true;
  } catch (e) {
    if (isCofferError(e, ErrorCode.UPLOAD_STATE) || isCofferError(e, ErrorCode.NOT_FOUND)) return false; // someone else moved it
    throw e;
  }
}
