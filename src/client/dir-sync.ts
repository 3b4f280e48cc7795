// Group commit of directory entries on the client: many files renamed into one directory need one fsync of
// that directory, not one each. A caller's entry is durable once an fsync that *started after* its rename has
// finished, so a caller arriving while an fsync runs waits for the next one, which serves everyone who arrived
// meanwhile. Callers resolve only after such an fsync, so no durability promise is weakened.
import { open } from 'node:fs/promises';

interface DirState {
  running: Promise<void> | null;
  next: Promise<void> | null;
}

export class DirSyncer {
  readonly #dirs = new Map<string, DirState>();
  /** fsyncs actually issued (for tests and the summary). */
  syncs = 0;

  /** Resolves once an fsync of `dir` that began after this call has completed. Throws the fsync's error. */
  sync(dir: string): Promise<void> {
    let s = this.#dirs.get(dir);
    if (!s) {
      s = { running: null, next: null };
      this.#dirs.set(dir, s);
    }
    const state = s;
    if (!state.running) {
      state.running = this.#run(dir, state);
      return state.running;
    }
    // one is running: it may have begun before our rename, so ride on the next one (shared by all who wait)
    state.next ??= state.running.catch(() => undefined).then(() => {
      state.next = null;
      state.running = this.#run(dir, state);
      return state.running;
    });
    return state.next;
  }

  async #run(dir: string, state: DirState): Promise<void> {
    try {
      this.syncs++;
      const d = await open(dir, 'r');
      try {
        await d.sync();
      } finally {
        await d.close();
      }
    } finally {
      state.running = null;
      if (!state.next) this.#dirs.delete(dir);
    }
  }
}
