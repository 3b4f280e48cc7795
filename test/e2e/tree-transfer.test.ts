// `coffer put -r` / `get -r` with many files in flight, killed for real: the CLI itself (SIGKILL) and the
// storage service (SIGKILL, restarted on the same data directory and port). Every file the vault shows is whole
// and exactly the local bytes; the same command run again finishes the tree, skipping what is there; a changed
// file is sent again without --force; a name the vault refuses is reported and the rest goes on.
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliProcess, spawnCli, startServerProcess } from '../../bench/cli-process.js';
import { KeyFileDataKeys } from '../../src/client/data-keys.js';
import { fetchSmallFile } from '../../src/client/small-file.js';
import { VaultClient } from '../../src/client/vault-client.js';

const FILES = 240;
let work: string;
let tree: string;
let dataDir: string;
let keyFile: string;
let server: Awaited<ReturnType<typeof startServerProcess>> | undefined;
const env: Record<string, string> = {};
const local = new Map<string, Buffer>(); // relative path → bytes

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'coffer-tree-'));
  tree = path.join(work, 'tree');
  dataDir = path.join(work, 'data');
  keyFile = path.join(work, 'k.key');
  for (let i = 0; i < FILES; i++) {
    const rel = `d${i % 6}/f${String(i).padStart(4, '0')}.bin`;
    const bytes = randomBytes(i % 40 === 0 ? 0 : 16 * 1024 + (i % 7));
    await mkdir(path.dirname(path.join(tree, rel)), { recursive: true });
    await writeFile(path.join(tree, rel), bytes);
    local.set(rel, bytes);
  }
  const big = randomBytes(8 * 1024 * 1024 + 11); // one file over a chunk: the chunked path, in the same run
  await writeFile(path.join(tree, 'big.bin'), big);
  local.set('big.bin', big);
  server = await startServerProcess(['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--default-root-role', 'write']);
  Object.assign(env, { COFFER_SERVER: server.url, COFFER_KEY_FILE: keyFile, COFFER_STATE_DIR: path.join(work, 'state') });
  expect((await runCliProcess(['keygen', '--out', keyFile])).code).toBe(0);
  env.COFFER_TOKEN = (await runCliProcess(['token', '--data-dir', dataDir, '--user', 'alice'])).stdout.trim();
}, 120_000);

afterAll(async () => {
  await server?.stop();
  await rm(work, { recursive: true, force: true });
});

const run = (args: string[]) => runCliProcess(args, env);

/** Every file under `dir` in the vault, by path relative to it (listing as the CLI's client does). */
async function vaultFiles(dir: string): Promise<Map<string, number>> {
  const client = new VaultClient({ server: env.COFFER_SERVER as string, token: env.COFFER_TOKEN });
  const out = new Map<string, number>();
  try {
    const walk = async (p: string): Promise<void> => {
      for await (const n of client.listAll(p)) {
        if (n.type === 'dir') await walk(n.path);
        else out.set(n.path.slice(dir.length + 1), n.size);
      }
    };
    await walk(dir).catch((e: { code?: string }) => {
      if (e.code !== 'NOT_FOUND') throw e;
    });
  } finally {
    client.close();
  }
  return out;
}

/** Checks that every file the vault shows under `dir` is whole: its bytes, authenticated, are the local file's. */
async function expectEveryVaultFileWhole(dir: string): Promise<number> {
  const files = await vaultFiles(dir);
  const client = new VaultClient({ server: env.COFFER_SERVER as string, token: env.COFFER_TOKEN });
  const keys = await KeyFileDataKeys.open(keyFile);
  try {
    for (const [rel, size] of files) {
      const want = local.get(rel);
      expect(want, rel).toBeDefined();
      expect(size, rel).toBe(want!.length);
      if (size > 8 * 1024 * 1024) continue; // the chunked path's own tests cover it; its size is checked above
      const { plaintext } = await fetchSmallFile(client, `${dir}/${rel}`, keys);
      expect(plaintext?.equals(want!), rel).toBe(true);
    }
  } finally {
    client.close();
  }
  return files.size;
}

