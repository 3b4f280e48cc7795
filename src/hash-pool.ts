// SHA-256 of chunk buffers on a small pool of worker threads, so a bulk copy's hashing (one pass over every byte
// copied) runs beside the main thread's reads and writes instead of between them. The buffers are views of a
// SharedArrayBuffer (alignedAllocator(…, { shared: true })): a worker reads them in place, nothing is copied or
// transferred, and the caller keeps the buffer. The caller must not change a buffer until its digest resolved.
// A buffer of ordinary memory is hashed on the calling thread (same result, no parallelism).
// Bounded: at most `workers` threads, each hashing one buffer at a time; requests queue in order.
// A worker that owes an answer and gives none for `answerTimeoutMs` is taken as hung (a stuck thread would
// otherwise leave its caller waiting forever): what it owed fails with a retryable UNAVAILABLE, it is terminated,
// and later work goes to a fresh worker.
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { CofferError, ErrorCode } from './errors.js';

// Evaluated in the worker. One-shot: { id, memory, offset, length } in, { id, sha256 } out. Streams (stream()):
// { sid, op: 'update', memory | bytes, … } in, { sid, seq } out once the bytes are hashed; { sid, op: 'final' } in,
// { sid, sha256 } out; { sid, op: 'drop' } forgets a stream. A worker takes its messages in order, so a stream's
// updates are hashed in the order they were sent. getBuiltinModule works whether the eval is taken as CommonJS or
// as a module (flags such as --input-type=module are inherited). { op: 'stallForTests', ms } blocks the thread (a
// real hang, answering nothing) for the answer-timeout test (HashPool.stallWorkerForTests); nothing else sends it.
const WORKER_SOURCE = `
const { parentPort } = process.getBuiltinModule('node:worker_threads');
const { createHash } = process.getBuiltinModule('node:crypto');
const streams = new Map();
// a message that cannot be received leaves an answer owed forever: die, so the pool fails that work instead
parentPort.on('messageerror', (e) => { throw e; });
parentPort.on('message', (m) => {
  if (m.op === 'stallForTests') { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, m.ms); return; }
  if (m.sid === undefined) {
    try {
      parentPort.postMessage({ id: m.id, sha256: createHash('sha256').update(new Uint8Array(m.memory, m.offset, m.length)).digest('hex') });
    } catch (e) {
      parentPort.postMessage({ id: m.id, error: String(e && e.message || e) });
    }
    return;
  }
  try {
    if (m.op === 'drop') { streams.delete(m.sid); return; }
    let h = streams.get(m.sid);
    if (h === undefined) { h = createHash('sha256'); streams.set(m.sid, h); }
    if (m.op === 'update') {
      h.update(m.bytes ?? new Uint8Array(m.memory, m.offset, m.length));
      parentPort.postMessage({ sid: m.sid, seq: m.seq });
    } else {
      streams.delete(m.sid);
      parentPort.postMessage({ sid: m.sid, seq: m.seq, sha256: h.digest('hex') });
    }
  } catch (e) {
    streams.delete(m.sid);
    parentPort.postMessage({ sid: m.sid, seq: m.seq, error: String(e && e.message || e) });
  }
});
`;

/** An incremental SHA-256 whose updates run on a worker (HashPool.stream()), or on the calling thread. */
export interface StreamingHash {
  /**
   * Hashes `data` after every earlier update. Resolves once the bytes have been read: until then the caller must
   * not change them. Shared memory is read in place; other memory is copied into the message. Throws INTERNAL if
   * the worker failed, UNAVAILABLE after the pool closed; after any failure every later call fails too.
   */
  update(data: Uint8Array): Promise<void>;
  /** SHA-256 (lowercase hex) of everything updated. The stream is finished afterwards. Throws as update. */
  digest(): Promise<string>;
  /** Forgets the stream (on an error path); pending updates still settle. Idempotent. */
  drop(): void;
}

