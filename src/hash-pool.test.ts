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

  it('streams: updates on a worker, in order, from shared and ordinary memory, streams interleaved on one worker', async () => {
    pool = new HashPool(1);
    const make = alignedAllocator(1024 * 1024, 4, { shared: true });
    const shared = [randomFillSync(make()), randomFillSync(make()).subarray(0, 12345)];
    const plain = randomFillSync(Buffer.alloc(70_001));
    const a = pool.stream();
    const b = pool.stream();
    const empty = pool.stream();
    await Promise.all([a.update(shared[0] as Buffer), b.update(plain), a.update(plain), b.update(shared[1] as Buffer), a.update(shared[1] as Buffer)]);
    expect(await a.digest()).toBe(sha(Buffer.concat([shared[0] as Buffer, plain, shared[1] as Buffer])));
    expect(await b.digest()).toBe(sha(Buffer.concat([plain, shared[1] as Buffer])));
    expect(await empty.digest()).toBe(sha(Buffer.alloc(0)));
    // finished streams refuse more work instead of hashing into a fresh state
    await expect(a.update(plain)).rejects.toMatchObject({ code: 'INTERNAL' });
    // a dropped stream leaves the worker usable
    const dropped = pool.stream();
    await dropped.update(shared[0] as Buffer);
    dropped.drop();
    const c = pool.stream();
    await c.update(plain);
    expect(await c.digest()).toBe(sha(plain));
    expect(await new HashPool(0).stream().digest()).toBe(sha(Buffer.alloc(0)));
  });

  it('streams fail closed when the pool closes under them: the pending update, later calls, new streams', async () => {
    pool = new HashPool(1);
    const big = randomFillSync(alignedAllocator(8 * 1024 * 1024, 1, { shared: true })());
    const s = pool.stream();
    await s.update(big); // the worker is up
    const pending = s.update(big);
    const closing = pool.close();
    await expect(pending).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await closing;
    await expect(s.update(big)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await expect(s.digest()).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await expect(pool.stream().update(big)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });

  it('a stream idle when the pool closes says UNAVAILABLE (closed), not that its worker failed', async () => {
    pool = new HashPool(1);
    const s = pool.stream();
    await s.update(randomFillSync(Buffer.alloc(1000)));
    await pool.close();
    await expect(s.digest()).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });

  describe('a worker that hangs (answers nothing)', () => {
    const make = alignedAllocator(1024 * 1024, 3, { shared: true });
    const bufs = Array.from({ length: 3 }, () => randomFillSync(make()));

    it('its pending work fails with a retryable UNAVAILABLE after answerTimeoutMs; it is replaced; the others keep working', async () => {
      pool = new HashPool(2, { answerTimeoutMs: 400 });
      const p = pool;
      await Promise.all([p.digest(bufs[0] as Buffer), p.digest(bufs[1] as Buffer)]); // both workers are up
      const [hung, other] = p.workersForTests();
      const s = p.stream(); // bound to the first of the two (fewest open streams)
      await s.update(bufs[2] as Buffer);
      p.stallWorkerForTests(hung as never, 10_000); // a real hang: the thread blocks, well past the timeout
      const started = Date.now();
      const stuck = p.digest(bufs[0] as Buffer); // the first idle worker: the hung one
      const stuckUpdate = s.update(bufs[1] as Buffer);
      const settled: string[] = [];
      void stuck.catch(() => settled.push('stuck'));
      // meanwhile the other worker answers, one request after another
      for (const b of bufs) {
        expect(await p.digest(b)).toBe(sha(b));
        settled.push('ok');
      }
      const e = await stuck.catch((err: unknown) => err);
      expect(e).toMatchObject({ name: 'CofferError', code: 'UNAVAILABLE', retryable: true, message: expect.stringMatching(/no answer within 400 ms/) });
      expect(Date.now() - started).toBeGreaterThanOrEqual(350);
      expect(settled.slice(0, 3)).toEqual(['ok', 'ok', 'ok']);
      // the stream's state lived in the hung worker: it fails for good, with the same reason
      await expect(stuckUpdate).rejects.toMatchObject({ code: 'UNAVAILABLE', retryable: true });
      await expect(s.digest()).rejects.toMatchObject({ code: 'UNAVAILABLE' });
      // replaced: two workers again, the hung one gone, the new one hashing
      const fresh = p.stream();
      await fresh.update(bufs[0] as Buffer);
      expect(await fresh.digest()).toBe(sha(bufs[0] as Buffer));
      expect(await Promise.all(bufs.map((b) => p.digest(b)))).toEqual(bufs.map(sha));
      expect(p.workersForTests()).toHaveLength(2);
      expect(p.workersForTests()).not.toContain(hung);
      expect(p.workersForTests()).toContain(other);
    });

    it('a slow but answering worker is not taken as hung: the timeout runs from its last answer', async () => {
      pool = new HashPool(1, { answerTimeoutMs: 500 });
      const p = pool;
      const s = p.stream();
      await s.update(bufs[0] as Buffer);
      const [worker] = p.workersForTests();
      // each stall is well under the timeout, and an answer comes after each: 3 x 200 ms owed in a row
      const updates: Promise<void>[] = [];
      for (const b of bufs) {
        p.stallWorkerForTests(worker as never, 200);
        updates.push(s.update(b));
      }
      await Promise.all(updates);
      expect(await s.digest()).toBe(sha(Buffer.concat([bufs[0] as Buffer, ...bufs])));
      expect(p.workersForTests()).toEqual([worker]);
      expect(() => new HashPool(1, { answerTimeoutMs: 0 })).toThrow(RangeError);
    });
  });

  describe('a worker that dies mid-hash', () => {
    const make = alignedAllocator(32 * 1024 * 1024, 2, { shared: true });
    const big = randomFillSync(make()); // long enough to hash that the kill lands while it is being hashed
    const small = randomFillSync(make()).subarray(0, 1024 * 1024);

    /** After a death: a fresh worker took its place, and new work on it gives the digests of node:crypto. */
    async function recovered(p: HashPool, dead: unknown): Promise<void> {
      const s = p.stream();
      await s.update(small);
      await s.update(big);
      expect(await s.digest()).toBe(sha(Buffer.concat([small, big])));
      expect(await p.digest(big)).toBe(sha(big));
      expect(p.workersForTests()).toHaveLength(1);
      expect(p.workersForTests()[0]).not.toBe(dead);
    }

    it('terminated: every stream on it (hashing or idle) and the one-shot digest it held reject; no digest resolves', async () => {
      pool = new HashPool(1);
      const a = pool.stream();
      const b = pool.stream();
      await a.update(small); // the worker is up, and both streams have state in it
      await b.update(small);
      const [worker] = pool.workersForTests();
      const hashing = a.update(big);
      const oneShot = pool.digest(big);
      await worker?.terminate();
      await expect(hashing).rejects.toMatchObject({ name: 'CofferError', code: 'INTERNAL' });
      await expect(oneShot).rejects.toMatchObject({ name: 'CofferError', code: 'INTERNAL' });
      await expect(a.digest()).rejects.toMatchObject({ code: 'INTERNAL' });
      // b was idle when the worker died: its state is gone with it, so it must not answer with a fresh state's digest
      await expect(b.update(small)).rejects.toMatchObject({ code: 'INTERNAL' });
      await expect(b.digest()).rejects.toMatchObject({ code: 'INTERNAL' });
      await recovered(pool, worker);
    });

    it('idle stream, then terminated: its digest rejects instead of hashing into a fresh worker', async () => {
      pool = new HashPool(1);
      const a = pool.stream();
      await a.update(small);
      const [worker] = pool.workersForTests();
      await worker?.terminate();
      await expect(a.digest()).rejects.toMatchObject({ code: 'INTERNAL' });
      await recovered(pool, worker);
    });

    it('throws (an uncaught exception in its own code): the work sent after the fatal message rejects', async () => {
      pool = new HashPool(1);
      const a = pool.stream();
      await a.update(small);
      const [worker] = pool.workersForTests();
      worker?.postMessage(null); // the worker's handler reads null.sid: a TypeError outside its try, fatal
      const hashing = a.update(big);
      const oneShot = pool.digest(big);
      await expect(hashing).rejects.toMatchObject({ code: 'INTERNAL', message: expect.stringMatching(/worker/) });
      await expect(oneShot).rejects.toMatchObject({ code: 'INTERNAL' });
      await expect(a.digest()).rejects.toMatchObject({ code: 'INTERNAL' });
      await recovered(pool, worker);
    });

    it('a stream sent to a worker whose death the pool has not heard of yet still rejects', async () => {
      pool = new HashPool(1);
      const a = pool.stream();
      await a.update(small);
      const [worker] = pool.workersForTests();
      const stopping = worker?.terminate(); // not awaited: the 'exit' event comes later
      const late = a.update(big);
      const lateDigest = a.digest();
      await expect(late).rejects.toMatchObject({ code: 'INTERNAL' });
      await expect(lateDigest).rejects.toMatchObject({ code: 'INTERNAL' });
      await stopping;
      await recovered(pool, worker);
    });
  });
});
