// A FIFO from one producer to one consumer with room for `limit` items: push waits while it is full, so what it
// holds stays bounded however long the stream (the chunk jobs of a 16 TiB blob). Lets one loop feed two lanes
// that drain at different speeds (backup's chunk copy: whole chunks wait for the disk, packed ones for the CPU)
// without the slow lane holding the fast one up. A consumer that stops early (an error) abandons the queue:
// later pushes are dropped at once instead of waiting forever for room.

export class BoundedQueue<T> {
  #items: T[] = [];
  #head = 0;
  #closed = false;
  #abandoned = false;
  #wakeProducer: (() => void) | null = null;
  #wakeConsumer: (() => void) | null = null;

  constructor(readonly limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`limit ${limit} must be a positive integer`);
  }

  get size(): number {
    return this.#items.length - this.#head;
  }

  /** Adds an item once there is room; resolves at once (dropping it) when the consumer abandoned the queue. */
  async push(item: T): Promise<void> {
    if (this.#closed) throw new Error('push after close');
    while (this.size >= this.limit && !this.#abandoned) await new Promise<void>((resolve) => (this.#wakeProducer = resolve));
    if (this.#abandoned) return;
    this.#items.push(item);
    this.#wake('consumer');
  }

  /** No more items: the consumer's iteration ends once it has taken those queued. */
  close(): void {
    this.#closed = true;
    this.#wake('consumer');
  }

  /** The items in order, until close(); leaving the loop early abandons the queue (see push). */
  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    try {
      for (;;) {
        if (this.size > 0) {
          const item = this.#items[this.#head] as T;
          this.#items[this.#head++] = undefined as T; // let it go now, not at the next compaction
          if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
            this.#items = this.#items.slice(this.#head);
            this.#head = 0;
          }
          this.#wake('producer');
          yield item;
          continue;
        }
        if (this.#closed) return;
        await new Promise<void>((resolve) => (this.#wakeConsumer = resolve));
      }
    } finally {
      if (!this.#closed || this.size > 0) this.#abandon();
    }
  }

  #abandon(): void {
    this.#abandoned = true;
    this.#items = [];
    this.#head = 0;
    this.#wake('producer');
  }

  #wake(who: 'producer' | 'consumer'): void {
    const wake = who === 'producer' ? this.#wakeProducer : this.#wakeConsumer;
    if (who === 'producer') this.#wakeProducer = null;
    else this.#wakeConsumer = null;
    wake?.();
  }
}
