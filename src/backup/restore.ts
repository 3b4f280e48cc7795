// `backup restore`: a snapshot into an empty vault (docs/backup.md "Restore"). Order: the manifest and export are
// checked first (nothing is written from an edited snapshot); a marker file records the restore in progress;
// every chunk file is copied and checked (size, SHA-256, header) before any metadata exists; then the records
// are inserted parents-first, the audit chain is continued with a `backup.restore` entry, the metadata is
// synced and the marker removed. A killed restore is resumed by running it again (the marker lets it past the
// emptiness check; present chunks are skipped; inserts that already happened count as done).
import { readFile, rm, writeFile } from 'node:fs/promises';
import type { ChunkStore } from '../../storage-backend/index.js';
import { CofferError, ErrorCode, isCofferError } from '../errors.js';
import { ROOT_ID, type MetadataStore } from '../metadata/types.js';
import { appendAudit } from '../vault/index.js';
import { chunkJobsOf } from './chunk-jobs.js';
import { COPY_CONCURRENCY, copyChunks, flushChunks, presentBlobs, type ChunkJob } from './copy-chunks.js';
import { readCheckedExport } from './export-reader.js';
import { RestoreInserter } from './restore-batch.js';
import type { RateLimiter } from './rate-limit.js';
import type { SnapshotRef } from './snapshots.js';
import type { BackupTarget } from './target.js';
import { loadSnapshot } from './verify.js';

export interface RestoreDestination {
  /** For messages. */
  description: string;
  chunks: ChunkStore;
  /** Opens (and migrates) the destination's metadata store. */
  openStore(): Promise<MetadataStore>;
  /** Removes the destination's metadata entirely (for --force); the store is closed when this is called. */
  wipeStore(): Promise<void>;
  /** A local file that marks a restore in progress (beside the chunks or the SQLite file). */
  markerFile: string;
}

export interface RestoreOptions {
  force?: boolean;
  concurrency?: number;
  rate?: RateLimiter;
  onBytes?: (n: number) => void;
  onPlan?: (bytes: number) => void;
}

export interface RestoreReport {
  snapshot: string;
  destination: string;
  files: number;
  directories: number;
  blobs: number;
  chunksCopied: number;
  bytesCopied: number;
  chunksResumed: number;
  resumed: boolean;
  seconds: number;
}

/** Empty: no node but a childless root, no blob, no audit entry. */
async function metadataIsEmpty(store: MetadataStore): Promise<boolean> {
  const nodes = await store.listNodes({ limit: 2 });
  if (nodes.items.some((n) => n.id !== ROOT_ID)) return false;
  if ((await store.listBlobs({ limit: 1 })).items.length > 0) return false;
  return (await store.lastAudit()) === null;
}

async function chunksAreEmpty(chunks: ChunkStore): Promise<boolean> {
  for await (const _ of chunks.listBlobs()) return false;
  return true;
}

