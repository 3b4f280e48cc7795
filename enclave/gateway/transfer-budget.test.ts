// The enclave's memory budget (transfer-budget.ts): the semaphore itself, then FileOps over the real storage
// service with a small budget — many concurrent uploads, placed parts and ranged reads never hold more slots
// than the bound, a request beyond it does not pull a byte of its body until it has a slot, and every one of
// them completes with the right bytes.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintDevToken } from '../../src/api/auth/index.js';
import { startTestServer, type TestServer } from '../../src/api/test-server.js';
import { KeyFileDataKeys } from '../../src/client/data-keys.js';
import { VaultClient } from '../../src/client/vault-client.js';
import { generateKeyFile } from '../../src/crypto/index.js';
import type { EnclaveDataKeys } from './data-keys.js';
import { FileOps, type Caller } from './files.js';
import { createGatewayMetrics } from './metrics.js';
import { TransferBudget, admitStream } from './transfer-budget.js';

const MiB = 1024 * 1024;

describe('TransferBudget', () => {
  it('never hands out more than its slots, serves waiters in order, and ignores a second release', async () => {
    const b = new TransferBudget(2);
    const r1 = await b.acquire();
    const r2 = await b.acquire();
    expect(b.tryAcquire()).toBeNull();
    const order: number[] = [];
    const w3 = b.acquire().then((r) => { order.push(3); return r; });
    const w4 = b.acquire().then((r) => { order.push(4); return r; });
    expect(b.waiting).toBe(2);
    r1();
    r1(); // a double release does not free a second slot
    const r3 = await w3;
    expect(b.inUse).toBe(2);
    expect(b.waiting).toBe(1);
    r2();
    const r4 = await w4;
    expect(order).toEqual([3, 4]);
    r3();
    r4();
    expect(b.inUse).toBe(0);
    expect(b.peak).toBe(2);
    expect(b.tryAcquire()).not.toBeNull();
  });

  it('releases the slot when the work throws', async () => {
    const b = new TransferBudget(1);
    await expect(b.run(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(b.inUse).toBe(0);
  });

  it('admitStream: a waiting stream trickles a bounded amount of its body, then gets every byte in order', async () => {
    const b = new TransferBudget(1);
    const holder = await b.acquire();
    let pulled = 0;
    const pieces = Array.from({ length: 40 }, (_, i) => Buffer.alloc(1000, i));
    const shared = Buffer.alloc(1000);
    const source = (async function* () {
      for (const p of pieces) {
        pulled++;
        p.copy(shared);
        yield shared; // one buffer reused for every piece: what is held while waiting must be a copy
      }
    })();
    const admitted = admitStream(b, source, { trickleMs: 5, maxHeldBytes: 3000 });
    await new Promise((r) => setTimeout(r, 150));
    expect(pulled).toBe(3); // kept the client sending, but no more than maxHeldBytes
    holder();
    const { release, source: rest } = await admitted;
    const got: Buffer[] = [];
    for await (const p of rest) got.push(Buffer.from(p));
    release();
    expect(Buffer.concat(got).equals(Buffer.concat(pieces))).toBe(true);
    expect(b.inUse).toBe(0);
  });

  it('admitStream: a body that fails while waiting gives its slot back when it comes', async () => {
    const b = new TransferBudget(1);
    const holder = await b.acquire();
    const failing = (async function* () {
      yield Buffer.alloc(1);
      throw new Error('client went away');
    })();
    await expect(admitStream(b, failing, { trickleMs: 1 })).rejects.toThrow('client went away');
    holder();
    await new Promise((r) => setImmediate(r));
    expect(b.inUse).toBe(0);
    expect(b.waiting).toBe(0);
  });

  it('is shown on the gateway /metrics registry (slots, in use, peak, waiting per budget)', async () => {
    const seal = new TransferBudget(3);
    const m = createGatewayMetrics({ processMetrics: false, budgets: { seal, read: new TransferBudget(5) } });
    const r = await seal.acquire();
    const waiters = [seal.acquire(), seal.acquire(), seal.acquire()];
    const text = await m.registry.metrics();
    expect(text).toContain('coffer_gateway_transfer_slots{budget="seal"} 3');
    expect(text).toContain('coffer_gateway_transfer_slots{budget="read"} 5');
    expect(text).toContain('coffer_gateway_transfer_slots_in_use{budget="seal"} 3');
    expect(text).toContain('coffer_gateway_transfer_waiting{budget="seal"} 1');
    r();
    for (const w of waiters) (await w)();
    expect(await m.registry.metrics()).toContain('coffer_gateway_transfer_slots_peak{budget="seal"} 3');
  });

  it('refuses a budget without slots', () => {
    expect(() => new TransferBudget(0)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});

describe('FileOps under a budget (real storage service)', () => {
  let storage: TestServer;
  let work: string;
  let files: FileOps;
  let caller: Caller;

  beforeAll(async () => {
    storage = await startTestServer({ defaultRootRole: 'write' });
    work = await mkdtemp(path.join(os.tmpdir(), 'coffer-budget-'));
    await generateKeyFile(path.join(work, 'k'));
    const keys = await KeyFileDataKeys.open(path.join(work, 'k'));
    files = new FileOps({
      storage: (c) => new VaultClient({ server: storage.url, token: c.token }),
      keys: keys as unknown as EnclaveDataKeys, // same shape (DataKeyProvider)
      budget: { seals: 2, reads: 2, trickleMs: 600_000 }, // no trickle here: a waiting body stays unread
    });
    caller = { user: 'alice', admin: false, token: await mintDevToken(storage.env.dir, { user: 'alice', admin: false, ttlSeconds: 3600 }) };
    await files.mkdir(caller, '/budget', true);
  }, 60_000);

  afterAll(async () => {
    await storage?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** A body of `size` bytes in 1 MiB pieces that counts how many bodies are being pulled at once. */
  function counted(data: Buffer, gauge: { now: number; max: number }): AsyncIterable<Uint8Array> {
    return (async function* () {
      gauge.now++;
      gauge.max = Math.max(gauge.max, gauge.now);
      try {
        for (let off = 0; off < data.length; off += MiB) {
          await new Promise((r) => setImmediate(r));
          yield data.subarray(off, off + MiB);
        }
      } finally {
        gauge.now--;
      }
    })();
  }

  async function readAll(p: string, start?: number, end?: number): Promise<Buffer> {
    const f = await files.open(caller, p);
    try {
      const out: Buffer[] = [];
      await f.read(start ?? 0, end ?? f.size, async (piece) => {
        out.push(Buffer.from(piece));
        await new Promise((r) => setImmediate(r));
      });
      return Buffer.concat(out);
    } finally {
      f.close();
    }
  }

  it('six concurrent uploads hold at most two sealing slots, the others wait unread, all succeed', async () => {
    const bodies = Array.from({ length: 6 }, () => randomBytes(17 * MiB + 5));
    const gauge = { now: 0, max: 0 };
    let sawWaiting = 0;
    const watch = setInterval(() => { sawWaiting = Math.max(sawWaiting, files.sealBudget.waiting); }, 5);
    try {
      const results = await Promise.all(bodies.map((b, i) => files.put(caller, `/budget/f${i}`, counted(b, gauge), { size: b.length, digests: ['sha256'] })));
      results.forEach((r, i) => expect(r.digests.sha256).toBe(createHash('sha256').update(bodies[i] as Buffer).digest('hex')));
    } finally {
      clearInterval(watch);
    }
    expect(files.sealBudget.peak).toBeLessThanOrEqual(2);
    expect(gauge.max).toBeLessThanOrEqual(2); // a waiting upload had not started to pull its body
    expect(sawWaiting).toBeGreaterThan(0); // and some did wait
    expect(files.sealBudget.inUse).toBe(0);

    // six concurrent reads (whole and ranged across chunk boundaries) hold at most two opened chunk buffers
    const got = await Promise.all(bodies.map((_, i) => (i % 2 === 0 ? readAll(`/budget/f${i}`) : readAll(`/budget/f${i}`, 8 * MiB - 3, 16 * MiB + 9))));
    got.forEach((g, i) => {
      const b = bodies[i] as Buffer;
      expect(g.equals(i % 2 === 0 ? b : b.subarray(8 * MiB - 3, 16 * MiB + 9))).toBe(true);
    });
    expect(files.readBudget.peak).toBeLessThanOrEqual(2);
    expect(files.readBudget.inUse).toBe(0);
  }, 120_000);

  it('placed parts share the same sealing budget', async () => {
    const before = files.sealBudget.peak;
    expect(before).toBeLessThanOrEqual(2);
    const uploads = files.placedUploads;
    const upload = await uploads.open(caller, '/budget/placed');
    const parts = Array.from({ length: 5 }, () => randomBytes(8 * MiB));
    const gauge = { now: 0, max: 0 };
    await Promise.all(parts.map((p, i) => uploads.seal(caller, upload, i, counted(p, gauge), p.length, i === parts.length - 1)));
    expect(gauge.max).toBeLessThanOrEqual(2);
    expect(files.sealBudget.peak).toBeLessThanOrEqual(2);
    await uploads.commit(caller, upload, parts.length, parts.length * 8 * MiB);
    expect((await readAll('/budget/placed')).equals(Buffer.concat(parts))).toBe(true);
  }, 120_000);
});
