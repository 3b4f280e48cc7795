// Open pack files kept for reading: a bounded set of read-only handles, so reading one small chunk costs one
// pread instead of open + pread + close (three round trips to libuv's pool; get -r's batch read makes one such
// read per file: docs/benchmarks.md "get -r with synchronous writes and kept pack handles"). A pack file is
// never changed once it has its name (written under a temporary name, fsynced, renamed: docs/format.md "Pack
// file v2"), so a kept handle reads exactly what a fresh open would, as long as the pack is not removed: its
// handle is dropped when the pack is (FsPacks.kill), and the index no longer points into it before that.
// Each handle is opened as before (O_RDONLY | O_NOFOLLOW on the pack's own path under the store's root); a
// handle in use is closed only once its last reader is done (so a drop or an eviction never cuts a read).
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { LimitFunction } from 'p-limit';

interface Kept {
  handle: Promise<FileHandle>;
  readers: number;
  /** Dropped from the set (evicted, or the pack removed): close once no reader is left. */
  dropped: boolean;
  /** The close, once started. */
  closing?: Promise<void>;
}

/** Handles kept by default: well under the usual 1,024 open files, enough for a batch's packs and more. */
export const PACK_HANDLES_MAX = 64;

export class PackHandles {
  /** In use order, least recent first (a Map keeps insertion order; a use moves the entry to the end). */
  readonly #kept = new Map<string, Kept>();
  /** Opens made so far: for tests. */
  opens = 0;

  constructor(private readonly io: LimitFunction, private readonly max = PACK_HANDLES_MAX) {}

  /** Handles currently kept: for tests. */
  get size(): number {
    return this.#kept.size;
  }

  /**
   * Runs `fn` with a read-only handle on the pack at `path` (its id `packId`), opening it if none is kept.
   * Throws what open throws (the caller maps ENOENT to a missing chunk) and what `fn` throws; a handle whose read
   * failed is dropped, so the next read opens the file again.
   */
  async use<T>(packId: string, path: string, fn: (fh: FileHandle) => Promise<T>): Promise<T> {
    let k = this.#kept.get(packId);
    if (k) {
      this.#kept.delete(packId); // to the end: most recently used
      this.#kept.set(packId, k);
    } else {
      this.opens++;
      k = { handle: this.io(() => open(path, constants.O_RDONLY | constants.O_NOFOLLOW)), readers: 0, dropped: false };
      this.#kept.set(packId, k);
      this.#evict();
    }
    const kept = k;
    kept.readers++;
    try {
      let fh: FileHandle;
      try {
        fh = await kept.handle;
      } catch (e) {
        this.#forget(packId, kept);
        throw e;
      }
      try {
        return await fn(fh);
      } catch (e) {
        this.#forget(packId, kept);
        throw e;
      }
    } finally {
      kept.readers--;
      this.#closeIfIdle(kept);
    }
  }

  /** Drops the pack's handle (the pack is being removed): closed now, or once its readers are done. */
  drop(packId: string): void {
    const k = this.#kept.get(packId);
    if (k) this.#forget(packId, k);
  }

  /** Drops every handle and waits for their closes (the store closes: no read is in flight). */
  async closeAll(): Promise<void> {
    const all = [...this.#kept];
    for (const [id, k] of all) this.#forget(id, k);
    await Promise.all(all.map(([, k]) => k.closing));
  }

  #evict(): void {
    for (const [id, k] of this.#kept) {
      if (this.#kept.size <= this.max) return;
      this.#forget(id, k);
    }
  }

  #forget(packId: string, k: Kept): void {
    if (this.#kept.get(packId) === k) this.#kept.delete(packId);
    k.dropped = true;
    this.#closeIfIdle(k);
  }

  #closeIfIdle(k: Kept): void {
    if (!k.dropped || k.readers > 0) return;
    k.readers = -1; // closed once only
    k.closing = k.handle.then((fh) => fh.close()).catch(() => undefined);
  }
}
