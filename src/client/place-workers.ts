// get -r's file placement on a few worker threads. Placing a 16 KiB file is six system calls (open O_EXCL, write,
// futimes, close, link, unlink), and the file creation among them waits on the filesystem (an inode, a journal
// entry: 0.1–1.5 ms a file on this shared ext4 disk, docs/benchmarks.md "get -r: placement on worker threads").
// Made on the event loop they held everything else meanwhile (the batch reads, the decryption); here each
// worker makes them synchronously (no pool round trip per call, as place-now.ts explains), several files at
// once, as restic restore does from several goroutines. The main thread names the temporary file
// (partial-files.ts) and tells the caller before the worker creates it, so a signal handler can remove it; the
// plaintext is transferred (never copied through a message), zeroed by the worker once written.
import { types } from 'node:util';
import { Worker } from 'node:worker_threads';
import { CofferError, ErrorCode } from '../errors.js';
import { placeFailure, placeSteps, type PlaceOutcome } from './place-now.js';

/** Worker threads get -r places files on: 2 and 4 placed as fast (docs/benchmarks.md), 2 with less CPU. */
export const PLACE_WORKERS = 2;

// Evaluated in the worker: placeSteps' own source (self-contained), then one message in, one outcome out.
const WORKER_SOURCE = `
const { parentPort } = process.getBuiltinModule('node:worker_threads');
const fs = process.getBuiltinModule('node:fs');
const placeSteps = ${placeSteps.toString()};
parentPort.on('message', (files) => {
  const replies = [];
  for (const m of files) {
    const bytes = new Uint8Array(m.bytes);
    try {
      replies.push({ id: m.id, outcome: placeSteps(fs, m.temp, m.dest, bytes, m.overwrite, m.mtimeMs) });
    } catch (e) {
      replies.push({ id: m.id, error: { message: String(e && e.message || e), code: e && e.code, stage: e && e.stage } });
    } finally {
      bytes.fill(0);
    }
  }
  parentPort.postMessage(replies);
});
`;

interface Pending {
  dest: string;
  resolve: () => void;
  reject: (e: unknown) => void;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
}

interface Request {
  id: number;
  temp: string;
  dest: string;
  bytes: ArrayBuffer;
  overwrite: boolean;
  mtimeMs: number | null;
}

type Reply = { id: number; outcome: PlaceOutcome } | { id: number; error: { message: string; code?: string; stage?: string } };

export class PlaceWorkers {
  readonly #slots: Slot[] = [];
  /** Placements asked since the last dispatch: posted together, one message per worker (setImmediate). */
  #queued: Array<{ request: Request; pending: Pending }> = [];
  #next = 0;
  #closed = false;

  constructor(readonly workers = PLACE_WORKERS) {
    if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new RangeError(`workers ${workers} must be an integer in [1, 64]`);
  }

  /**
   * Places `plaintext` at `dest` through `temp` as placeFileNow does, on a worker. `plaintext` is handed over: it
   * must not be used after this call (its memory is moved to the worker, or copied there when it shares a larger
   * buffer, and then zeroed). Throws as placeFileNow; UNAVAILABLE after close(); INTERNAL if a worker dies.
   */
  place(temp: string, dest: string, plaintext: Buffer, options: { overwrite: boolean; mtime?: Date }): Promise<void> {
    if (this.#closed) return Promise.reject(new CofferError(ErrorCode.UNAVAILABLE, 'the placement workers are closed'));
    let bytes: ArrayBuffer;
    if (plaintext.byteOffset === 0 && plaintext.byteLength === plaintext.buffer.byteLength && types.isArrayBuffer(plaintext.buffer)) {
      bytes = plaintext.buffer as ArrayBuffer;
    } else {
      // a view into a shared or pooled buffer: the file's bytes alone go (copied), the original is zeroed here
      bytes = new ArrayBuffer(plaintext.byteLength);
      new Uint8Array(bytes).set(plaintext);
      plaintext.fill(0);
    }
    const request: Request = { id: this.#next++, temp, dest, bytes, overwrite: options.overwrite, mtimeMs: options.mtime?.getTime() ?? null };
    return new Promise<void>((resolve, reject) => {
      this.#queued.push({ request, pending: { dest, resolve, reject } });
      if (this.#queued.length === 1) setImmediate(() => this.#dispatch());
    });
  }

  /** Hands the queued placements out, each to the worker with the fewest files, one message per worker. */
  #dispatch(): void {
    const queued = this.#queued;
    this.#queued = [];
    if (this.#closed) {
      for (const q of queued) q.pending.reject(new CofferError(ErrorCode.UNAVAILABLE, 'the placement workers are closed'));
      return;
    }
    const posts = new Map<Slot, Request[]>();
    for (const q of queued) {
      const slot = this.#least();
      slot.pending.set(q.request.id, q.pending);
      const list = posts.get(slot) ?? [];
      list.push(q.request);
      posts.set(slot, list);
    }
    for (const [slot, list] of posts) {
      slot.worker.ref(); // files being placed keep the process alive
      slot.worker.postMessage(list, list.map((r) => r.bytes));
    }
  }

  /** Ends the workers (after the caller's placements settled). Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    const slots = this.#slots.splice(0);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  /** The worker with the fewest files queued, a new one while there are fewer than `workers`. */
  #least(): Slot {
    let best: Slot | undefined;
    for (const s of this.#slots) if (!best || s.pending.size < best.pending.size) best = s;
    if (best && (best.pending.size === 0 || this.#slots.length >= this.workers)) return best;
    return this.#spawn();
  }

  #spawn(): Slot {
    // no inherited loaders (tsx in tests) or profiling flags: the worker needs nothing but node:fs
    const worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [] });
    const slot: Slot = { worker, pending: new Map() };
    worker.unref();
    worker.on('message', (replies: Reply[]) => {
      for (const m of replies) {
        const p = slot.pending.get(m.id);
        if (!p) continue;
        slot.pending.delete(m.id);
        if ('outcome' in m) {
          const failure = placeFailure(p.dest, m.outcome);
          if (failure === null) p.resolve();
          else p.reject(failure);
          continue;
        }
        const e = Object.assign(new Error(m.error.message), { code: m.error.code, stage: m.error.stage });
        p.reject(placeFailure(p.dest, null, e));
      }
      if (slot.pending.size === 0) worker.unref();
    });
    const died = (why: string): void => {
      const i = this.#slots.indexOf(slot);
      if (i >= 0) this.#slots.splice(i, 1);
      for (const p of slot.pending.values()) p.reject(new CofferError(ErrorCode.INTERNAL, `a file placement worker stopped (${why})`));
      slot.pending.clear();
    };
    worker.on('error', (e) => died(e.message));
    worker.on('exit', (code) => died(`exit ${code}`));
    this.#slots.push(slot);
    return slot;
  }
}