/** A StreamingHash on the calling thread (node:crypto), for callers without a pool or without shared buffers. */
export function inlineHash(): StreamingHash {
  const hash = createHash('sha256');
  return {
    update: (data) => {
      hash.update(data);
      return Promise.resolve();
    },
    digest: () => Promise.resolve(hash.digest('hex')),
    drop: () => undefined,
  };
}

interface Pending {
  resolve: (sha256: string) => void;
  reject: (e: Error) => void;
}

interface Request {
  id: number;
  memory: SharedArrayBuffer;
  offset: number;
  length: number;
  resolve: (sha256: string) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  busy: Request | null;
  /** Streams' messages awaiting their answer, by stream id then sequence number. */
  streams: Map<number, Map<number, Pending>>;
  /** Open streams bound to this worker (their state lives in it). */
  open: number;
  /** Armed while the worker owes an answer; restarted by each answer (it answers in order). */
  watchdog: NodeJS.Timeout | null;
  /** Why the worker was retired (died, or hung): what a stream still bound to it is told. */
  failure: CofferError | null;
}

export interface HashPoolOptions {
  /**
   * How long a worker that owes an answer may go without giving one before it is taken as hung: what it owed
   * rejects with UNAVAILABLE (retryable), it is terminated and replaced. Default 60 s (a chunk hashes in
   * milliseconds; only a stuck thread takes that long).
   */
  answerTimeoutMs?: number;
}

const DEFAULT_ANSWER_TIMEOUT_MS = 60_000;

export class HashPool {
  readonly #slots: Slot[] = [];
  readonly #queue: Request[] = [];
  #next = 0;
  #nextStream = 0;
  #closed = false;
  readonly #answerTimeoutMs: number;

  /** `workers` threads at most (made on first use); 0 hashes every buffer on the calling thread. */
  constructor(readonly workers: number, options: HashPoolOptions = {}) {
    if (!Number.isInteger(workers) || workers < 0 || workers > 64) throw new RangeError(`workers ${workers} must be an integer in [0, 64]`);
    const timeout = options.answerTimeoutMs ?? DEFAULT_ANSWER_TIMEOUT_MS;
    // setTimeout takes at most 2^31-1 ms (more fires at once)
    if (!Number.isInteger(timeout) || timeout < 1 || timeout > 2 ** 31 - 1) throw new RangeError(`answerTimeoutMs ${timeout} must be an integer in [1, 2^31-1]`);
    this.#answerTimeoutMs = timeout;
  }

  /**
   * SHA-256 (lowercase hex) of `data`. Throws UNAVAILABLE after close() or (retryable) when the worker hung,
   * INTERNAL if a worker fails.
   */
  digest(data: Uint8Array): Promise<string> {
    if (this.#closed) return Promise.reject(new CofferError(ErrorCode.UNAVAILABLE, 'the hash pool is closed'));
    const memory = data.buffer;
    // small buffers cost more to post than to hash
    if (this.workers === 0 || !(memory instanceof SharedArrayBuffer) || data.byteLength < 64 * 1024) {
      return Promise.resolve(createHash('sha256').update(data).digest('hex'));
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ id: this.#next++, memory, offset: data.byteOffset, length: data.byteLength, resolve, reject });
      this.#pump();
    });
  }