async function readMarker(file: string): Promise<string | null> {
  try {
    const m = JSON.parse(await readFile(file, 'utf8')) as { snapshot?: unknown };
    return typeof m.snapshot === 'string' ? m.snapshot : null;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/**
 * Throws CONFLICT (destination not empty, without force; or a restore of another snapshot in progress),
 * INTEGRITY (the snapshot is damaged: names the files), NO_SPACE, METADATA.
 */
export async function restoreSnapshot(target: BackupTarget, ref: SnapshotRef, dest: RestoreDestination, options: RestoreOptions = {}): Promise<RestoreReport> {
  const t0 = Date.now();
  const { manifest, nodes, blobs } = await loadSnapshot(target, ref);
  const inProgress = await readMarker(dest.markerFile);
  if (inProgress !== null && inProgress !== ref.id && !options.force) {
    throw new CofferError(ErrorCode.CONFLICT, `${dest.description} holds an interrupted restore of snapshot ${inProgress.slice(0, 12)}: finish it, or pass --force to restore ${ref.id.slice(0, 12)} over it`);
  }
  const resumed = inProgress === ref.id;
  let store = await dest.openStore();
  try {
    if (!resumed && !((await metadataIsEmpty(store)) && (await chunksAreEmpty(dest.chunks)))) {
      if (!options.force) {
        throw new CofferError(ErrorCode.CONFLICT, `${dest.description} is not empty: restore refuses to mix a snapshot into an existing vault (pass --force to replace its contents)`);
      }
    }
    if (options.force && !resumed) {
      await store.close();
      await dest.wipeStore();
      store = await dest.openStore();
      for await (const blobId of dest.chunks.listBlobs()) await dest.chunks.deleteBlob(blobId);
    }
    await writeFile(dest.markerFile, `${JSON.stringify({ snapshot: ref.id, startedAt: new Date().toISOString() })}\n`, { mode: 0o600 });

    const jobs = function* (): Generator<ChunkJob> {
      for (const id of [...blobs.keys()].sort()) yield* chunkJobsOf(blobs.get(id) as NonNullable<ReturnType<typeof blobs.get>>);
    };
    options.onPlan?.(manifest.chunks.reduce((n, c) => n + c.size, 0));
    const copied = await copyChunks(target.chunks, dest.chunks, jobs(), {
      concurrency: options.concurrency ?? COPY_CONCURRENCY, rate: options.rate, onBytes: options.onBytes, skipPresent: true,
      // one listing, then a stat only for chunks of blobs found: a stat of an absent chunk in an fs store with
      // packs waits for a rescan (up to 250 ms, docs/storage-backend.md), which made restore 100× slower
      presentBlobs: await presentBlobs(dest.chunks),
    });
    if (copied.problems.length > 0) {
      const byBlob = new Map<string, string[]>();
      for (const n of nodes.values()) if (n.blobId) byBlob.set(n.blobId, [...(byBlob.get(n.blobId) ?? []), n.name]);
      const first = copied.problems.slice(0, 5).map((p) => `blob ${p.job.ref.blobId} chunk ${p.job.ref.index} (${(byBlob.get(p.job.ref.blobId) ?? []).join(', ')}): ${p.message}`);
      throw new CofferError(ErrorCode.INTEGRITY, `snapshot ${ref.id.slice(0, 12)} has ${copied.problems.length} missing or damaged chunk file(s), nothing restored into the metadata (run backup verify for the full list): ${first.join('; ')}`);
    }

    await flushChunks(dest.chunks); // no record may point at a chunk a power loss could still take
    await importMetadata(store, target, manifest);
    await appendAudit(store, { actor: ':system', action: 'backup.restore', target: '/', details: { snapshot: ref.id, createdAt: manifest.createdAt } });
    await store.sync();
    await rm(dest.markerFile, { force: true });
    let files = 0;
    for (const n of nodes.values()) if (n.type === 'file') files++;
    return {
      snapshot: ref.id, destination: dest.description, files, directories: nodes.size - files, blobs: blobs.size,
      chunksCopied: copied.copied, bytesCopied: copied.copiedBytes, chunksResumed: copied.present, resumed, seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    await store.close();
  }
}

async function importMetadata(store: MetadataStore, target: BackupTarget, manifest: Parameters<typeof readCheckedExport>[1]): Promise<void> {
  let rootReplaced = false;
  // blobs and nodes in batches of RESTORE_BATCH (restore-batch.ts); the other records one by one, after them
  const inserter = new RestoreInserter(store);
  for await (const r of readCheckedExport(target, manifest)) {
    if (r.type !== 'blob' && r.type !== 'node') await inserter.flush();
    switch (r.type) {
      case 'user':
        await store.ensureUser(r.user.name, { createdAt: r.user.createdAt });
        // ensureUser makes an enabled user without a MAC (with its original creation date): bring back what the snapshot recorded (one write,
        // idempotent for a resumed restore). A disabled user must not come back enabled.
        if (r.user.disabled || r.user.mac !== undefined) await store.updateUser(r.user.name, { disabled: r.user.disabled, ...(r.user.mac !== undefined ? { mac: r.user.mac } : {}) });
        break;
      case 'blob':
        await inserter.addBlob(r.blob);
        break;
      case 'node':
        if (r.node.id === ROOT_ID && !rootReplaced) {
          // a vault opened once has a root of its own (made at start, never audited): the snapshot's replaces it
          await inserter.flush(); // (the root is the first node: nothing of its kind is pending)
          const root = await store.getNode(ROOT_ID);
          if (root && (root.owner !== r.node.owner || root.createdAt.getTime() !== r.node.createdAt.getTime())) await store.deleteNode(ROOT_ID);
          rootReplaced = true;
        }
        await inserter.addNode(r.node);
        break;
      case 'grant':
        await store.putGrant(r.grant);
        break;
      case 'audit': {
        const entry = r.entry;
        try {
          await store.appendAudit(entry);
        } catch (e) {
          if (!isCofferError(e, ErrorCode.ALREADY_EXISTS)) throw e;
          const have = (await store.listAudit(entry.seq - 1, 1))[0];
          if (have?.hash !== entry.hash) throw new CofferError(ErrorCode.CONFLICT, `audit entry ${entry.seq} already exists with another hash: the destination was written meanwhile`);
        }
        break;
      }
      default:
        break;
    }
  }
  await inserter.flush();
}