/** Starts `put -r` and SIGKILLs it (or the service) once at least `after` files are committed. */
async function killDuring(dir: string, after: number, victim: 'client' | 'server'): Promise<void> {
  // batches of 8 files (not 256): the tree is 30 batches, so a kill lands between commits
  const child = spawnCli(['put', '-r', tree, dir, '--concurrency', '16', '--batch-files', '8'], env);
  const exited = new Promise<number | null>((r) => child.once('close', r));
  for (let i = 0; i < 1200; i++) {
    if ((await vaultFiles(dir)).size >= after) break;
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  expect(child.exitCode, 'the put finished before it could be killed').toBeNull();
  if (victim === 'client') {
    child.kill('SIGKILL');
    await exited;
    return;
  }
  const port = new URL(server!.url).port;
  server!.child.kill('SIGKILL');
  await new Promise((r) => server!.child.once('close', r));
  server = await startServerProcess(['serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`, '--default-root-role', 'write']);
  await exited; // it may finish through its retries or stop with an error; either way the re-run below finishes
}

describe('put -r / get -r with many files in flight', () => {
  it('put -r SIGKILLed mid-tree: each file committed whole or absent; the same command finishes it, skipping what is there', async () => {
    await killDuring('/k', 30, 'client');
    const present = await expectEveryVaultFileWhole('/k');
    expect(present).toBeGreaterThanOrEqual(30);
    expect(present).toBeLessThan(local.size);
    const again = await run(['put', '-r', tree, '/k', '--json']);
    expect(again.code, again.stderr).toBe(0);
    const r = JSON.parse(again.stdout) as { files: number; updated: number; skipped: number; failed: unknown[] };
    expect(r.failed).toEqual([]);
    expect(r.updated).toBe(0);
    expect(r.files + r.skipped).toBe(local.size);
    expect(r.skipped).toBeGreaterThanOrEqual(present);
    expect(await expectEveryVaultFileWhole('/k')).toBe(local.size);

    // get -r of the whole tree, then a re-run that skips everything
    const mirror = path.join(work, 'mirror');
    const down = await run(['get', '-r', '/k', mirror, '--json']);
    expect(down.code, down.stderr).toBe(0);
    expect(JSON.parse(down.stdout)).toMatchObject({ files: local.size, failed: [] });
    for (const [rel, bytes] of local) expect((await readFile(path.join(mirror, rel))).equals(bytes), rel).toBe(true);
    const down2 = JSON.parse((await run(['get', '-r', '/k', mirror, '--json'])).stdout) as { files: number; updated: number; skipped: number };
    expect(down2).toMatchObject({ files: 0, updated: 0, skipped: local.size });

    // a file changed locally is sent again (without --force), and only it
    const rel = 'd1/f0001.bin';
    await appendFile(path.join(tree, rel), 'more');
    local.set(rel, await readFile(path.join(tree, rel)));
    const changed = JSON.parse((await run(['put', '-r', tree, '/k', '--json'])).stdout) as { files: number; updated: number; skipped: number };
    expect(changed).toMatchObject({ files: 0, updated: 1, skipped: local.size - 1 });
    await expectEveryVaultFileWhole('/k');
    // get -r brings the changed vault file down again, and only it
    const down3 = JSON.parse((await run(['get', '-r', '/k', mirror, '--json'])).stdout) as { files: number; updated: number; skipped: number };
    expect(down3).toMatchObject({ files: 0, updated: 1, skipped: local.size - 1 });
    expect((await readFile(path.join(mirror, rel))).equals(local.get(rel)!)).toBe(true);

    // touched but unchanged: by size and time it differs; --checksum compares the bytes and skips it
    const touched = 'd2/f0002.bin';
    const later = new Date(Date.now() + 5_000);
    await utimes(path.join(tree, touched), later, later);
    await utimes(path.join(mirror, touched), later, later);
    const bySum = JSON.parse((await run(['put', '-r', tree, '/k', '--checksum', '--json'])).stdout) as { updated: number; skipped: number };
    expect(bySum).toMatchObject({ updated: 0, skipped: local.size });
    const byTime = JSON.parse((await run(['put', '-r', tree, '/k', '--json'])).stdout) as { updated: number; skipped: number };
    expect(byTime).toMatchObject({ updated: 1, skipped: local.size - 1 });
    const downSum = JSON.parse((await run(['get', '-r', '/k', mirror, '--checksum', '--json'])).stdout) as { updated: number; skipped: number };
    expect(downSum).toMatchObject({ updated: 0, skipped: local.size });
    // a local edit of the same size is fetched again by --checksum
    const edited = Buffer.from(local.get(rel)!);
    edited[0] = (edited[0] ?? 0) ^ 0xff;
    await writeFile(path.join(mirror, rel), edited);
    const fixed = JSON.parse((await run(['get', '-r', '/k', mirror, '--checksum', '--json'])).stdout) as { updated: number };
    expect(fixed.updated).toBe(1);
    expect((await readFile(path.join(mirror, rel))).equals(local.get(rel)!)).toBe(true);
  }, 300_000);

  it('coffer serve SIGKILLed with many small files in flight: every file shown is whole, and put -r run again finishes', async () => {
    await killDuring('/s', 30, 'server');
    await expectEveryVaultFileWhole('/s');
    const fsck = await run(['fsck', '--data-dir', dataDir, '--json']);
    expect(fsck.code, fsck.stderr).toBe(0);
    expect(JSON.parse(fsck.stdout)).toMatchObject({ problems: [] });
    const again = await run(['put', '-r', tree, '/s', '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(await expectEveryVaultFileWhole('/s')).toBe(local.size);
    const audit = await run(['audit', 'verify', '--data-dir', dataDir, '--json']);
    expect(audit.code, audit.stderr).toBe(0);
  }, 300_000);

  it('a name that cannot be a vault path is reported and counted, the exit status says so, and the rest of the tree is copied', async () => {
    const odd = path.join(work, 'odd');
    await mkdir(odd, { recursive: true });
    await writeFile(path.join(odd, 'fine.txt'), 'fine');
    await writeFile(path.join(odd, 'new\nline.txt'), 'x');
    await writeFile(path.join(odd, 'tab\there.txt'), 'y');
    const r = await run(['put', '-r', odd, '/odd', '--json']);
    expect(r.code).not.toBe(0);
    const summary = JSON.parse(r.stdout.split('\n')[0] as string) as { files: number; failed: Array<{ path: string; reason: string }> };
    expect(summary.files).toBe(1);
    expect(summary.failed.map((f) => path.basename(f.path)).sort()).toEqual(['new\nline.txt', 'tab\there.txt']);
    expect(summary.failed[0]!.reason).toMatch(/control character/);
    expect([...(await vaultFiles('/odd')).keys()]).toEqual(['fine.txt']);
  }, 120_000);
});
