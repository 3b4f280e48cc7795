// collectYoungGarbage really frees dead off-heap buffers, leaks no `gc` global, and the pacer collects once per interval.
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { YOUNG_GARBAGE_INTERVAL, YoungGarbagePacer, collectYoungGarbage } from './young-garbage.js';

describe('collectYoungGarbage', () => {
  it('frees dead ArrayBuffers held by young objects', async () => {
    collectYoungGarbage();
    const before = process.memoryUsage().arrayBuffers;
    let garbage: Buffer[] | null = [];
    for (let i = 0; i < 256; i++) garbage.push(Buffer.allocUnsafeSlow(64 * 1024)); // 16 MiB, like two sealed chunks' outputs
    // (≥ 15 MiB, not 16: buffers freed by the collection above may still be leaving the count on a background thread)
    expect(process.memoryUsage().arrayBuffers - before).toBeGreaterThanOrEqual(15 * 2 ** 20);
    garbage = null;
    collectYoungGarbage();
    // V8 frees the dead buffers' memory on a background thread right after the scavenge: wait up to 2 s for it
    for (let i = 0; i < 200 && process.memoryUsage().arrayBuffers - before >= 2 ** 20; i++) await new Promise((r) => setTimeout(r, 10));
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(2 ** 20);
  });

  it('leaves no gc global behind, here or in new contexts', () => {
    collectYoungGarbage();
    expect(runInNewContext('typeof gc')).toBe('undefined');
    expect(typeof (globalThis as { gc?: unknown }).gc).toBe('undefined');
  });
});

describe('YoungGarbagePacer', () => {
  it('collects once per interval of bytes moved', () => {
    let collections = 0;
    const pacer = new YoungGarbagePacer(32, () => collections++);
    for (let i = 0; i < 3; i++) pacer.moved(8);
    expect(collections).toBe(0);
    pacer.moved(8); // 32 bytes
    expect(collections).toBe(1);
    pacer.moved(100); // one call, however large, is one collection
    expect(collections).toBe(2);
    pacer.moved(31);
    expect(collections).toBe(2);
  });

  it('defaults to every 32 MiB (four full chunks) and refuses a bad interval', () => {
    expect(new YoungGarbagePacer().interval).toBe(YOUNG_GARBAGE_INTERVAL);
    expect(YOUNG_GARBAGE_INTERVAL).toBe(4 * 8 * 2 ** 20);
    expect(() => new YoungGarbagePacer(0)).toThrow(RangeError);
    expect(() => new YoungGarbagePacer(1.5)).toThrow(RangeError);
  });
});
