// The hash pool gives the same digests as node:crypto on the calling thread, for buffers in shared memory
// (hashed in place by workers, in any order of completion) and in ordinary memory; it is bounded and closes.
import { createHash, randomFillSync } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { alignedAllocator } from './buffer-pool.js';
import { HashPool } from './hash-pool.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
let pool: HashPool | undefined;
afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

describe('HashPool', () => {
  it('hashes shared-memory buffers on its workers, in place, with the digests of node:crypto', async () => {
    pool = new HashPool(2);
    const make = alignedAllocator(3 * 1024 * 1024, 6, { shared: true });
    const bufs = Array.from({ length: 6 }, (_, i) => randomFillSync(make()).subarray(0, 1024 * 1024 + i * 4097));
    expect(bufs[0]?.buffer).toBeInstanceOf(SharedArrayBuffer);
    const digests = await Promise.all(bufs.map((b) => pool?.digest(b)));
    expect(digests).toEqual(bufs.map(sha));
    // the caller keeps its buffer: nothing was transferred or detached
    expect(bufs.every((b) => b.byteLength > 0)).toBe(true);
  });

  it('runs its workers as plain scripts whatever flags the process has (tsx, --input-type=module)', async () => {
    // the worker's code is evaluated: it must not depend on being taken as CommonJS or as a module
    const { execFileSync } = await import('node:child_process');
    const here = new URL('.', import.meta.url).pathname;
    const script = `
      const { HashPool } = await import(${JSON.stringify(`${here}hash-pool.ts`)});
      const { alignedAllocator } = await import(${JSON.stringify(`${here}buffer-pool.ts`)});
      const b = alignedAllocator(1 << 20, 1, { shared: true })();
      b.fill(7);
      const pool = new HashPool(1);
      console.log(await pool.digest(b));
      await pool.close();
    `;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(out.trim()).toBe(sha(Buffer.alloc(1 << 20, 7)));
  }, 90_000);

  it('hashes ordinary and small buffers on the calling thread, empty ones included', async () => {
    pool = new HashPool(2);
    for (const b of [Buffer.alloc(0), randomFillSync(Buffer.alloc(100)), randomFillSync(Buffer.alloc(2 * 1024 * 1024))]) {
      expect(await pool.digest(b)).toBe(sha(b));
    }
    expect(await new HashPool(0).digest(Buffer.from('abc'))).toBe(sha(Buffer.from('abc')));
  });

  it('refuses work after close, and closing twice is harmless', async () => {
    pool = new HashPool(1);
    const b = randomFillSync(alignedAllocator(1024 * 1024, 1, { shared: true })());
    expect(await pool.digest(b)).toBe(sha(b));
    await pool.close();
    await pool.close();
    await expect(pool.digest(b)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(() => new HashPool(-1)).toThrow(RangeError);
  });
});
