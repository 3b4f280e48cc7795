// Buffers lent to one streamed answer (the batch read, `POST /v1/fs/files/read`) and given back to their pool only
// when nothing can touch them any more. Each file of a batch read is a sealed chunk read from its pack; read into
// a fresh buffer, each is off-heap memory that V8 frees only when it gets round to collecting its small owner
// object, and under a long `get -r` the service's ArrayBuffers grew to 230–280 MiB of such garbage
// (docs/benchmarks.md, "Memory at 100,000 files"). Lent from a pool instead, the same few buffers serve every batch.
//
// Two things must both be over before a buffer is reused (BufferPool's rule): the reads into it (the vault reads
// a few files ahead; an abandoned answer still settles the reads it started) and the socket writes out of it
// (Node's response holds the buffer until the kernel took it; its 'close' comes after the last write finished or
// was cancelled). So the buffers go back on the second of `readerDone()` and `responseClosed()`. If either never
// comes (a failure nobody reported), they are simply not given back: the garbage collector reclaims them.
import type { BufferPool } from '../buffer-pool.js';

export class LentBuffers {
  readonly #lent: Buffer[] = [];
  #readerDone = false;
  #responseClosed = false;

  constructor(private readonly pool: BufferPool) {}

  /** A buffer of exactly `size` bytes: a slice of a pool buffer when it fits, else a fresh one (not pooled). */
  readonly bufferFor = (size: number): Buffer => {
    if (size > this.pool.size || this.#given()) return Buffer.allocUnsafe(size);
    const whole = this.pool.acquire();
    this.#lent.push(whole);
    return whole.subarray(0, size);
  };

  /** Buffers currently lent (for tests). */
  get lent(): number {
    return this.#lent.length;
  }

  /** Nothing will be read into the lent buffers any more. */
  readerDone(): void {
    this.#readerDone = true;
    this.#giveBack();
  }

  /** Nothing will be written out of the lent buffers any more. */
  responseClosed(): void {
    this.#responseClosed = true;
    this.#giveBack();
  }

  #given(): boolean {
    return this.#readerDone && this.#responseClosed;
  }

  #giveBack(): void {
    if (!this.#given()) return;
    for (const b of this.#lent) this.pool.release(b);
    this.#lent.length = 0;
  }
}
