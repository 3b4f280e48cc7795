// End to end through the real `coffer` command: a `coffer serve` process on loopback, `coffer put/get/ls/stat/
// mkdir/mv/rm`, exit codes and one-line errors, tamper detection that leaves nothing at the destination,
// `coffer keys export-dek` opened by the independent reader written from DESIGN.md alone, and transfers through
// a real TLS terminator.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile, open } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliProcess, spawnCli, startServerProcess } from '../../bench/cli-process.js';
import { KeyFileDataKeys } from '../../src/client/data-keys.js';
import { uploadFile } from '../../src/client/upload.js';
import { UploadJournal } from '../../src/client/upload-journal.js';
import { VaultClient } from '../../src/client/vault-client.js';
import type { CofferError } from '../../src/errors.js';

const MiB = 1024 * 1024;
let work: string;
let dataDir: string;
let server: Awaited<ReturnType<typeof startServerProcess>>;
let env: NodeJS.ProcessEnv;
let stateDir: string;

async function coffer(args: string[], extra: NodeJS.ProcessEnv = {}) {
  return runCliProcess(args, { ...env, ...extra });
}

async function ok(args: string[], extra: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await coffer(args, extra);
  if (r.code !== 0) throw new Error(`coffer ${args.join(' ')} → ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** Blob ids with at least one chunk file in the service's chunk store. */
async function blobsWithChunks(): Promise<string[]> {
  const found: string[] = [];
  const root = path.join(dataDir, 'chunks');
  for (const a of await readdir(root).catch(() => [] as string[])) {
    for (const b of await readdir(path.join(root, a)).catch(() => [] as string[])) {
      for (const blob of await readdir(path.join(root, a, b)).catch(() => [] as string[])) {
        if ((await readdir(path.join(root, a, b, blob))).some((n) => !n.startsWith('.'))) found.push(blob);
      }
    }
  }
  return found;
}

function chunkDir(blobId: string): string {
  return path.join(dataDir, 'chunks', blobId.slice(0, 2), blobId.slice(2, 4), blobId);
}

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'coffer-e2e-'));
  dataDir = path.join(work, 'data');
  server = await startServerProcess(['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--default-root-role', 'write']);
  const keyFile = path.join(work, 'alice.key');
  stateDir = path.join(work, 'state');
  env = { COFFER_SERVER: server.url, COFFER_KEY_FILE: keyFile, COFFER_STATE_DIR: stateDir };
  await ok(['keygen', '--out', keyFile]);
  env.COFFER_TOKEN = (await ok(['token', '--data-dir', dataDir, '--user', 'alice'])).trim();
}, 180_000);

afterAll(async () => {
  await server?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('coffer CLI against coffer serve', () => {
  it('puts, lists, stats, gets byte-identical files of 0 B, 1 B and 3 chunks', async () => {
    await ok(['mkdir', '/docs']);
    for (const size of [0, 1, 2 * 8 * MiB + 12345]) {
      const src = path.join(work, `src-${size}.bin`);
      const bytes = randomBytes(size);
      await writeFile(src, bytes);
      const put = JSON.parse(await ok(['put', src, `/docs/f-${size}.bin`, '--json'])) as { path: string; chunkCount: number; blobId: string };
      expect(put.path).toBe(`/docs/f-${size}.bin`);
      expect(put.chunkCount).toBe(size === 0 ? 1 : Math.ceil(size / (8 * MiB)));
      const st = JSON.parse(await ok(['stat', `/docs/f-${size}.bin`, '--json'])) as { blobId: string; chunkCount: number; size: number };
      expect(st).toMatchObject({ blobId: put.blobId, chunkCount: put.chunkCount, size });
      const out = path.join(work, `out-${size}.bin`);
      await ok(['get', `/docs/f-${size}.bin`, out]);
      expect((await readFile(out)).equals(bytes)).toBe(true);
      // on disk: full chunks are exactly 8 MiB + 64 bytes
      const names = (await readdir(chunkDir(put.blobId))).filter((n) => !n.startsWith('.')).sort();
      expect(names.length).toBe(put.chunkCount);
    }
    const ls = JSON.parse(await ok(['ls', '/docs', '--json'])) as Array<{ name: string }>;
    expect(ls.map((e) => e.name)).toEqual(['f-0.bin', 'f-1.bin', `f-${2 * 8 * MiB + 12345}.bin`].sort());
  });

  it('puts into a directory by name, moves, renames and removes', async () => {
    const src = path.join(work, 'note.txt');
    await writeFile(src, 'hello vault\n');
    await ok(['mkdir', '-p', '/a/b']);
    await ok(['put', src, '/a/b/']);
    await ok(['mv', '/a/b/note.txt', '/a/renamed.txt']);
    const names = (JSON.parse(await ok(['ls', '/a', '--json'])) as Array<{ name: string }>).map((e) => e.name);
    expect(names).toEqual(['b', 'renamed.txt']);
    // a trailing / (shell completion adds one after a directory) names the directory; `mv X DIR/` moves into it
    await ok(['mkdir', '/a/c/']);
    await ok(['mv', '/a/renamed.txt', '/a/c/']);
    expect((JSON.parse(await ok(['ls', '/a/c/', '--json'])) as Array<{ name: string }>).map((e) => e.name)).toEqual(['renamed.txt']);
    expect(JSON.parse(await ok(['stat', '/a/c/', '--json']))).toMatchObject({ type: 'dir', name: 'c' });
    await ok(['mv', '/a/c/renamed.txt', '/a/renamed.txt']);
    await ok(['rm', '/a/c/']);
    const rmDir = await coffer(['rm', '/a']);
    expect(rmDir.code).not.toBe(0);
    expect(rmDir.stderr).toMatch(/DIRECTORY_NOT_EMPTY/);
    await ok(['rm', '-r', '/a']);
    const gone = await coffer(['stat', '/a']);
    expect(gone.code).toBe(3);
    expect(gone.stderr.trim().split('\n')).toHaveLength(1);
    expect(gone.stderr).toMatch(/^coffer: .*\[NOT_FOUND\]/);
  });

  it('refuses to overwrite without --force, on both sides', async () => {
    const src = path.join(work, 'twice.txt');
    await writeFile(src, 'one');
    await ok(['put', src, '/twice.txt']);
    const again = await coffer(['put', src, '/twice.txt']);
    expect(again.code).toBe(4);
    expect(again.stderr).toMatch(/ALREADY_EXISTS/);
    await writeFile(src, 'two');
    await ok(['put', '--force', src, '/twice.txt']);
    const out = path.join(work, 'twice.out');
    await writeFile(out, 'precious');
    const get = await coffer(['get', '/twice.txt', out]);
    expect(get.code).toBe(4);
    expect(await readFile(out, 'utf8')).toBe('precious');
    await ok(['get', '--force', '/twice.txt', out]);
    expect(await readFile(out, 'utf8')).toBe('two');
  });

  it('a tampered chunk fails the download and leaves nothing at the destination', async () => {
    const src = path.join(work, 'tamper.bin');
    await writeFile(src, randomBytes(8 * MiB + 100));
    const put = JSON.parse(await ok(['put', src, '/tamper.bin', '--json'])) as { blobId: string };
    const chunk = path.join(chunkDir(put.blobId), '00000001');
    const fh = await open(chunk, 'r+');
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, 60);
    b[0] = (b[0] as number) ^ 0x01;
    await fh.write(b, 0, 1, 60);
    await fh.close();
    const out = path.join(work, 'tamper.out');
    const r = await coffer(['get', '/tamper.bin', out]);
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/CHUNK_AUTH_FAILED/);
    expect(existsSync(out)).toBe(false);
    expect((await readdir(work)).filter((n) => n.includes('coffer-partial'))).toEqual([]);
    const check = await coffer(['get', '--verify-only', '/tamper.bin']);
    expect(check.code).toBe(6);
    expect(check.stderr).toMatch(/CHUNK_AUTH_FAILED/);
  });

  it('a different key file cannot open the file', async () => {
    const src = path.join(work, 'secret.txt');
    await writeFile(src, 'top secret');
    await ok(['put', src, '/secret.txt']);
    const otherKey = path.join(work, 'mallory.key');
    await ok(['keygen', '--out', otherKey]);
    const out = path.join(work, 'secret.out');
    const r = await coffer(['get', '/secret.txt', out], { COFFER_KEY_FILE: otherKey });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/KEY_INVALID/);
    expect(existsSync(out)).toBe(false);
  });

  it('bad tokens and missing tokens are refused with one-line errors', async () => {
    const r1 = await coffer(['ls', '/'], { COFFER_TOKEN: 'not-a-jwt' });
    expect(r1.code).toBe(5);
    expect(r1.stderr).toMatch(/UNAUTHENTICATED/);
    const r2 = await coffer(['ls', '/'], { COFFER_TOKEN: '' });
    expect(r2.code).toBe(5);
  });

  it('usage errors are one line with a code and exit 2; an unknown command fails even beside --help; token refuses a data dir that does not exist; serve says a port is in use', async () => {
    for (const args of [['put'], ['bogus'], ['ls', '--nope'], ['token'], ['frobnicate', '--help'], ['net', 'ls'], ['help', 'bogus']]) {
      const r = await coffer(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(/^coffer: .+ \(see --help\) \[INVALID_ARGUMENT\]\n$/);
    }
    // a token for a data directory that does not exist (a typo) would be signed by a key made just for it
    const typo = await coffer(['token', '--data-dir', path.join(work, 'no-such-dir'), '--user', 'alice']);
    expect([typo.code, typo.stderr]).toEqual([3, expect.stringMatching(/^coffer: no data directory .*\[NOT_FOUND\]\n$/)]);
    expect(await readdir(work)).not.toContain('no-such-dir');
    // so is a data directory that cannot be one
    await writeFile(path.join(work, 'a-file'), '');
    const notDir = await coffer(['serve', '--data-dir', path.join(work, 'a-file'), '--listen', '127.0.0.1:0']);
    expect([notDir.code, notDir.stderr]).toEqual([2, expect.stringMatching(/^coffer: data directory .*a-file is not usable: a file stands where a directory is needed .*\[INVALID_ARGUMENT\]\n$/)]);
    // a port in use is said plainly, not as an internal error
    const busy = await coffer(['serve', '--data-dir', path.join(work, 'busy'), '--listen', `127.0.0.1:${new URL(server.url).port}`]);
    expect([busy.code, busy.stderr]).toEqual([7, expect.stringMatching(/^coffer: cannot listen on 127\.0\.0\.1:\d+: the address is in use .*\[UNAVAILABLE\]\n$/)]);
    const help = await coffer(['ls', '--help']);
    expect([help.code, help.stdout]).toEqual([0, expect.stringContaining('Usage: coffer ls')]);
  });

  it('export-dek lets a reader written from DESIGN.md alone open the chunks', async () => {
    const reader = path.resolve('test/independent-reader/open_blob.py');
    expect(existsSync(reader)).toBe(true);
    const src = path.join(work, 'indep.bin');
    const bytes = randomBytes(2 * 8 * MiB + 7);
    await writeFile(src, bytes);
    const put = JSON.parse(await ok(['put', src, '/indep.bin', '--json'])) as { blobId: string };
    const { dek } = JSON.parse(await ok(['keys', 'export-dek', '/indep.bin', '--json'])) as { dek: string };
    expect(dek).toMatch(/^[0-9a-f]{64}$/);
    const out = path.join(work, 'indep.out');
    const r = spawnSync('python3', [reader, chunkDir(put.blobId), dek, put.blobId, '--out', out], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect((await readFile(out)).equals(bytes)).toBe(true);
  });

  it('migrate status reports an up-to-date schema', async () => {
    const status = JSON.parse(await ok(['migrate', 'status', '--data-dir', dataDir, '--json'])) as { current: number; latest: number; pending: unknown[] };
    expect(status.current).toBe(status.latest);
    expect(status.pending).toEqual([]);
  });

  it('audit verify passes on the real log, then detects an edited entry', async () => {
    const good = JSON.parse(await ok(['audit', 'verify', '--data-dir', dataDir, '--json'])) as { ok: boolean; entries: number; head: { seq: number; hash: string } };
    expect(good.ok).toBe(true);
    expect(good.entries).toBeGreaterThan(5);
    await ok(['audit', 'verify', '--data-dir', dataDir, '--expect-head', `${good.head.seq}:${good.head.hash}`]);
    const wrongHead = await coffer(['audit', 'verify', '--data-dir', dataDir, '--expect-head', `${good.head.seq}:${'0'.repeat(64)}`]);
    expect(wrongHead.code).toBe(6);
    // an operator "fixes" history: the chain shows it
    const db = new DatabaseSync(path.join(dataDir, 'metadata.sqlite'));
    const changed = db.prepare("UPDATE audit SET actor = 'mallory' WHERE seq = 2").run().changes;
    db.close();
    expect(changed).toBe(1);
    const bad = await coffer(['audit', 'verify', '--data-dir', dataDir]);
    expect(bad.code).toBe(6);
    expect(bad.stderr).toMatch(/AUDIT_CHAIN_BROKEN/);
    expect(bad.stderr).toMatch(/entry 2/);
  });

  it('fsck checks a live vault: clean, then finds a chunk file altered on disk (--read-data), then reattaches a detached directory', async () => {
    const dir = path.join(work, 'fsck-data');
    const srv = await startServerProcess(['serve', '--data-dir', dir, '--listen', '127.0.0.1:0', '--default-root-role', 'write']);
    try {
      const e = { COFFER_SERVER: srv.url, COFFER_TOKEN: (await ok(['token', '--data-dir', dir, '--user', 'alice'])).trim() };
      const src = path.join(work, 'fsck.bin');
      await writeFile(src, randomBytes(8 * MiB + 7));
      await ok(['mkdir', '/lab/run', '--parents'], e);
      const put = JSON.parse(await ok(['put', src, '/lab/run/fsck.bin', '--json'], e)) as { blobId: string };
      const clean = JSON.parse(await ok(['fsck', '--data-dir', dir, '--read-data', '--json'])) as { problems: unknown[]; files: number; chunksChecked: number; bytesRead: number };
      expect(clean).toMatchObject({ problems: [], files: 1, chunksChecked: 2, bytesRead: 8 * MiB + 7 + 2 * 64 });

      const chunk = path.join(dir, 'chunks', put.blobId.slice(0, 2), put.blobId.slice(2, 4), put.blobId, '00000000');
      const fh = await open(chunk, 'r+');
      const byte = Buffer.alloc(1);
      await fh.read(byte, 0, 1, 4096);
      byte[0] = (byte[0] as number) ^ 0x5a; // flipped, so always a change (writing a fixed value failed 1 run in 256)
      await fh.write(byte, 0, 1, 4096);
      await fh.close();
      await ok(['fsck', '--data-dir', dir]); // sizes only: the size is right
      const found = await coffer(['fsck', '--data-dir', dir, '--read-data', '--json']);
      expect(found.code).toBe(6);
      expect(found.stderr.trim().split('\n')).toHaveLength(1);
      // with --json the failure is JSON too (the script contract): one object on stderr
      expect(JSON.parse(found.stderr)).toEqual({ error: { code: 'INTEGRITY', message: expect.stringMatching(/fsck found 1 problem/) } });
      const report = JSON.parse(found.stdout) as { errors: number; problems: Array<{ kind: string; blobId: string; index: number }> };
      expect(report.problems).toMatchObject([{ kind: 'chunk-damaged', blobId: put.blobId, index: 0 }]);
      await rm(chunk); // a backup would restore it; here the file goes
      await ok(['rm', '/lab/run/fsck.bin'], e);

      // the documented race: a directory removed while a child was being created under it
      await ok(['mkdir', '/lab/run/keep'], e);
      const db = new DatabaseSync(path.join(dir, 'metadata.sqlite'));
      const lab = db.prepare("SELECT id FROM nodes WHERE name = 'lab'").get() as { id: string };
      expect(db.prepare('DELETE FROM nodes WHERE id = ?').run(lab.id).changes).toBe(1);
      db.close();
      const detached = await coffer(['fsck', '--data-dir', dir]);
      expect(detached.code).toBe(6);
      expect(detached.stdout).toMatch(/detached .*"run"/);
      const repaired = await ok(['fsck', '--data-dir', dir, '--repair']);
      expect(repaired).toContain(`[repaired: reattached under /lost+found/missing~${lab.id}]`);
      const ls = JSON.parse(await ok(['ls', `/lost+found/missing~${lab.id}`, '--json'], e)) as Array<{ name: string }>;
      expect(ls.map((n) => n.name)).toEqual(['run']);
      expect((JSON.parse(await ok(['ls', `/lost+found/missing~${lab.id}/run`, '--json'], e)) as Array<{ name: string }>).map((n) => n.name)).toEqual(['keep']);
      expect(await ok(['fsck', '--data-dir', dir])).toMatch(/fsck: no errors/);
      // a wrong --data-dir is named, and nothing is created there
      const nowhere = path.join(work, 'no-vault-here');
      for (const cmd of [['fsck'], ['audit', 'verify']]) {
        const r = await coffer([...cmd, '--data-dir', nowhere]);
        expect(r.code).toBe(3);
        expect(r.stderr).toMatch(/no vault in .*no-vault-here.*\[NOT_FOUND\]/);
      }
      expect(existsSync(nowhere)).toBe(false);
    } finally {
      await srv.stop();
    }
  });

  it('Ctrl-C or a kill during get removes the partial file and exits 128 + the signal', async () => {
    const src = path.join(work, 'sig.bin');
    await writeFile(src, randomBytes(96 * MiB));
    await ok(['put', src, '/sig.bin']);
    for (const [signal, status] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
      const dir = path.join(work, `sig-${signal}`);
      await mkdir(dir);
      const child = spawnCli(['get', '/sig.bin', path.join(dir, 'out.bin'), '--concurrency', '1'], env);
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      // wait until the download is writing its temporary file, then interrupt it
      for (let i = 0; i < 3000 && !(await readdir(dir)).some((n) => n.includes('coffer-partial')); i++) await new Promise((r) => setTimeout(r, 10));
      expect((await readdir(dir)).some((n) => n.includes('coffer-partial')), 'the download started').toBe(true);
      child.kill(signal);
      expect(await exited).toBe(status);
      expect(stderr).toMatch(/interrupted/);
      expect(await readdir(dir)).toEqual([]);
    }
    // SIGKILL cannot be caught: the partial plaintext stays, until the next download into that directory
    const dir = path.join(work, 'sig-KILL');
    await mkdir(dir);
    const child = spawnCli(['get', '/sig.bin', path.join(dir, 'out.bin'), '--concurrency', '1'], env);
    const exited = new Promise<string | null>((r) => child.once('exit', (_code, signal) => r(signal)));
    for (let i = 0; i < 3000 && !(await readdir(dir)).some((n) => n.includes('coffer-partial')); i++) await new Promise((r) => setTimeout(r, 10));
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    expect((await readdir(dir)).filter((n) => n.includes('coffer-partial'))).toHaveLength(1);
    await writeFile(path.join(work, 'tiny.bin'), 'tiny');
    await ok(['put', path.join(work, 'tiny.bin'), '/tiny.bin']);
    await ok(['get', '/tiny.bin', path.join(dir, 'tiny.bin')]);
    expect(await readdir(dir)).toEqual(['tiny.bin']);
  });

  it('Ctrl-C during put says how to resume, and the printed command finishes the upload', async () => {
    const src = path.join(work, 'sigput.bin');
    const bytes = randomBytes(96 * MiB);
    await writeFile(src, bytes);
    const before = new Set(await blobsWithChunks());
    const child = spawnCli(['put', src, '/sigput.bin', '--concurrency', '1'], env);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    for (let i = 0; i < 3000 && (await blobsWithChunks()).every((b) => before.has(b)); i++) await new Promise((r) => setTimeout(r, 10));
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    const m = /resume it with coffer put --resume ([0-9a-f]{32}) (\S+) (\S+)/.exec(stderr);
    expect(m, stderr).not.toBeNull();
    expect([m![2], m![3]]).toEqual([src, '/sigput.bin']);
    const r = JSON.parse(await ok(['put', '--resume', m![1]!, src, '/sigput.bin', '--json'])) as { skippedChunks: number };
    expect(r.skippedChunks).toBeGreaterThanOrEqual(1);
    const out = path.join(work, 'sigput.out');
    await ok(['get', '/sigput.bin', out]);
    expect((await readFile(out)).equals(bytes)).toBe(true);
  });

  it('a put killed outright (SIGKILL: no hint printed) continues when the same command runs again', async () => {
    const src = path.join(work, 'killput.bin');
    const bytes = randomBytes(96 * MiB);
    await writeFile(src, bytes);
    const before = new Set(await blobsWithChunks());
    const child = spawnCli(['put', src, '/killput.bin', '--concurrency', '1'], env);
    const exited = new Promise<string | null>((r) => child.once('exit', (_code, signal) => r(signal)));
    for (let i = 0; i < 3000 && (await blobsWithChunks()).every((b) => before.has(b)); i++) await new Promise((r) => setTimeout(r, 10));
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    const r = JSON.parse(await ok(['put', src, '/killput.bin', '--json'])) as { resumed: boolean; skippedChunks: number };
    expect(r.resumed).toBe(true);
    expect(r.skippedChunks).toBeGreaterThanOrEqual(1);
    const out = path.join(work, 'killput.out');
    await ok(['get', '/killput.bin', out]);
    expect((await readFile(out)).equals(bytes)).toBe(true);
    expect(await readdir(path.join(stateDir, 'uploads'))).toEqual([]); // finished: forgotten
    // a recorded upload that cannot go on (abandoned meanwhile) is dropped and the put starts afresh
    const again = path.join(work, 'abandoned.bin');
    await writeFile(again, randomBytes(3 * MiB));
    const client = new VaultClient({ server: env.COFFER_SERVER as string, token: env.COFFER_TOKEN as string });
    const keys = await KeyFileDataKeys.open(env.COFFER_KEY_FILE as string);
    const journal = new UploadJournal(path.join(stateDir, 'uploads')).recordFor(env.COFFER_SERVER as string, '/abandoned.bin', again);
    let abandoned = '';
    await uploadFile(client, again, { path: '/abandoned.bin', keys, journal, onProgress: () => { throw new Error('killed'); } }).catch(() => undefined);
    abandoned = (await journal.recall()) as string;
    expect(abandoned).toMatch(/^[0-9a-f]{32}$/);
    await client.abort(abandoned);
    client.close();
    const fresh = JSON.parse(await ok(['put', again, '/abandoned.bin', '--json'])) as { resumed: boolean; blobId: string };
    expect([fresh.resumed, fresh.blobId === abandoned]).toEqual([false, false]);
    // and one of a file changed since is left for GC (another put may still hold it) and the new content sent
    const changed = path.join(work, 'changed.bin');
    await writeFile(changed, randomBytes(3 * MiB));
    const record = new UploadJournal(path.join(stateDir, 'uploads')).recordFor(env.COFFER_SERVER as string, '/changed.bin', changed);
    const c2 = new VaultClient({ server: env.COFFER_SERVER as string, token: env.COFFER_TOKEN as string });
    await uploadFile(c2, changed, { path: '/changed.bin', keys, journal: record, onProgress: () => { throw new Error('killed'); } }).catch(() => undefined);
    const stale = (await record.recall()) as string;
    const newBytes = randomBytes(3 * MiB);
    await writeFile(changed, newBytes);
    const r2 = JSON.parse(await ok(['put', changed, '/changed.bin', '--json'])) as { resumed: boolean };
    expect(r2.resumed).toBe(false);
    expect((await c2.uploadState(stale)).state).toBe('uploading');
    c2.close();
    await ok(['get', '/changed.bin', path.join(work, 'changed.out')]);
    expect((await readFile(path.join(work, 'changed.out'))).equals(newBytes)).toBe(true);
  });

  it('an interrupted upload is kept and `put --resume` sends only the missing chunks', async () => {
    const bytes = randomBytes(4 * 8 * MiB + 99);
    const src = path.join(work, 'resume.bin');
    await writeFile(src, bytes);
    const client = new VaultClient({ server: env.COFFER_SERVER as string, token: env.COFFER_TOKEN as string });
    const keys = await KeyFileDataKeys.open(env.COFFER_KEY_FILE as string);
    // the upload dies after two chunks are stored: it stays on the service, not visible in the tree
    let stored = 0;
    const err = await uploadFile(client, src, {
      path: '/resume.bin', keys, concurrency: 1,
      onProgress: () => {
        if (++stored === 2) throw new Error('local disk hiccup');
      },
    }).catch((e: unknown) => e);
    client.close();
    const blobId = (err as CofferError).details?.resumeBlobId as string;
    expect(blobId).toMatch(/^[0-9a-f]{32}$/);
    expect((err as Error).message).toMatch(/--resume/);
    expect((await coffer(['stat', '/resume.bin'])).code).toBe(3);
    const r = JSON.parse(await ok(['put', '--resume', blobId, src, '/resume.bin', '--json'])) as { blobId: string; skippedChunks: number; chunkCount: number };
    expect(r).toMatchObject({ blobId, skippedChunks: 2, chunkCount: 5 });
    const out = path.join(work, 'resume.out');
    await ok(['get', '/resume.bin', out]);
    expect((await readFile(out)).equals(bytes)).toBe(true);
  });

  it('a download rides out a restart of the service (transient errors are retried)', async () => {
    const src = path.join(work, 'restart.bin');
    const bytes = randomBytes(8 * MiB + 3);
    await writeFile(src, bytes);
    await ok(['put', src, '/restart.bin']);
    const port = new URL(server.url).port;
    await server.stop();
    const out = path.join(work, 'restart.out');
    const get = coffer(['get', '/restart.bin', out]);
    await new Promise((r) => setTimeout(r, 500));
    server = await startServerProcess(['serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`, '--default-root-role', 'write']);
    const r = await get;
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(bytes)).toBe(true);
  });

  it('put and get through a TLS terminator, trusting its private CA through NODE_EXTRA_CA_CERTS', async () => {
    // a real TLS terminator in front of the service, with a certificate from a private CA (the client gets only
    // the CA certificate): uploads go through Node's https client, chunk downloads through the chunk fetcher
    const dir = path.join(work, 'tls');
    await mkdir(dir);
    const openssl = (...args: string[]): void => {
      const r = spawnSync('openssl', args, { cwd: dir, stdio: 'pipe' });
      if (r.status !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr.toString()}`);
    };
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=coffer test CA', '-keyout', 'ca.key', '-out', 'ca.pem');
    openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=localhost', '-keyout', 'srv.key', '-out', 'srv.csr');
    await writeFile(path.join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost\n');
    openssl('x509', '-req', '-in', 'srv.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', 'ext.cnf', '-out', 'srv.pem');
    const upstream = new URL(server.url);
    const proxy = tls.createServer({ key: await readFile(path.join(dir, 'srv.key')), cert: await readFile(path.join(dir, 'srv.pem')) }, (s) => {
      const back = net.connect(Number(upstream.port), upstream.hostname);
      s.pipe(back).pipe(s);
      s.on('error', () => back.destroy());
      back.on('error', () => s.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const https = { COFFER_SERVER: `https://localhost:${(proxy.address() as net.AddressInfo).port}` };
      const src = path.join(work, 'tls.bin');
      const bytes = randomBytes(8 * MiB + 4321);
      await writeFile(src, bytes);
      const untrusted = await coffer(['put', src, '/tls.bin'], https);
      expect(untrusted.code).not.toBe(0);
      expect(untrusted.stderr).toMatch(/certificate/i);
      const trust = { ...https, NODE_EXTRA_CA_CERTS: path.join(dir, 'ca.pem') };
      await ok(['put', src, '/tls.bin'], trust);
      const out = path.join(work, 'tls.out');
      await ok(['get', '/tls.bin', out], trust);
      expect((await readFile(out)).equals(bytes)).toBe(true);
      const denied = await coffer(['get', '--verify-only', '/tls.bin'], https);
      expect(denied.code).not.toBe(0);
      expect(denied.stderr).toMatch(/certificate/i);
    } finally {
      await new Promise((r) => proxy.close(r));
    }
  });

  it('put -r and get -r copy a directory tree both ways; a re-run skips what is already there', async () => {
    const tree = path.join(work, 'dataset');
    const files: Record<string, Buffer> = {
      'x.bin': randomBytes(8 * MiB + 9),
      'b/y.txt': Buffer.from('why\n'),
      'b/c/empty': Buffer.alloc(0),
    };
    for (const [rel, bytes] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(tree, rel)), { recursive: true });
      await writeFile(path.join(tree, rel), bytes);
    }
    await symlink('/etc/passwd', path.join(tree, 'b', 'escape'));
    const up = JSON.parse(await ok(['put', '-r', tree, '/projects/dataset', '--json'])) as { files: number; skipped: number };
    expect(up).toMatchObject({ files: 3, skipped: 0, ignored: 1 }); // the symbolic link is ignored, never followed
    const again = JSON.parse(await ok(['put', '-r', tree, '/projects/dataset/', '--json'])) as { files: number; skipped: number }; // a trailing / names the same directory
    expect(again).toMatchObject({ files: 0, updated: 0, skipped: 3, ignored: 1 });
    const mirror = path.join(work, 'mirror');
    const down = JSON.parse(await ok(['get', '-r', '/projects/dataset', mirror, '--json'])) as { files: number };
    expect(down.files).toBe(3);
    for (const [rel, bytes] of Object.entries(files)) expect((await readFile(path.join(mirror, rel))).equals(bytes)).toBe(true);
    expect(existsSync(path.join(mirror, 'b', 'escape'))).toBe(false);
    const down2 = JSON.parse(await ok(['get', '-r', '/projects/dataset', mirror, '--json'])) as { files: number; skipped: number };
    expect(down2).toMatchObject({ files: 0, skipped: 3 });
  });
});
