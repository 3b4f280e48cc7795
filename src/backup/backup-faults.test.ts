// Faults of a directory backup target, for real (a small tmpfs: ENOSPC and EROFS from the kernel, no mocks):
// a target that fills up, one that is read-only, one that disappears mid-run. Each ends `coffer backup create`
// with a one-line error naming the target, leaves the vault untouched and no snapshot behind, and the next run
// resumes once the fault is gone. Mounting needs root; elsewhere the file is skipped with the reason.
import { execFile } from 'node:child_process';
import { readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliProcess, spawnCli } from '../../bench/cli-process.js';
import { mountTmpfs, type Tmpfs } from '../../test/support/tmpfs.js';
import { serveVault, workspace, type LiveVault, type Workspace } from './test-support.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
let fs: Tmpfs;
let ws: Workspace;
let vault: LiveVault;

beforeAll(async () => {
  fs = await mountTmpfs('coffer-backup-tmpfs-', '6m');
  ws = await workspace();
  vault = await serveVault(path.join(ws.dir, 'vault'));
  await ws.put(vault, '/small.bin', 100_000);
  await ws.put(vault, '/big.bin', 8 * MiB + 5); // two chunk files: 8 MiB + 64 does not fit in 6 MiB
}, 120_000);

afterAll(async () => {
  await vault?.close();
  await ws?.close();
  await fs?.close();
});

const create = (target: string, extra: string[] = []) => runCliProcess(['backup', 'create', '--to', target, '--data-dir', vault.dataDir, '--json', ...extra]);

describe('directory target faults', () => {
  it('a full target: NO_SPACE naming it, no snapshot, nothing partial; resumes after space is freed', async (ctx) => {
    if (!fs.mounted) return ctx.skip(fs.whyNot);
    const target = path.join(fs.path, 'full');
    const r = await create(target);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/NO_SPACE/);
    expect(r.stderr).toContain(fs.path);
    expect(await readdir(path.join(target, 'snapshots')).catch(() => [])).toEqual([]);
    await run('mount', ['-o', 'remount,size=64m', fs.path]);
    const again = await create(target);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ files: 2, chunks: 3 });
    expect((await runCliProcess(['backup', 'verify', target])).code).toBe(0);
    await run('mount', ['-o', 'remount,size=6m', fs.path]).catch(() => undefined);
  }, 180_000);

  it('a read-only target: a clear "not writable" error, the existing snapshots untouched', async (ctx) => {
    if (!fs.mounted) return ctx.skip(fs.whyNot);
    const target = path.join(fs.path, 'full'); // holds the snapshot of the test above
    await ws.put(vault, '/new.bin', 1000);
    await run('mount', ['-o', 'remount,ro', fs.path]);
    try {
      const r = await create(target);
      expect(r.code).toBe(7);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/not writable \(EROFS\)/);
    } finally {
      await run('mount', ['-o', 'remount,rw', fs.path]);
    }
    expect((await runCliProcess(['backup', 'verify', target])).code).toBe(0);
  }, 180_000);

  it('a target that disappears mid-run: UNAVAILABLE, and a new run into a fresh target works', async () => {
    const target = path.join(ws.dir, 'vanishing');
    const child = spawnCli(['backup', 'create', '--to', target, '--data-dir', vault.dataDir, '--concurrency', '1', '--rate-limit', '256KiB']);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const chunkCount = async (): Promise<number> => (await readdir(path.join(target, 'chunks'), { recursive: true }).catch(() => [])).filter((n) => /[0-9a-f]{8}$/.test(String(n))).length;
    while ((await chunkCount()) < 1) await new Promise((r) => setTimeout(r, 20));
    // gone in one step: an `rm -r` here raced with the run's own writes into the directory (ENOTEMPTY in CI)
    await rename(target, `${target}.gone`);
    const code = await exited;
    await rm(`${target}.gone`, { recursive: true, force: true });
    expect(code).not.toBe(0);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/backup target .* disappeared \(ENOENT\)/);
    const again = await create(target);
    expect(again.code, again.stderr).toBe(0);
  }, 180_000);
});
