// Manual benchmark (not a test): 1 GiB written as 128 chunks of 8 MiB + 64 bytes, delivered as 64 KiB pieces
// the way HTTP delivers them, through FsChunkStore.put, against fs.writeFile + fsync of the same bytes, and the
// cost of SHA-256 alone. Reports wall and CPU time. Run from the repository root:
//   node --import tsx storage-backend/fs/write-bench.ts [dir] [parallel puts]      (VERIFY=1 for verifyAfterWrite)
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openFsChunkStore } from './index.js';

const CHUNK = 8 * 1024 * 1024 + 64;
const COUNT = 128;
const PIECE = 64 * 1024;
const MiB = 1024 * 1024;
const dirArg = process.argv[2] ?? tmpdir();
const parallel = Number(process.argv[3] ?? 1);
const data = randomBytes(CHUNK);

async function* pieces(): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < CHUNK; at += PIECE) yield data.subarray(at, Math.min(at + PIECE, CHUNK));
}

async function pool(task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < COUNT) await task(next++);
  }));
}

async function timed(label: string, fn: () => Promise<void>): Promise<void> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  console.log(`${label.padEnd(34)} wall ${wall.toFixed(2)} s (${((COUNT * CHUNK) / MiB / wall).toFixed(0)} MiB/s), main-thread+pool CPU ${cpuS.toFixed(2)} s`);
}

const base = await mkdtemp(join(dirArg, 'coffer-write-bench-'));
try {
  await timed('sha256 only (64 KiB updates)', async () => {
    for (let i = 0; i < COUNT; i++) {
      const h = createHash('sha256');
      for await (const p of pieces()) h.update(p);
      h.digest();
    }
  });
  await mkdir(join(base, 'raw'));
  await timed(`fs.writeFile + fsync (x${parallel})`, () =>
    pool(async (i) => {
      const path = join(base, 'raw', String(i));
      await writeFile(path, data);
      const fh = await open(path, 'r');
      await fh.sync();
      await fh.close();
    }),
  );
  await rm(join(base, 'raw'), { recursive: true });
  const store = await openFsChunkStore({ root: join(base, 'store'), verifyAfterWrite: process.env.VERIFY === '1' });
  const blobId = randomBytes(16).toString('hex');
  await timed(`FsChunkStore.put (x${parallel}${process.env.VERIFY === '1' ? ', verify' : ''})`, () =>
    pool(async (i) => {
      await store.put({ blobId, index: i }, pieces());
    }),
  );
  await store.close();
} finally {
  await rm(base, { recursive: true, force: true });
}
