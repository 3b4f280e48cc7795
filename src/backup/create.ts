// `backup create`: one snapshot of a vault at a target, full or incremental (docs/backup.md). Needs no key.
// Order, so that a kill at any point leaves a state the next run resumes from:
//   1. lock file; select the tree and blobs (select.ts);
//   2. copy the chunk files the latest snapshot does not already list (each put is atomic: a killed run leaves
//      whole chunks, which the next run finds and skips);
//   3. write the metadata export, then the manifest (the snapshot exists once its manifest does);
//   4. remove the lock.
import os from 'node:os';
import type { ChunkStore } from '../../storage-backend/index.js';
import { CofferError, ErrorCode } from '../errors.js';
import type { MetadataStore } from '../metadata/types.js';
import { chunkJobsOf } from './chunk-jobs.js';
import { COPY_CONCURRENCY, copyChunks, flushChunks, presentBlobs, type ChunkJob, type ChunkProblem } from './copy-chunks.js';
import { writeExport } from './export-writer.js';
import { chunkKey, MANIFEST_FORMAT, MANIFEST_VERSION, type ManifestChunk, type SnapshotManifest } from './manifest.js';
import type { RateLimiter } from './rate-limit.js';
import { pathOf, refreshFile, selectSnapshot, type Selection } from './select.js';
import { findSnapshot, loadManifest, writeManifest } from './snapshots.js';
import { clearStaleLocks, lockName, targetError, type BackupTarget } from './target.js';

export interface CreateOptions {
  concurrency?: number;
  rate?: RateLimiter;
  onBytes?: (n: number) => void;
  /** Called once the bytes to copy are known (for a progress bar). */
  onPlan?: (bytesToCheck: number) => void;
  signal?: AbortSignal;
  now?: () => Date;
}

export interface CreateReport {
  snapshot: string;
  parent: string | null;
  files: number;
  directories: number;
  blobs: number;
  chunks: number;
  bytes: number;
  /** Chunk files copied by this run. */
  chunksCopied: number;
  bytesCopied: number;
  /** Chunk files already at the target from an interrupted run (found, not copied again). */
  chunksResumed: number;
  /** Chunk files listed by the parent snapshot (not touched). */
  chunksUnchanged: number;
  skipped: string[];
  seconds: number;
}

/** Throws NO_SPACE / UNAVAILABLE (target), INTEGRITY (a vault chunk damaged: names the file), METADATA. */
export async function createSnapshot(store: MetadataStore, source: ChunkStore, target: BackupTarget, options: CreateOptions = {}): Promise<CreateReport> {
  const t0 = Date.now();
  const now = options.now ?? (() => new Date());
  const lock = lockName('create');
  let early: Promise<Exported> | null = null;
  await target.writeFile('locks', lock, one(JSON.stringify({ host: os.hostname(), pid: process.pid, startedAt: now().toISOString() })));
  try {
    await clearStaleLocks(target);
    const parentRef = await findSnapshot(target).catch((e: unknown) => {
      if (e instanceof CofferError && e.code === ErrorCode.NOT_FOUND) return null;
      throw e;
    });
    const known = new Map<string, string>();
    if (parentRef) for (const c of (await loadManifest(target, parentRef)).chunks) known.set(chunkKey(c), c.sha256);

    // a full run (no parent: a new target, or one an interrupted full run left) lists the target's blobs once
    // and stats only chunks of blobs found there; an incremental run copies few chunks and stats each
    const atTarget = parentRef ? undefined : await presentBlobs(target.chunks).catch((e: unknown) => {
      throw targetError(target.description, e);
    });
    const sel = await selectSnapshot(store, now());
    // The export is written while the chunks are copied: its records are read on this thread, which the copy
    // leaves mostly waiting for the disk and the hash workers. It is made from a copy of the selection; a round
    // that finds blobs released meanwhile changes the selection, and then the export is written again after the
    // copy (the early one removed). Either way it lands before the flush and the manifest, as before.
    early = writeExport(store, { ...sel, nodes: new Map(sel.nodes), blobs: new Map(sel.blobs) }, target, now());
    early.catch(() => undefined); // awaited below, on every path
    const totals = { copied: 0, copiedBytes: 0, present: 0, unchanged: 0 };
    // Blobs are immutable, but one can be released and purged while we copy (its file was overwritten or
    // removed): then its files are re-read and follow their new blob, or leave the snapshot. Bounded rounds.
    let pending = [...sel.blobs.keys()];
    for (let round = 0; pending.length > 0; round++) {
      if (round === 4) throw new CofferError(ErrorCode.CONFLICT, 'the vault kept changing under the backup; run it again');
      const jobs = function* (): Generator<ChunkJob> {
        for (const id of pending.sort()) {
          for (const job of chunkJobsOf(sel.blobs.get(id) as NonNullable<ReturnType<typeof sel.blobs.get>>)) {
            if (known.get(chunkKey({ blob: job.ref.blobId, index: job.ref.index })) === job.sha256) {
              totals.unchanged++;
              continue;
            }
            yield job;
          }
        }
      };
      options.onPlan?.(plannedBytes(sel, pending, known));
      const r = await copyChunks(source, target.chunks, jobs(), {
        concurrency: options.concurrency ?? COPY_CONCURRENCY, rate: options.rate, onBytes: options.onBytes, skipPresent: true, presentBlobs: atTarget, signal: options.signal,
        destinationError: (e) => targetError(target.description, e),
      });
      totals.copied += r.copied;
      totals.copiedBytes += r.copiedBytes;
      totals.present += r.present;
      if (r.problems.length > 0) await discard(target, early);
      if (r.problems.length > 0) early = null;
      pending = await settleProblems(store, sel, r.problems);
    }

    // every chunk durable before anything lists it: those this run wrote, and those an interrupted run left
    // (unsynced); chunks of the parent snapshot were synced by the run that made it. syncfs flushes the whole
    // filesystem, other writers' data included, so an incremental run with nothing new skips it.
    if (totals.copied + totals.present > 0) {
      await flushChunks(target.chunks).catch((e: unknown) => {
        throw targetError(target.description, e);
      });
    }
    const exported = early !== null ? await early : await writeExport(store, sel, target, now());
    const chunks: ManifestChunk[] = [];
    let bytes = 0;
    for (const id of [...sel.blobs.keys()].sort()) {
      const blob = sel.blobs.get(id);
      if (!blob) continue;
      bytes += blob.size ?? 0;
      for (const job of chunkJobsOf(blob, false)) chunks.push({ blob: id, index: job.ref.index, size: job.size, sha256: job.sha256 });
    }
    let files = 0;
    let directories = 0;
    for (const n of sel.nodes.values()) {
      if (n.type === 'file') files++;
      else directories++;
    }
    const manifest: SnapshotManifest = {
      format: MANIFEST_FORMAT, version: MANIFEST_VERSION, createdAt: sel.startedAt.toISOString(), host: os.hostname(),
      parent: parentRef?.id ?? null, metadata: exported, chunks, stats: { files, directories, blobs: sel.blobs.size, bytes },
    };
    const ref = await writeManifest(target, manifest);
    return {
      snapshot: ref.id, parent: manifest.parent, files, directories, blobs: sel.blobs.size, chunks: chunks.length, bytes,
      chunksCopied: totals.copied, bytesCopied: totals.copiedBytes, chunksResumed: totals.present, chunksUnchanged: totals.unchanged,
      skipped: sel.skipped, seconds: (Date.now() - t0) / 1000,
    };
  } catch (e) {
    // nothing may still be writing at the target once the lock is gone; a failed run's export is garbage
    await discard(target, early);
    throw e;
  } finally {
    await target.deleteFile('locks', lock).catch(() => undefined);
  }
}

