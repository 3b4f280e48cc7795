// `coffer put -r`'s batches of small files (docs/http-api.md "Many small files"): files already read and sealed
// are gathered until a batch holds BATCH_FILES files or BATCH_BYTES sealed bytes, then sent as one request
// (POST /v1/files/batch), BATCHES_IN_FLIGHT at a time. While a full batch waits for a slot, every adder waits
// with it (concurrent adders would otherwise fill batch after batch behind it), so memory stays bounded (about
// (BATCHES_IN_FLIGHT + 1) × BATCH_BYTES). A file's sealed bytes are copied, as it is added, into
// its batch's payload buffer, which is sent after the batch's JSON head without another copy and reused for a
// later batch once the service answered: no fresh off-heap buffer per file or per batch (small-file-read.ts says
// why that matters on Node 24). Each file is told its own answer: committed, or its own
// error; a failure of a whole batch (the service unreachable) stops the run like any failure that is not one file's.
import { BufferPool } from '../buffer-pool.js';
import { ErrorCode, httpStatusOf } from '../errors.js';
import { Gate } from '../gate.js';
import { errorFromResponse } from './http-errors.js';
import type { PreparedSmallFile } from './small-file.js';
import type { BatchFileAnswer, NodeInfo, VaultClient } from './vault-client.js';

export const BATCH_FILES = 256;
export const BATCH_BYTES = 8 * 1024 * 1024;
export const BATCHES_IN_FLIGHT = 3;

export interface BatchedFile {
  prepared: PreparedSmallFile;
  /** Called once with the file's outcome: its node, or its own error (a CofferError with the service's code). */
  settle: (outcome: { node: NodeInfo } | { error: Error }) => void;
}

export class FileBatcher {
  #queue: BatchedFile[] = [];
  #bytes = 0;
  #payload: Buffer | null = null;
  /** A sent batch still waiting for a slot; nothing is added, and no other batch sent, until it has one. */
  #waiting: Promise<void> | null = null;
  readonly #gate = new Gate(BATCHES_IN_FLIGHT);
  readonly #payloads: BufferPool;

  constructor(private readonly client: VaultClient, private readonly maxFiles = BATCH_FILES, private readonly maxBytes = BATCH_BYTES) {
    this.#payloads = new BufferPool(maxBytes, BATCHES_IN_FLIGHT + 1);
  }

  /** The first failure of a whole batch, if any (no batch starts after it). */
  get error(): unknown {
    return this.#gate.error;
  }

  /**
   * Queues a file (its sealed bytes copied into the batch, then its `release` called); sends the batch when
   * full, waiting for room when BATCHES_IN_FLIGHT are in flight.
   */
  async add(file: BatchedFile): Promise<void> {
    const n = file.prepared.sealed.byteLength;
    // a batch never exceeds maxBytes (the service refuses more than BATCH_MAX_BYTES): send first if it would
    // (again if others filled the next batch while this one waited for room). The checks and the copy below run
    // with no await between them, so no other adder slips in.
    for (;;) {
      if (this.#waiting !== null) {
        await this.#waiting;
        continue;
      }
      if (this.#queue.length === 0 || (this.#queue.length < this.maxFiles && this.#bytes + n <= this.maxBytes)) break;
      await this.flush();
    }
    // a file larger than maxBytes goes alone, in a payload of its own
    this.#payload ??= n <= this.maxBytes ? this.#payloads.acquire() : Buffer.allocUnsafe(n);
    const sealed = this.#payload.subarray(this.#bytes, this.#bytes + n);
    sealed.set(file.prepared.sealed);
    file.prepared.release?.();
    this.#queue.push({ prepared: { request: file.prepared.request, sealed }, settle: file.settle });
    this.#bytes += n;
    if (this.#queue.length >= this.maxFiles || this.#bytes >= this.maxBytes) await this.flush();
  }

  /** Sends what is queued (waiting for room). */
  async flush(): Promise<void> {
    while (this.#waiting !== null) await this.#waiting; // then, with no await, the queue is taken
    if (this.#queue.length === 0) return;
    const batch = this.#queue;
    const payload = this.#payload;
    this.#queue = [];
    this.#bytes = 0;
    this.#payload = null;
    const waiting = this.#gate.submit(async () => {
      const answers = await this.client.putSmallFiles(batch.map((f) => f.prepared));
      // answered: nothing reads the payload any more (after a failure its fate is unknown: not reused)
      if (payload !== null) this.#payloads.release(payload);
      batch.forEach((f, i) => f.settle(outcomeOf(answers[i] as BatchFileAnswer)));
    }).then(() => undefined);
    this.#waiting = waiting;
    try {
      await waiting;
    } finally {
      if (this.#waiting === waiting) this.#waiting = null;
    }
  }

  /** Sends the rest and waits for every batch. Throws the first failure of a whole batch. */
  async finish(): Promise<void> {
    await this.flush();
    await this.#gate.drain();
    if (this.#gate.error !== undefined) throw this.#gate.error;
  }

  /** Waits for the batches in flight, without sending the queue (after a failure elsewhere). */
  async drain(): Promise<void> {
    await this.#gate.drain();
  }
}

function outcomeOf(a: BatchFileAnswer): { node: NodeInfo } | { error: Error } {
  if ('error' in a) {
    const code = a.error?.code as ErrorCode;
    const status = (httpStatusOf as Record<string, number | undefined>)[code] ?? 500;
    return { error: errorFromResponse(status, JSON.stringify({ error: a.error })) };
  }
  return { node: a.node };
}
