import { describe, expect, it } from 'vitest';
import { BoundedQueue } from './bounded-queue.js';

describe('BoundedQueue', () => {
  it('hands items over in order, and ends after close() once drained', async () => {
    const q = new BoundedQueue<number>(4);
    const producer = (async () => {
      for (let i = 0; i < 100; i++) await q.push(i);
      q.close();
    })();
    const got: number[] = [];
    for await (const n of q) got.push(n);
    await producer;
    expect(got).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it('push waits while the queue is full, and holds no more than its limit', async () => {
    const q = new BoundedQueue<number>(2);
    await q.push(1);
    await q.push(2);
    let third = false;
    const pushing = q.push(3).then(() => (third = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(third).toBe(false);
    expect(q.size).toBe(2);
    const it = q[Symbol.asyncIterator]();
    expect((await it.next()).value).toBe(1);
    await pushing;
    expect(third).toBe(true);
    expect(q.size).toBe(2);
  });

  it('a consumer that stops early abandons the queue: a waiting push and later ones return at once', async () => {
    const q = new BoundedQueue<number>(1);
    await q.push(1);
    const waiting = q.push(2);
    for await (const n of q) {
      expect(n).toBe(1);
      break;
    }
    await waiting; // would wait forever for room
    await q.push(3);
    expect(q.size).toBe(0);
  });
});