  /**
   * An incremental SHA-256 bound to one worker (the one with the fewest open streams), so its updates run off the
   * calling thread, in order. With `workers` 0 (or after close) it hashes on the calling thread / fails as update.
   */
  stream(): StreamingHash {
    if (this.workers === 0) return inlineHash();
    if (this.#closed) {
      const closed = (): Promise<never> => Promise.reject(new CofferError(ErrorCode.UNAVAILABLE, 'the hash pool is closed'));
      return { update: closed, digest: closed, drop: () => undefined };
    }
    const slot = this.#slots.length < this.workers ? this.#spawn() : this.#slots.reduce((a, b) => (b.open < a.open ? b : a));
    slot.open++;
    const sid = this.#nextStream++;
    let seq = 0;
    let failed: Error | null = null;
    let done = false;
    const pending = new Map<number, Pending>();
    const finish = (): void => {
      if (done) return;
      done = true;
      slot.open--;
    };
    const send = (message: Record<string, unknown>): Promise<string> => {
      if (failed) return Promise.reject(failed);
      if (this.#closed) return Promise.reject((failed = new CofferError(ErrorCode.UNAVAILABLE, 'the hash pool is closed')));
      if (done) return Promise.reject(new CofferError(ErrorCode.INTERNAL, 'the hash stream is finished'));
      if (!this.#slots.includes(slot)) return Promise.reject((failed = slot.failure ?? new CofferError(ErrorCode.INTERNAL, 'the hashing worker of this stream failed')));
      const n = seq++;
      const answer = new Promise<string>((resolve, reject) => pending.set(n, { resolve, reject }));
      slot.streams.set(sid, pending); // the entry goes whenever nothing is owed (see the message handler)
      slot.worker.ref(); // an awaited update keeps the process alive, as pending I/O would
      this.#watch(slot);
      slot.worker.postMessage({ sid, seq: n, ...message });
      return answer.catch((e: unknown) => {
        failed ??= e as Error;
        throw e;
      });
    };
    return {
      update: async (data) => {
        const memory = data.buffer;
        // shared memory is read in place; anything else travels as a copy (structured clone)
        await (memory instanceof SharedArrayBuffer
          ? send({ op: 'update', memory, offset: data.byteOffset, length: data.byteLength })
          : send({ op: 'update', bytes: data }));
      },
      digest: async () => {
        try {
          const sha256 = await send({ op: 'final' });
          // never hand out anything but a digest: a malformed answer fails the stream like a dead worker
          if (!/^[0-9a-f]{64}$/.test(sha256)) throw (failed = new CofferError(ErrorCode.INTERNAL, 'the hashing worker gave no digest'));
          return sha256;
        } finally {
          finish();
        }
      },
      drop: () => {
        if (done) return;
        finish();
        if (this.#slots.includes(slot)) slot.worker.postMessage({ sid, op: 'drop' });
        // answers still due settle their promises (the worker answers every update it was sent)
      },
    };
  }

  #pump(): void {
    while (this.#queue.length > 0) {
      let slot = this.#slots.find((s) => s.busy === null);
      if (!slot && this.#slots.length < this.workers) slot = this.#spawn();
      if (!slot) return;
      const req = this.#queue.shift() as Request;
      slot.busy = req;
      slot.worker.ref(); // a digest awaited keeps the process alive, as pending I/O would
      this.#watch(slot);
      slot.worker.postMessage({ id: req.id, memory: req.memory, offset: req.offset, length: req.length });
    }
  }

  #spawn(): Slot {
    // no inherited loaders (tsx in tests) or profiling flags: the worker needs nothing but node:crypto
    const worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [] });
    const slot: Slot = { worker, busy: null, streams: new Map(), open: 0, watchdog: null, failure: null };
    worker.unref(); // an idle pool never keeps the process alive (ref'd only while it hashes)
    // after each answer: owing nothing, the worker neither keeps the process alive nor is watched; owing more,
    // it has a full timeout for the next answer (it just showed it is making progress)
    const settleRef = (): void => {
      this.#unwatch(slot);
      if (slot.busy === null && [...slot.streams.values()].every((p) => p.size === 0)) worker.unref();
      else this.#watch(slot);
    };
    worker.on('message', (m: { id: number; sid?: number; seq?: number; sha256?: string; error?: string }) => {
      if (m.sid !== undefined) {
        const waiting = slot.streams.get(m.sid);
        const p = waiting?.get(m.seq as number);
        waiting?.delete(m.seq as number);
        if (waiting?.size === 0) slot.streams.delete(m.sid);
        if (m.error !== undefined) p?.reject(new CofferError(ErrorCode.INTERNAL, `hashing a chunk failed: ${m.error}`));
        else p?.resolve(m.sha256 ?? '');
        settleRef();
        return;
      }
      const req = slot.busy;
      slot.busy = null;
      settleRef();
      if (req?.id === m.id) {
        if (m.sha256 !== undefined) req.resolve(m.sha256);
        else req.reject(new CofferError(ErrorCode.INTERNAL, `hashing a chunk failed: ${m.error ?? 'unknown error'}`));
      }
      this.#pump();
    });
    const fail = (e: Error): void => this.#retire(slot, new CofferError(ErrorCode.INTERNAL, `a hashing worker failed: ${e.message}`, { cause: e }));
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`exited with code ${code}`)));
    // an answer that cannot be received would be owed forever: end the worker, which fails what it held
    worker.on('messageerror', () => void worker.terminate());
    this.#slots.push(slot);
    return slot;
  }

  /** Arms the slot's watchdog unless it already runs (a new request must not extend an earlier one's deadline). */
  #watch(slot: Slot): void {
    if (slot.watchdog !== null) return;
    slot.watchdog = setTimeout(() => {
      slot.watchdog = null;
      // hung (a stuck thread, an endless loop): its work fails now, retryably (a fresh worker will do it), and
      // the thread is ended; its 'exit' finds the slot already retired
      this.#retire(slot, new CofferError(ErrorCode.UNAVAILABLE, `a hashing worker gave no answer within ${this.#answerTimeoutMs} ms; it was replaced`, { retryable: true }));
      void slot.worker.terminate();
    }, this.#answerTimeoutMs);
    // the worker itself is ref'd while it owes an answer: the timer need not keep the process alive too
    slot.watchdog.unref();
  }

  #unwatch(slot: Slot): void {
    if (slot.watchdog !== null) clearTimeout(slot.watchdog);
    slot.watchdog = null;
  }

  /**
   * Takes a dead or hung worker out of the pool: the request and every stream it held fail with `e`, later
   * requests go to a fresh one. Once only: 'error' (an uncaught throw, ERR_WORKER_OUT_OF_MEMORY) is followed by
   * 'exit', a hung worker's terminate() by 'exit' too, and close() removed its slots.
   */
  #retire(slot: Slot, e: CofferError): void {
    const at = this.#slots.indexOf(slot);
    if (at < 0) return;
    this.#slots.splice(at, 1);
    this.#unwatch(slot);
    slot.failure = e;
    slot.busy?.reject(e);
    slot.busy = null;
    failStreams(slot, e);
    if (!this.#closed) this.#pump();
  }

  /**
   * Test hook: blocks `worker` (one of workersForTests()) for `ms` without answering anything, as a stuck thread
   * would, so a test can see the answer timeout fail its work and replace it. Nothing else uses it.
   */
  stallWorkerForTests(worker: Worker, ms: number): void {
    worker.postMessage({ op: 'stallForTests', ms });
  }

  /**
   * Test hook: the worker threads running now, so a test can kill one for real (terminate(), or a message its
   * code throws on) and see the pool fail the work it held and replace it. Nothing else uses it.
   */
  workersForTests(): readonly Worker[] {
    return this.#slots.map((s) => s.worker);
  }

  /** Stops the workers; pending digests reject with UNAVAILABLE. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const req of this.#queue.splice(0)) req.reject(new CofferError(ErrorCode.UNAVAILABLE, 'the hash pool is closed'));
    const slots = this.#slots.splice(0);
    for (const s of slots) {
      this.#unwatch(s);
      s.busy?.reject(new CofferError(ErrorCode.UNAVAILABLE, 'the hash pool is closed'));
      failStreams(s, new CofferError(ErrorCode.UNAVAILABLE, 'the hash pool is closed'));
    }
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}

/** Rejects every stream answer a worker still owed (it died, or the pool closed). */
function failStreams(slot: Slot, e: CofferError): void {
  for (const waiting of slot.streams.values()) for (const p of waiting.values()) p.reject(e);
  slot.streams.clear();
}
