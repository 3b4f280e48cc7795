// SHA-256 of chunk buffers on a small pool of worker threads, so a bulk copy's hashing (one pass over every byte
// copied) runs beside the main thread's reads and writes instead of between them. The buffers are views of a
// SharedArrayBuffer (alignedAllocator(…, { shared: true })): a worker reads them in place, nothing is copied or
// transferred, and the caller keeps the buffer. The caller must not change a buffer until its digest resolved.
// A buffer of ordinary memory is hashed on the calling thread (same result, no parallelism).
// Bounded: at most `workers` threads, each hashing one buffer at a time; requests queue in order.
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { CofferError, ErrorCode } from './errors.js';

// Evaluated in the worker: one message in (shared memory, offset, length), one digest out. getBuiltinModule
// works whether the eval is taken as CommonJS or as a module (flags such as --input-type=module are inherited).
const WORKER_SOURCE = `
const { parentPort } = process.getBuiltinModule('node:worker_threads');
const { createHash } = process.getBuiltinModule('node:crypto');
parentPort.on('message', (m) => {
  try {
    parentPort.postMessage({ id: m.id, sha256: createHash('sha256').update(new Uint8Array(m.memory, m.offset, m.length)).digest('hex') });
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String(e && e.message || e) });
  }
});
`;

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
}

export class HashPool {
  readonly #slots: Slot[] = [];
  readonly #queue: Request[] = [];
  #next = 0;
  #closed = false;

  /** `workers` threads at most (made on first use); 0 hashes every buffer on the calling thread. */
  constructor(readonly workers: number) {
    if (!Number.isInteger(workers) || workers < 0 || workers > 64) throw new RangeError(`workers ${workers} must be an integer in [0, 64]`);
  }

  /** SHA-256 (lowercase hex) of `data`. Throws UNAVAILABLE after close(), INTERNAL if a worker fails. */
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

  #pump(): void {
    while (this.#queue.length > 0) {
      let slot = this.#slots.find((s) => s.busy === null);
      if (!slot && this.#slots.length < this.workers) slot = this.#spawn();
      if (!slot) return;
      const req = this.#queue.shift() as Request;
      slot.busy = req;
      slot.worker.ref(); // a digest awaited keeps the process alive, as pending I/O would
      slot.worker.postMessage({ id: req.id, memory: req.memory, offset: req.offset, length: req.length });
    }
  }

  #spawn(): Slot {
    // no inherited loaders (tsx in tests) or profiling flags: the worker needs nothing but node:crypto
    const worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [] });
    const slot: Slot = { worker, busy: null };
    worker.unref(); // an idle pool never keeps the process alive (ref'd only while it hashes)
    worker.on('message', (m: { id: number; sha256?: string; error?: string }) => {
      const req = slot.busy;
      slot.busy = null;
      worker.unref();
      if (req?.id === m.id) {
        if (m.sha256 !== undefined) req.resolve(m.sha256);
        else req.reject(new CofferError(ErrorCode.INTERNAL, `hashing a chunk failed: ${m.error ?? 'unknown error'}`));
      }
      this.#pump();
    });
    const fail = (e: Error): void => {
      // a dead worker fails the request it held; later requests go to a fresh one
      this.#slots.splice(this.#slots.indexOf(slot), 1);
      slot.busy?.reject(new CofferError(ErrorCode.INTERNAL, `a hashing worker failed: ${e.message}`, { cause: e }));
      slot.busy = null;
      if (!this.#closed) this.#pump();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (this.#slots.includes(slot)) fail(new Error(`exited with code ${code}`));
    });
    this.#slots.push(slot);
    return slot;
  }

  /** Stops the workers; pending digests reject with UNAVAILABLE. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const req of this.#queue.splice(0)) req.reject(new CofferError(ErrorCode.UNAVAILABLE, 'the hash pool is closed'));
    const slots = this.#slots.splice(0);
    for (const s of slots) s.busy?.reject(new CofferError(ErrorCode.UNAVAILABLE, 'the hash pool is closed'));
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}
