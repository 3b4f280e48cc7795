// LentBuffers gives its buffers back to the pool only on the second of "reader done" and "response closed",
// lends exact-size slices of pool buffers, and never pools a size the pool's buffers cannot hold.
import { describe, expect, it } from 'vitest';
import { BufferPool } from '../buffer-pool.js';
import { LentBuffers } from './lent-buffers.js';

describe('LentBuffers', () => {
  it('lends exact-size slices and gives them back only when both the reader and the response are done', () => {
    for (const order of [['reader', 'response'], ['response', 'reader']] as const) {
      const pool = new BufferPool(1024, 8);
      const lent = new LentBuffers(pool);
      const a = lent.bufferFor(100);
      const b = lent.bufferFor(1024);
      expect([a.length, b.length, a.buffer.byteLength]).toEqual([100, 1024, 1024]);
      expect(a.buffer).not.toBe(b.buffer);
      expect(lent.lent).toBe(2);
      const step = (which: 'reader' | 'response'): void => (which === 'reader' ? lent.readerDone() : lent.responseClosed());
      step(order[0]);
      step(order[0]); // a repeated event is not the other one
      expect(pool.kept).toBe(0);
      step(order[1]);
      expect(pool.kept).toBe(2);
      expect(lent.lent).toBe(0);
    }
  });

  it('gives a fresh, unpooled buffer for a size above the pool buffers, and after the buffers went back', () => {
    const pool = new BufferPool(1024, 8);
    const lent = new LentBuffers(pool);
    const big = lent.bufferFor(1025);
    expect(big.length).toBe(1025);
    expect(lent.lent).toBe(0);
    lent.bufferFor(10);
    lent.readerDone();
    lent.responseClosed();
    expect(pool.kept).toBe(1);
    lent.bufferFor(10); // too late to be given back by this answer: not taken from the pool
    expect(pool.kept).toBe(1);
    expect(lent.lent).toBe(0);
  });

  it('reuses what another answer gave back', () => {
    const pool = new BufferPool(64, 8);
    const first = new LentBuffers(pool);
    const a = first.bufferFor(64);
    first.readerDone();
    first.responseClosed();
    const second = new LentBuffers(pool);
    expect(second.bufferFor(32).buffer).toBe(a.buffer);
  });
});
