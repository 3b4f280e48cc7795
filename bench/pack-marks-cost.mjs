// Cost of one deleteBlob of a packed chunk with pack dead marks (docs/format.md "Pack dead marks v1"), wall and
// CPU, for the vault's store (marks durable at each delete) and a deferSync store (backup targets: marks at
// flush/close). Runs the compiled store (npm run build first): node bench/pack-marks-cost.mjs [scratch dir]
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

const { openFsChunkStore } = await import(new URL('../dist/storage-backend/fs/index.js', import.meta.url).href);
const scratch = process.argv[2] ?? tmpdir();
for (const deferSync of [false, true]) {
  const root = mkdtempSync(join(scratch, 'coffer-marks-'));
  const store = await openFsChunkStore({ root, deferSync });
  const chunks = Array.from({ length: 1000 }, () => ({ ref: { blobId: randomBytes(16).toString('hex'), index: 0 }, data: randomBytes(1088) }));
  await store.putPack(chunks);
  const u0 = process.cpuUsage();
  const t0 = performance.now();
  for (const c of chunks.slice(0, 500)) await store.deleteBlob(c.ref.blobId);
  if (deferSync) await store.flush();
  const t = performance.now() - t0;
  const u = process.cpuUsage(u0);
  console.log(`deferSync=${deferSync}: 500 deleteBlob of a 1000-chunk pack${deferSync ? ' + flush()' : ''}: ${(t / 500).toFixed(2)} ms wall, ${((u.user + u.system) / 1e3 / 500).toFixed(3)} ms CPU each`);
  await store.close();
  rmSync(root, { recursive: true, force: true });
}
