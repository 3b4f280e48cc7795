// Operator moments on a really full disk (a small tmpfs filled to 0 bytes free by a file outside Coffer; ENOSPC
// from the kernel, no mocks), through the real `coffer` command against a real `coffer serve`: a put stopped by
// NO_SPACE keeps its upload, `coffer uploads list` shows it and `abort` drops it; `coffer rm` works at 0 bytes
// free and its space comes back by itself (the service's space reserve, docs/storage-backend.md "Full disks");
// a restart on a full disk starts and can remove files too.
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, statfsSync, writeSync } from 'node:fs';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliProcess, startServerProcess } from '../../bench/cli-process.js';
import { mountTmpfs, type Tmpfs } from '../support/tmpfs.js';

const MiB = 1024 * 1024;
let fs: Tmpfs;
let work: string;
let dataDir: string;
let env: NodeJS.ProcessEnv;
let server: Awaited<ReturnType<typeof startServerProcess>> | undefined;
const serverEnv = { COFFER_SPACE_RESERVE: '4m' };

const free = (): number => {
  const s = statfsSync(fs.path);
  return s.bavail * s.bsize;
};

/** Writes to `file` until `leave` bytes are free (0: until the kernel refuses). */
function fill(file: string, leave = 0): void {
  const fd = openSync(file, 'a');
  const block = Buffer.alloc(64 * 1024, 1);
  try {
    for (let left = free() - leave; left > 0; left -= block.length) writeSync(fd, block, 0, Math.min(block.length, left));
    if (leave === 0) for (;;) writeSync(fd, block, 0, 4096);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 90_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const coffer = (args: string[]) => runCliProcess(args, env);
async function ok(args: string[]): Promise<string> {
  const r = await coffer(args);
  if (r.code !== 0) throw new Error(`coffer ${args.join(' ')} → ${r.code}: ${r.stderr}`);
  return r.stdout;
}

beforeAll(async () => {
  fs = await mountTmpfs('coffer-full-disk-', '64m');
  work = await mkdtemp(path.join(os.tmpdir(), 'coffer-full-disk-work-'));
  if (!fs.mounted) return;
  dataDir = path.join(fs.path, 'data');
  server = await startServerProcess(['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--default-root-role', 'write'], serverEnv);
  const keyFile = path.join(work, 'k.key');
  env = { COFFER_SERVER: server.url, COFFER_KEY_FILE: keyFile, COFFER_STATE_DIR: path.join(work, 'state') };
  await ok(['keygen', '--out', keyFile]);
  env.COFFER_TOKEN = (await ok(['token', '--data-dir', dataDir, '--user', 'alice'])).trim();
}, 240_000);

afterAll(async () => {
  await server?.stop();
  await fs?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('a 100 % full disk', () => {
  it('uploads list|abort, rm at 0 bytes free, and the space comes back by itself', async (ctx) => {
    if (!fs.mounted) ctx.skip(fs.whyNot);
    expect(existsSync(path.join(dataDir, 'space.reserve'))).toBe(true);
    const big = path.join(work, 'big.bin');
    await writeFile(big, randomBytes(16 * MiB));
    await ok(['put', big, '/big.bin']);

    // room for one chunk of the next file, not two: the put stops with NO_SPACE and keeps its upload
    fill(path.join(fs.path, 'filler-1'), 12 * MiB);
    const second = path.join(work, 'second.bin');
    await writeFile(second, randomBytes(24 * MiB));
    const stopped = await coffer(['put', '--concurrency', '1', second, '/second.bin']);
    expect(stopped.code).toBe(1);
    expect(stopped.stderr).toMatch(/\[NO_SPACE\]\n$/);
    expect((await coffer(['stat', '/second.bin'])).code).toBe(3);

    fill(path.join(fs.path, 'filler-2')); // whatever is left, outside Coffer
    expect(free()).toBe(0);

    const uploads = JSON.parse(await ok(['uploads', 'list', '--json'])) as Array<{ blobId: string; path: string; storedBytes: number }>;
    expect(uploads).toEqual([expect.objectContaining({ path: '/second.bin' })]);
    const held = uploads[0]?.storedBytes ?? 0;
    expect(held).toBeGreaterThanOrEqual(8 * MiB);

    // at 0 bytes free: rm and abort work, and their space comes back without anything deleted outside Coffer
    expect(await ok(['rm', '/big.bin'])).toMatch(/^removed 1 entry/);
    expect(await ok(['uploads', 'abort', uploads[0]?.blobId as string])).toMatch(/^aborted 1 upload/);
    expect(JSON.parse(await ok(['uploads', 'list', '--json']))).toEqual([]);
    await until('the removed file\'s and the aborted upload\'s chunks to be freed', () => free() >= 16 * MiB + held - 4 * MiB);
    await until('the space reserve to be made again', () => existsSync(path.join(dataDir, 'space.reserve')));
    await ok(['put', big, '/again.bin']);
  }, 240_000);

  it('a service restarted on a full disk starts, and rm frees space', async (ctx) => {
    if (!fs.mounted) ctx.skip(fs.whyNot);
    await server?.stop();
    fill(path.join(fs.path, 'filler-3'));
    expect(free()).toBe(0);
    server = await startServerProcess(['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--default-root-role', 'write'], serverEnv);
    env.COFFER_SERVER = server.url;
    expect(await ok(['rm', '/again.bin'])).toMatch(/^removed 1 entry/);
    await until('the removed file\'s chunks to be freed', () => free() >= 12 * MiB);
    for (const f of ['filler-1', 'filler-2', 'filler-3']) await unlink(path.join(fs.path, f));
  }, 240_000);
});
