// The enclave's memory budget for bulk data: a first-come-first-served counting semaphore. FileOps holds one
// slot of the seal budget for each sealing stream (an upload, a placed part) while it pulls and seals its
// source, and one slot of the read budget for each opened chunk buffer of a read. A request beyond the budget
// waits for a slot *before it reads a byte of its body*, so the client is held back by the socket (TCP
// back-pressure through the host proxy), not buffered in enclave memory: the enclave's peak memory is fixed by
// the budget, whatever the number of concurrent requests (docs/s3-api.md "Memory under concurrency").
//
// Deadlock freedom: a holder of a seal slot may wait for read slots (a copy reads its source), never the other
// way round; a read waits for a slot only when it holds none (its read-ahead takes only free slots).
import { CofferError, ErrorCode } from '../../src/errors.js';

/** Gives the slot back; a second call does nothing. */
export type Release = () => void;

export class TransferBudget {
  private used = 0;
  private peakUsed = 0;
  private readonly queue: Array<() => void> = [];

  /** `slots`: how many holders at once (a positive integer). Throws INVALID_ARGUMENT otherwise. */
  constructor(readonly slots: number) {
    if (!Number.isSafeInteger(slots) || slots < 1) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `a transfer budget needs at least one slot, not ${slots}`);
  }

  /** Resolves with a release function once a slot is free; waiters are served in the order they asked. */
  acquire(): Promise<Release> {
    if (this.used < this.slots && this.queue.length === 0) return Promise.resolve(this.take());
    return new Promise<Release>((resolve) => this.queue.push(() => resolve(this.take())));
  }

  /** A slot now if one is free and nobody waits, else null (for optional work such as read-ahead). */
  tryAcquire(): Release | null {
    return this.used < this.slots && this.queue.length === 0 ? this.take() : null;
  }

  /** Runs `fn` holding one slot, released when it settles (resolved or thrown). */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /** Slots held now, the most ever held at once, and requests waiting (tests and metrics). */
  get inUse(): number {
    return this.used;
  }

  get peak(): number {
    return this.peakUsed;
  }

  get waiting(): number {
    return this.queue.length;
  }

  private take(): Release {
    this.used++;
    if (this.used > this.peakUsed) this.peakUsed = this.used;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.used--;
      // hand the slot to the oldest waiter (it re-counts itself in take)
      const next = this.queue.shift();
      next?.();
    };
  }
}
