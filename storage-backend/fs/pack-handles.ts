// Open read handles of pack files, kept for the reads of many chunks of one pack: a bulk copy (backup create,
// restore) reads a pack's chunks one after another, and opening and closing the pack for each 1 KiB chunk cost
// two system calls and two thread-pool round trips more than the read itself (docs/benchmarks.md "Backup").
// A pack is written once and never changed (packs.ts), so a handle held open reads exactly what a fresh open
// would; a pack removed by this process (kill) has its handle closed as soon as no read uses it. At most `max`
// handles are open; the least recently used is closed when its last reader is done. Only O_RDONLY|O_NOFOLLOW
// handles of paths built by FsPacks.packPath are opened here.
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { LimitFunction } from 'p-limit';

interface Entry {
  handle: Promise<FileHandle>;
  users: number;
  /** Out of the map (evicted, dropped or closed): closed once users reaches 0. */
  retired: boolean;
}

/** How many pack files a store keeps open for reading (each one file descriptor). */
export const PACK_HANDLES_MAX = 16;

export class PackHandles {
  /** Map order is use order: the first entry is the least recently used. */
  readonly #open = new Map<string, Entry>();

  constructor(private readonly io: LimitFunction, private readonly max = PACK_HANDLES_MAX) {}

  /** Open handles (for tests). */
  get size(): number {
    return this.#open.size;
  }

  /**
   * Runs `read` with an open handle of the pack at `path`, opening it if none is held. Throws the open's error
   * (the caller maps ENOENT) or read's; a failed open is not remembered.
   */
  async use<T>(packId: string, path: string, read: (fh: FileHandle) => Promise<T>): Promise<T> {
    let entry = this.#open.get(packId);
    if (entry) {
      this.#open.delete(packId); // re-inserted below: now the most recently used
    } else {
      entry = { handle: this.io(() => open(path, constants.O_RDONLY | constants.O_NOFOLLOW)), users: 0, retired: false };
      const made = entry;
      made.handle.catch(() => {
        if (this.#open.get(packId) === made) this.#open.delete(packId);
        made.retired = true;
      });
    }
    this.#open.set(packId, entry);
    entry.users++;
    this.#evict();
    try {
      return await read(await entry.handle);
    } finally {
      entry.users--;
      if (entry.retired) this.#closeIfIdle(entry);
    }
  }

  /** The pack was removed: its handle is closed once no read uses it. */
  drop(packId: string): void {
    const entry = this.#open.get(packId);
    if (!entry) return;
    this.#open.delete(packId);
    entry.retired = true;
    this.#closeIfIdle(entry);
  }

  /** Closes every handle (the store is closing: no read is in flight). */
  async closeAll(): Promise<void> {
    const entries = [...this.#open.values()];
    this.#open.clear();
    for (const e of entries) e.retired = true;
    await Promise.all(entries.map((e) => e.handle.then((h) => h.close()).catch(() => undefined)));
  }

  #evict(): void {
    for (const [packId, entry] of this.#open) {
      if (this.#open.size <= this.max) return;
      this.#open.delete(packId);
      entry.retired = true;
      this.#closeIfIdle(entry);
    }
  }

  #closeIfIdle(entry: Entry): void {
    if (entry.users > 0) return;
    entry.users = -1; // closed once
    void entry.handle.then((h) => h.close()).catch(() => undefined);
  }
}
