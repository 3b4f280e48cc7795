// Consistency while the vault keeps serving: a `coffer backup create` process, slowed by --rate-limit, runs while
// files are overwritten, removed and added, and garbage collection purges the released blobs' chunk files
// every 100 ms. The snapshot must verify, and its restore must serve every file it holds whole: each with
// exactly the bytes of one committed version (the one before or the one after), never a mix or a missing chunk.
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliProcess, spawnCli } from '../../bench/cli-process.js';
import { chunksOnDisk, serveVault, workspace, type LiveVault, type Workspace } from './test-support.js';

let ws: Workspace;
let vault: LiveVault;

beforeAll(async () => {
  ws = await workspace();
  vault = await serveVault(path.join(ws.dir, 'vault'), undefined, { gcIntervalMs: 100 });
}, 120_000);

afterAll(async () => {
  await vault?.close();
  await ws?.close();
});

describe('backup of a vault that keeps changing', () => {
  it('holds each file wholly, in one committed version, or not at all', async () => {
    const versions = new Map<string, Buffer[]>();
    const put = async (p: string, size: number): Promise<void> => {
      versions.set(p, [...(versions.get(p) ?? []), await ws.put(vault, p, size)]);
    };
    for (let i = 0; i < 6; i++) await put(`/f${i}.bin`, 60_000 + i);
    const target = path.join(ws.dir, 'target');
    const child = spawnCli(['backup', 'create', '--to', target, '--data-dir', vault.dataDir, '--concurrency', '1', '--rate-limit', '96KiB', '--json']);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    // small chunks reach a directory target in packs, written about once a second (copy-chunks.ts)
    while ((await chunksOnDisk(target)) < 1) await new Promise((r) => setTimeout(r, 20));
    // while it copies: overwrite every file (their old blobs are released and purged by GC), remove one, add some
    for (let i = 0; i < 6; i++) await put(`/f${i}.bin`, 70_000 + i);
    await vault.client.remove('/f5.bin');
    for (let i = 0; i < 3; i++) await put(`/new${i}.bin`, 30_000 + i);
    expect(await exited, stderr).toBe(0);
    const report = JSON.parse(stdout) as { snapshot: string; files: number };

    expect((await runCliProcess(['backup', 'verify', target])).code).toBe(0);
    // one export: none left over from one written during the copy for a selection that changed since
    expect(await readdir(path.join(target, 'metadata'))).toHaveLength(1);
    const dest = path.join(ws.dir, 'restored');
    const restoredRun = await runCliProcess(['backup', 'restore', target, '--to', dest, '--json']);
    expect(restoredRun.code, restoredRun.stderr).toBe(0);
    const restored = await serveVault(dest);
    try {
      const listed = (await restored.client.list('/')).items.map((e: { name: string }) => `/${e.name}`);
      expect(listed.length).toBe(report.files);
      for (const p of listed) {
        const got = await ws.get(restored, p);
        const known = versions.get(p) ?? [];
        expect(known.some((v) => v.equals(got)), `${p}: ${got.length} bytes match no committed version`).toBe(true);
      }
    } finally {
      await restored.close();
    }
  }, 240_000);
});
