import { describe, expect, it } from 'vitest';
import { BufferPool, DIRECT_IO_ALIGNMENT, alignUp, alignedAllocator } from './buffer-pool.js';

describe('BufferPool', () => {
  it('reuses released buffers up to `keep`, ignores foreign, surplus and double releases', () => {
    const pool = new BufferPool(1024, 2);
    const a = pool.acquire();
    const b = pool.acquire();
    const c = pool.acquire();
    expect(new Set([a, b, c]).size).toBe(3);
    pool.release(a);
    pool.release(a);
    pool.release(Buffer.alloc(512));
    expect(pool.kept).toBe(1);
    pool.release(b);
    pool.release(c);
    expect(pool.kept).toBe(2);
    expect([pool.acquire(), pool.acquire()].sort()).toEqual([a, b].sort());
  });

  it('clear() zeroes and drops what it keeps', () => {
    const pool = new BufferPool(64, 4);
    const a = pool.acquire();
    a.fill(7);
    pool.release(a);
    pool.clear();
    expect(pool.kept).toBe(0);
    expect(a.every((x) => x === 0)).toBe(true);
    expect(pool.acquire()).not.toBe(a);
  });

  it('refuses nonsense sizes', () => {
    expect(() => new BufferPool(0, 1)).toThrow(RangeError);
    expect(() => new BufferPool(10, -1)).toThrow(RangeError);
  });
});

describe('alignedAllocator', () => {
  it('carves distinct, non-overlapping buffers of the asked size from slabs, on 4 KiB strides', () => {
    const make = alignedAllocator(10_000, 3);
    const bufs = Array.from({ length: 7 }, make);
    for (const b of bufs) expect(b.length).toBe(10_000);
    // buffers of one slab share its memory at offsets that are multiples of the aligned stride
    expect(bufs[1]?.buffer).toBe(bufs[0]?.buffer);
    expect(bufs[3]?.buffer).not.toBe(bufs[0]?.buffer);
    for (const b of bufs) expect(b.byteOffset % DIRECT_IO_ALIGNMENT).toBe(0);
    bufs.forEach((b, i) => b.fill(i));
    bufs.forEach((b, i) => expect(b.every((x) => x === i)).toBe(true));
    expect(alignUp(10_000)).toBe(12_288);
    expect(alignUp(8192)).toBe(8192);
  });
});
