// `backup verify`: checks one snapshot without any key (docs/backup.md "Verify"): the manifest matches its name,
// the metadata export matches the manifest, the manifest lists exactly the chunks the export's blobs need, and
// every chunk file is present, has the recorded size and SHA-256, and a header consistent with its blob and
// index. Each problem names the vault files it affects.
import { Gate } from '../gate.js';
import type { BlobRecord, TreeNode } from '../metadata/types.js';
import { chunkJobsOf } from './chunk-jobs.js';
import { ChunkWorkspace, isProblem, readChecked, type ChunkJob } from './copy-chunks.js';
import { readCheckedExport } from './export-reader.js';
import { chunkKey, type SnapshotManifest } from './manifest.js';
import { pathOf } from './select.js';
import { loadManifest, type SnapshotRef } from './snapshots.js';
import type { BackupTarget } from './target.js';

/** Chunk files read and hashed at once by verify unless told otherwise (read-only: 4 keep the hash workers busy). */
export const VERIFY_CONCURRENCY = 4;

export type VerifyProblemKind = 'missing' | 'size' | 'sha256' | 'header' | 'unreadable' | 'unlisted' | 'unknown-chunk' | 'blob-record';

export interface VerifyProblem {
  kind: VerifyProblemKind;
  blob: string;
  /** null for a problem of the whole blob. */
  index: number | null;
  message: string;
  /** Vault paths of the files whose content this chunk holds. */
  files: string[];
}

export interface VerifyReport {
  snapshot: string;
  createdAt: string;
  files: number;
  chunksChecked: number;
  bytesRead: number;
  problems: VerifyProblem[];
  /** Every vault file affected by at least one problem, sorted. */
  affectedFiles: string[];
  ok: boolean;
}

export interface SnapshotContents {
  manifest: SnapshotManifest;
  nodes: Map<string, TreeNode>;
  blobs: Map<string, BlobRecord>;
}

/** Loads a snapshot's manifest and export. Throws INTEGRITY (edited/damaged manifest or export), NOT_FOUND. */
export async function loadSnapshot(target: BackupTarget, ref: SnapshotRef): Promise<SnapshotContents> {
  const manifest = await loadManifest(target, ref);
  const nodes = new Map<string, TreeNode>();
  const blobs = new Map<string, BlobRecord>();
  for await (const r of readCheckedExport(target, manifest)) {
    if (r.type === 'node') nodes.set(r.node.id, r.node);
    else if (r.type === 'blob') blobs.set(r.blob.id, r.blob);
  }
  return { manifest, nodes, blobs };
}

export async function verifySnapshot(
  target: BackupTarget, ref: SnapshotRef, options: { concurrency?: number; onBytes?: (n: number) => void } = {},
): Promise<VerifyReport> {
  const { manifest, nodes, blobs } = await loadSnapshot(target, ref);
  const filesOf = new Map<string, string[]>();
  for (const n of nodes.values()) {
    if (n.type === 'file' && n.blobId) filesOf.set(n.blobId, [...(filesOf.get(n.blobId) ?? []), pathOf(nodes, n)]);
  }
  const problems: VerifyProblem[] = [];
  const add = (kind: VerifyProblemKind, blob: string, index: number | null, message: string): void => {
    problems.push({ kind, blob, index, message, files: (filesOf.get(blob) ?? []).sort() });
  };

  // The manifest must list exactly the chunks the blobs need, with the blobs' digests.
  const listed = new Map(manifest.chunks.map((c) => [chunkKey(c), c]));
  const jobs: ChunkJob[] = [];
  for (const blob of blobs.values()) {
    let expected: ChunkJob[];
    try {
      expected = [...chunkJobsOf(blob)];
    } catch (e) {
      add('blob-record', blob.id, null, (e as Error).message);
      continue;
    }
    for (const job of expected) {
      const key = chunkKey({ blob: job.ref.blobId, index: job.ref.index });
      const c = listed.get(key);
      listed.delete(key);
      if (!c) add('unlisted', blob.id, job.ref.index, 'the manifest does not list this chunk');
      else if (c.size !== job.size || c.sha256 !== job.sha256) add('unlisted', blob.id, job.ref.index, 'the manifest and the blob record disagree on its size or SHA-256');
      jobs.push(job);
    }
  }
  for (const c of listed.values()) add('unknown-chunk', c.blob, c.index, 'listed by the manifest but belongs to no blob of the snapshot');

  // Every chunk file: present, size, SHA-256, header.
  const gate = new Gate(Math.max(1, options.concurrency ?? VERIFY_CONCURRENCY));
  const work = new ChunkWorkspace(gate.limit);
  let bytesRead = 0;
  try {
    for (const job of jobs.sort((a, b) => (a.ref.blobId < b.ref.blobId ? -1 : a.ref.blobId > b.ref.blobId ? 1 : a.ref.index - b.ref.index))) {
      await gate.submit(async () => {
        const buf = work.buffers.acquire();
        let r: Awaited<ReturnType<typeof readChecked>>;
        try {
          r = await readChecked(target.chunks, job, buf, work.hasher);
        } catch (e) {
          add('unreadable', job.ref.blobId, job.ref.index, (e as Error).message);
          return;
        }
        if (isProblem(r)) {
          add(r.kind, job.ref.blobId, job.ref.index, r.message);
        } else {
          bytesRead += r.byteLength;
          options.onBytes?.(r.byteLength);
        }
        work.buffers.release(buf);
      });
      if (gate.error !== undefined) throw gate.error;
    }
  } finally {
    await gate.drain();
    await work.close();
  }
  if (gate.error !== undefined) throw gate.error;
  problems.sort((a, b) => (a.blob < b.blob ? -1 : a.blob > b.blob ? 1 : (a.index ?? -1) - (b.index ?? -1)));
  const affected = new Set<string>();
  for (const p of problems) for (const f of p.files) affected.add(f);
  let files = 0;
  for (const n of nodes.values()) if (n.type === 'file') files++;
  return {
    snapshot: ref.id, createdAt: manifest.createdAt, files, chunksChecked: jobs.length, bytesRead, problems,
    affectedFiles: [...affected].sort(), ok: problems.length === 0,
  };
}
