// Bounded concurrency for long runs of tasks that are produced one by one (the chunks of a download, the chunk
// files an fsck checks): at most `limit` run at once, a task is created only when there is room (never one
// promise per item up front: a 16 TiB file has two million chunks), the first error is kept and never left
// unhandled, and once there is one no new task starts.

export class Gate {
  readonly #inFlight = new Set<Promise<void>>();
  /** The first error a task threw (or a caller recorded), if any. */
  error: unknown = undefined;

  constructor(readonly limit: number) {}

  /**
   * Waits for room, then starts the task, unless an error was recorded meanwhile (then it is skipped). `done`
   * settles when the task has finished or was skipped; it never rejects.
   */
  async submit(task: () => Promise<void>): Promise<{ done: Promise<void> }> {
    while (this.#inFlight.size >= this.limit) await Promise.race(this.#inFlight);
    if (this.error !== undefined) return { done: Promise.resolve() };
    const done: Promise<void> = task()
      .catch((e: unknown) => {
        this.error ??= e;
      })
      .finally(() => this.#inFlight.delete(done));
    this.#inFlight.add(done);
    return { done };
  }

  /** Waits for every task in flight to finish (so nothing still uses a buffer about to be freed). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.#inFlight]);
  }
}
