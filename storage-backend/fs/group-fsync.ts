// Group commit of directory fsyncs: many chunk files renamed into (or blob directories created in) one
// directory at about the same time need one fsync of it, not one each. A caller's entry is durable once an
// fsync that *began after* the caller's change has finished; a caller arriving while one runs therefore waits
// for the next, which serves every caller that arrived meanwhile. No caller resolves earlier than it would with
// its own fsync, so the store's durability contract is unchanged (docs/storage-backend.md "Group commit").

interface Pending {
  running: Promise<void> | null;
  next: Promise<void> | null;
}

export class GroupFsync {
  readonly #dirs = new Map<string, Pending>();
  /** fsyncs issued and callers served (for tests and metrics). */
  readonly stats = { fsyncs: 0, callers: 0 };

  /** `fsync(dir)` performs the actual fsync (and may throw; every caller it serves gets the error). */
  constructor(private readonly fsync: (dir: string) => Promise<void>) {}

  /** Resolves once an fsync of `dir` begun after this call has completed. */
  sync(dir: string): Promise<void> {
    this.stats.callers++;
    let p = this.#dirs.get(dir);
    if (!p) {
      p = { running: null, next: null };
      this.#dirs.set(dir, p);
    }
    const pending = p;
    if (!pending.running) return this.#start(dir, pending);
    pending.next ??= pending.running.then(
      () => this.#start(dir, pending, true),
      () => this.#start(dir, pending, true),
    );
    return pending.next;
  }

  #start(dir: string, pending: Pending, fromNext = false): Promise<void> {
    if (fromNext) pending.next = null;
    this.stats.fsyncs++;
    const run = this.fsync(dir).finally(() => {
      if (pending.running === run) pending.running = null;
      if (!pending.running && !pending.next) this.#dirs.delete(dir);
    });
    pending.running = run;
    return run;
  }
}
