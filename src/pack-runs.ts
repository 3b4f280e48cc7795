// Groups small chunk reads that sit in a store's packs into runs of neighbours, so a bulk reader reads each run
// with one pread (ChunkStore.readPackRange) instead of one read per chunk: backup's chunk copy
// (src/backup/copy-chunks.ts) and the batch read of small files (src/vault/small-files.ts). Jobs may come in any
// order (a copy's in blob-id order scatters a pack's chunks over the whole list); a window of up to WINDOW jobs
// is sorted by (pack, offset) and cut into runs. A run spans at most `maxBytes` (one workspace buffer) and never skips more
// than MAX_GAP bytes of chunks it does not need (dead entries, chunks of blobs outside the snapshot, chunks
// already at the destination). Memory: the window's job objects, not their bytes.
import type { ChunkRef, PackLocation } from '../storage-backend/index.js';

/** Jobs gathered before they are sorted into runs: enough to find most neighbours in a vault's packs. */
export const WINDOW = 8192;
/** Bytes of unneeded chunks a run reads over rather than starting a new read (a read costs more than this). */
export const MAX_GAP = 64 * 1024;

export interface PackRun<J extends { ref: ChunkRef }> {
  packId: string;
  /** In offset order, neighbours: each chunk's span starts at or after the previous one's end. */
  chunks: Array<{ job: J; loc: PackLocation }>;
}

export class PackReader<J extends { ref: ChunkRef }> {
  #window: Array<{ job: J; loc: PackLocation }> = [];

  /** `locate`: the source's packedLocation; `maxBytes`: the most one run may span (a workspace buffer). */
  constructor(private readonly locate: (ref: ChunkRef) => PackLocation | undefined, private readonly maxBytes: number) {}

  /** Takes the job when its chunk is in a known pack (true); false: the caller copies it one by one. */
  add(job: J): boolean {
    const loc = this.locate(job.ref);
    if (loc === undefined || loc.length > this.maxBytes) return false;
    this.#window.push({ job, loc });
    return true;
  }

  get full(): boolean {
    return this.#window.length >= WINDOW;
  }

  /** Jobs in the window. */
  get size(): number {
    return this.#window.length;
  }

  /** The window's jobs as runs (and an empty window). */
  take(): Array<PackRun<J>> {
    const items = this.#window.sort((a, b) => (a.loc.packId < b.loc.packId ? -1 : a.loc.packId > b.loc.packId ? 1 : a.loc.offset - b.loc.offset));
    this.#window = [];
    const runs: Array<PackRun<J>> = [];
    let run: PackRun<J> | null = null;
    let start = 0;
    let end = 0;
    for (const item of items) {
      const { loc } = item;
      const joins = run !== null && run.packId === loc.packId && loc.offset >= end && loc.offset - end <= MAX_GAP && loc.offset + loc.length - start <= this.maxBytes;
      if (!joins || run === null) {
        run = { packId: loc.packId, chunks: [] };
        runs.push(run);
        start = loc.offset;
      }
      run.chunks.push(item);
      end = loc.offset + loc.length;
    }
    return runs;
  }
}