type Exported = Awaited<ReturnType<typeof writeExport>>;

/** Waits for an early export and removes it (best effort: an orphan export is only garbage for prune). */
async function discard(target: BackupTarget, early: Promise<Exported> | null): Promise<void> {
  const done = await early?.catch(() => null);
  if (done) await target.deleteFile('metadata', done.path.slice('metadata/'.length)).catch(() => undefined);
}

function plannedBytes(sel: Selection, pending: string[], known: Map<string, string>): number {
  let n = 0;
  for (const id of pending) {
    const blob = sel.blobs.get(id);
    if (!blob) continue;
    for (const job of chunkJobsOf(blob, false)) if (known.get(chunkKey({ blob: id, index: job.ref.index })) !== job.sha256) n += job.size;
  }
  return n;
}

/**
 * A chunk the vault no longer has, or that fails its checks: if its blob was released meanwhile, the files
 * that used it are re-read (they follow their new blob, returned for another round, or leave the snapshot).
 * If the blob is still committed, the vault itself is damaged: INTEGRITY naming the files, so nobody takes a
 * backup that silently lacks them for a good one.
 */
async function settleProblems(store: MetadataStore, sel: Selection, problems: ChunkProblem[]): Promise<string[]> {
  if (problems.length === 0) return [];
  const before = new Set(sel.blobs.keys());
  const damaged: string[] = [];
  for (const blobId of new Set(problems.map((p) => p.job.ref.blobId))) {
    const fresh = await store.getBlob(blobId);
    const users = [...sel.nodes.values()].filter((n) => n.blobId === blobId);
    if (fresh && fresh.state === 'committed') {
      const p = problems.find((x) => x.job.ref.blobId === blobId) as ChunkProblem;
      damaged.push(`${users.map((n) => pathOf(sel.nodes, n)).join(', ') || `blob ${blobId}`}: chunk ${p.job.ref.index}: ${p.message}`);
      continue;
    }
    sel.blobs.delete(blobId);
    for (const n of users) await refreshFile(store, sel, n.id);
  }
  if (damaged.length) {
    throw new CofferError(ErrorCode.INTEGRITY, `the vault has damaged chunk files, backup not written (run coffer fsck --read-data): ${damaged.slice(0, 5).join('; ')}${damaged.length > 5 ? `; and ${damaged.length - 5} more` : ''}`);
  }
  return [...sel.blobs.keys()].filter((id) => !before.has(id));
}

async function* one(text: string): AsyncGenerator<Uint8Array> {
  yield Buffer.from(text);
}
