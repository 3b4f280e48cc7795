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

/** While a stream waits for a slot, one piece of its body is taken this often (see admitStream). */
const TRICKLE_MS = 5_000;
/** At most this many bytes of a waiting stream's body are held (then it waits without reading). */
const TRICKLE_MAX_BYTES = 1024 * 1024;

/**
 * Waits for a slot of `budget` for a stream that will pull `source`, and returns the slot's release and the
 * source to pull (what was taken while waiting comes first, copied). While it waits, one piece of the body is
 * read every TRICKLE_MS (up to TRICKLE_MAX_BYTES in all): S3 clients give up on a socket that accepts nothing for
 * 60 s, and under heavy overload the wait is longer than that; a trickle keeps them sending, for a bounded cost.
 * Throws what the source throws while waiting (the slot, once granted, is then given back at once).
 */
export async function admitStream(
  budget: TransferBudget, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options: { trickleMs?: number; maxHeldBytes?: number } = {},
): Promise<{ release: Release; source: AsyncIterable<Uint8Array> }> {
  const free = budget.tryAcquire();
  if (free !== null) return { release: free, source: toAsync(source) };
  const slot = budget.acquire();
  const it = toAsync(source)[Symbol.asyncIterator]();
  const held: Uint8Array[] = [];
  let heldBytes = 0;
  let ended = false;
  let release: Release | undefined;
  void slot.then((r) => { release = r; });
  try {
    while (release === undefined) {
      let timer: NodeJS.Timeout | undefined;
      const ticked = await Promise.race([
        slot.then(() => false),
        new Promise<boolean>((r) => { timer = setTimeout(() => r(true), options.trickleMs ?? TRICKLE_MS); }),
      ]);
      clearTimeout(timer);
      if (!ticked || ended || heldBytes >= (options.maxHeldBytes ?? TRICKLE_MAX_BYTES)) continue;
      const r = await it.next();
      if (r.done === true) {
        ended = true;
      } else {
        held.push(Uint8Array.prototype.slice.call(r.value)); // a source may reuse its buffer for the next piece
        heldBytes += r.value.length;
      }
    }
  } catch (e) {
    void slot.then((r) => r());
    throw e;
  }
  const rest = (async function* () {
    yield* held.splice(0);
    if (ended) return;
    for (let r = await it.next(); r.done !== true; r = await it.next()) yield r.value;
  })();
  return { release, source: rest };
}

function toAsync(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncIterable<Uint8Array> {
  if (Symbol.asyncIterator in source) return source;
  return (async function* () {
    yield* source;
  })();
}
