// Manual benchmark (not a test): bytes of heap the in-memory pack index (./packs.ts) spends per packed chunk.
// Writes COUNT single-chunk blobs (the small-files case: one 64-byte chunk each) into packs of 50,000, then
// measures heapUsed before and after a fresh FsPacks loads them (rescan), with a full GC around each reading.
// Run from the repository root:
//   node --expose-gc --import tsx storage-backend/fs/pack-index-bench.ts [count]      (default 200,000)
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { prepareRoot } from './layout.js';
import { FsPacks } from './packs.js';

const COUNT = Number(process.argv[2] ?? 200_000);
const PER_PACK = 50_000;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

const heap = (): number => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};

const root = await mkdtemp(join(tmpdir(), 'coffer-pack-index-'));
try {
  const layout = await prepareRoot(root);
  layout.deferSync = true;
  const writer = new FsPacks(layout, pLimit(4));
  const data = new Uint8Array(64);
  for (let done = 0; done < COUNT; done += PER_PACK) {
    const n = Math.min(PER_PACK, COUNT - done);
    await writer.write(Array.from({ length: n }, () => ({ ref: { blobId: randomBytes(16).toString('hex'), index: 0 }, data })));
  }
  const before = heap();
  const reader = new FsPacks(layout, pLimit(4));
  await reader.rescan();
  const after = heap();
  console.log(`${COUNT} packed chunks: ${((after - before) / COUNT).toFixed(0)} bytes of heap per chunk (${((after - before) / 2 ** 20).toFixed(1)} MiB)`);
  if (reader.indices(randomBytes(16).toString('hex')).length !== 0) throw new Error('unexpected');
} finally {
  await rm(root, { recursive: true, force: true });
}
