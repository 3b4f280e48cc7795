// `coffer put -r` / `get -r` with many files in flight, killed for real: the CLI itself (SIGKILL) and the
// storage service (SIGKILL, restarted on the same data directory and port). Every file the vault shows is whole
// and exactly the local bytes; the same command run again finishes the tree, skipping what is there; a changed
// file is sent again without --force; a name the vault refuses is reported and the rest goes on. get -r (small
// files in batch reads) killed mid-tree leaves only whole files under their names, and a batch answer with one
// forged chunk leaves that file absent.
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, open, readFile, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runCliProcess, spawnCli, startServerProcess } from '../../bench/cli-process.js';
import { KeyFileDataKeys } from '../../src/client/data-keys.js';
import { fetchSmallFile } from '../../src/client/small-file.js';
import { downloadTree } from '../../src/client/tree-transfer.js';
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

/**
 * Starts `put -r` and SIGKILLs it (or the service) once at least `after` files are committed. 'server-gone' keeps
 * the service down until the put has given up, and starts it again after. Returns the put's stderr.
 */
async function killDuring(dir: string, after: number, victim: 'client' | 'server' | 'server-gone'): Promise<string> {
  // batches of 8 files (not 256): the tree is 30 batches, so a kill lands between commits
  const child = spawnCli(['put', '-r', tree, dir, '--concurrency', '16', '--batch-files', '8'], env);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
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
    return stderr;
  }
  const port = new URL(server!.url).port;
  server!.child.kill('SIGKILL');
  await new Promise((r) => server!.child.once('close', r));
  if (victim === 'server-gone') expect(await exited).not.toBe(0);
  server = await startServerProcess(['serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`, '--default-root-role', 'write']);
  await exited; // it may finish through its retries or stop with an error; either way the re-run below finishes
  return stderr;
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

  it('coffer serve gone for good mid-tree: put -r stops with an error that says how far it got and how to continue', async () => {
    const stderr = await killDuring('/g', 30, 'server-gone');
    expect(stderr).toMatch(/\[UNAVAILABLE\]/);
    expect(stderr).toMatch(/the copy stopped after \d+ file\(s\), every file is either complete or absent\. To continue, run the same command again \(files already there are skipped\): coffer put -r /);
    await expectEveryVaultFileWhole('/g');
    const again = await run(['put', '-r', tree, '/g', '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(await expectEveryVaultFileWhole('/g')).toBe(local.size);
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

  it('get -r SIGKILLed mid-tree: every file under its name is whole; the same command finishes, skipping what is there', async () => {
    const vault = await vaultFiles('/k');
    expect(vault.size).toBe(local.size); // the first test put the whole tree there
    const mirror = path.join(work, 'killed-get');
    const child = spawnCli(['get', '-r', '/k', mirror, '--concurrency', '8'], env);
    const exited = new Promise<number | null>((r) => child.once('close', r));
    for (let i = 0; i < 2000 && child.exitCode === null; i++) {
      if ((await localFiles(mirror)).filter((rel) => !path.basename(rel).startsWith('.coffer-partial-')).length >= 20) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(child.exitCode, 'get -r finished before it could be killed').toBeNull();
    child.kill('SIGKILL');
    await exited;
    const present = (await localFiles(mirror)).filter((rel) => !path.basename(rel).startsWith('.coffer-partial-'));
    expect(present.length).toBeGreaterThanOrEqual(20);
    expect(present.length).toBeLessThan(local.size);
    for (const rel of present) expect((await readFile(path.join(mirror, rel))).equals(local.get(rel)!), rel).toBe(true);
    const again = await run(['get', '-r', '/k', mirror, '--json']);
    expect(again.code, again.stderr).toBe(0);
    const r = JSON.parse(again.stdout) as { files: number; updated: number; skipped: number };
    expect(r.files + r.updated + r.skipped).toBe(local.size);
    expect(r.skipped).toBeGreaterThanOrEqual(present.length - 1); // each small file took its time before its name (big.bin: after)
    const after = await localFiles(mirror);
    expect(after.filter((rel) => path.basename(rel).startsWith('.coffer-partial-'))).toEqual([]); // swept
    expect(after.length).toBe(local.size);
    for (const [rel, bytes] of local) expect((await readFile(path.join(mirror, rel))).equals(bytes), rel).toBe(true);
  }, 300_000);

  it('get -r fsyncs no small file by default (as restic restore) and every one with --fsync; both leave whole files with the vault times', async () => {
    // a pass-through spy on FileHandle.sync (the real fsync runs): counts what downloadTree asks the disk for
    const probe = await open(keyFile, 'r');
    const proto = Object.getPrototypeOf(probe) as { sync(): Promise<void> };
    await probe.close();
    const syncs = vi.spyOn(proto, 'sync');
    const want = [...local.keys()].filter((rel) => rel.startsWith('d1/'));
    const client = new VaultClient({ server: env.COFFER_SERVER as string, token: env.COFFER_TOKEN });
    const keys = await KeyFileDataKeys.open(keyFile);
    try {
      for (const fsync of [false, true]) {
        syncs.mockClear();
        const mirror = path.join(work, `fsync-${String(fsync)}`);
        const r = await downloadTree(client, '/k/d1', mirror, { keys, fsync });
        expect(r).toMatchObject({ files: want.length, failed: [] });
        // each file, plus one directory fsync per batch with --fsync; none at all without
        if (fsync) expect(syncs.mock.calls.length).toBeGreaterThanOrEqual(want.length);
        else expect(syncs.mock.calls.length).toBe(0);
        const names = await localFiles(mirror);
        expect(names.sort()).toEqual(want.map((rel) => rel.slice(3)).sort()); // nothing partial left
        for (const rel of want) expect((await readFile(path.join(mirror, rel.slice(3)))).equals(local.get(rel)!), rel).toBe(true);
        // the vault's modification time is set before the rename: what a re-run compares
        const node = await client.stat(`/k/${want[0]!}`);
        expect(Math.abs((await stat(path.join(mirror, want[0]!.slice(3)))).mtimeMs - Date.parse(node.modifiedAt))).toBeLessThan(1);
      }
    } finally {
      syncs.mockRestore();
      client.close();
    }
  }, 120_000);

  it('a batch answer with one forged chunk: get -r stops, that file is absent, nothing partial is left', async () => {
    // a proxy in front of the service that flips one ciphertext byte of the first file of each batch answer
    const proxy = await batchProxy((body) => {
      const j = body.readUInt32BE(0);
      const first = JSON.parse(body.subarray(4, 4 + j).toString('utf8')) as { sealedLength?: number };
      if ((first.sealedLength ?? 0) > 64) body[4 + j + 50] = (body[4 + j + 50] ?? 0) ^ 1; // inside the ciphertext
      return body;
    });
    try {
      const mirror = path.join(work, 'forged');
      const r = await runCliProcess(['get', '-r', '/k/d3', mirror, '--json'], { ...env, COFFER_SERVER: proxyUrl(proxy) });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/CHUNK_AUTH_FAILED|authenticat/i);
      const names = await localFiles(mirror);
      expect(names.filter((rel) => path.basename(rel).startsWith('.coffer-partial-'))).toEqual([]);
      const firstSmall = [...local.keys()].filter((rel) => rel.startsWith('d3/') && local.get(rel)!.length > 0).sort()[0]!;
      expect(names).not.toContain(firstSmall.slice(3));
      for (const rel of names) expect((await readFile(path.join(mirror, rel))).equals(local.get(`d3/${rel}`)!), rel).toBe(true);
    } finally {
      await new Promise<void>((r) => proxy.close(() => r()));
    }
  }, 120_000);

  it('a service without the batch read (404 for its route): get -r fetches each file on its own and finishes', async () => {
    const proxy = await batchProxy(() => null);
    try {
      const mirror = path.join(work, 'old-service');
      const r = await runCliProcess(['get', '-r', '/k/d4', mirror, '--json'], { ...env, COFFER_SERVER: proxyUrl(proxy) });
      expect(r.code, r.stderr).toBe(0);
      const want = [...local.keys()].filter((rel) => rel.startsWith('d4/'));
      expect(JSON.parse(r.stdout)).toMatchObject({ files: want.length, failed: [] });
      for (const rel of want) expect((await readFile(path.join(mirror, rel.slice(3)))).equals(local.get(rel)!), rel).toBe(true);
    } finally {
      await new Promise<void>((r) => proxy.close(() => r()));
    }
  }, 120_000);
});

/**
 * A proxy in front of the service that passes every request through, except that each batch read's answer is
 * handed to `edit` whole: its result is sent instead, or null answers 404 as a service without the route would.
 */
async function batchProxy(edit: (body: Buffer) => Buffer | null): Promise<Server> {
  const target = new URL(server!.url);
  const proxy = createServer((req, res) => {
    const up = request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (upRes) => {
      if (!req.url?.startsWith('/v1/fs/files/read') || upRes.statusCode !== 200) {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
        return;
      }
      const parts: Buffer[] = [];
      upRes.on('data', (b: Buffer) => parts.push(b));
      upRes.on('end', () => {
        const body = edit(Buffer.concat(parts));
        if (body === null) {
          res.writeHead(404, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.url}` } }));
          return;
        }
        res.writeHead(200, { 'content-type': String(upRes.headers['content-type']) });
        res.end(body);
      });
    });
    req.pipe(up);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  return proxy;
}

function proxyUrl(proxy: Server): string {
  return `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
}

/** Every regular file under `dir`, by path relative to it (none when it does not exist). */
async function localFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}
