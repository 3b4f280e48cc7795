// Tests of the filesystem ChunkStore: the shared contract suite (plain, with verify-after-write, and with a
// single-slot I/O queue), then what only a filesystem has: the exact on-disk layout, symbolic links refused,
// crash leftovers swept, the durability syscalls (strace), and a really full filesystem (tmpfs, prlimit).
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, realpath, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectCode, newBlobId, pieces, runChunkStoreContract } from '../contract.case.js';
import { openChunkStore } from '../index.js';
import { openFsChunkStore, type FsChunkStore } from './index.js';

const run = promisify(execFile);
const CHILD = join(import.meta.dirname, 'test-child.ts');
const REPO = join(import.meta.dirname, '..', '..'); // the child resolves tsx from here
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function tempRoot(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'coffer-fs-store-'));
}

/** Every path under `dir`, relative, sorted (lstat: links are listed, not followed). */
async function tree(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).sort();
}

async function tempFilesUnder(dir: string): Promise<string[]> {
  return (await tree(dir)).filter((p) => p.split('/').some((part) => part.startsWith('.tmp-')));
}

for (const [label, extra] of [['fs', {}], ['fs, verifyAfterWrite', { verifyAfterWrite: true }], ['fs, concurrency 1', { concurrency: 1 }]] as const) {
  runChunkStoreContract(label, async () => {
    const root = await tempRoot();
    const store = await openFsChunkStore({ root, ...extra });
    return { store, cleanup: () => rm(root, { recursive: true, force: true }) };
  });
}

describe('FsChunkStore on disk', () => {
  let root: string;
  let store: FsChunkStore;
  beforeEach(async () => {
    root = await tempRoot();
    store = await openFsChunkStore({ root });
  });
  afterEach(async () => {
    await store.close();
    await rm(root, { recursive: true, force: true });
  });

  it('lays chunks out as chunks/<hex[0:2]>/<hex[2:4]>/<blob>/<index as 8 hex digits>, mode 0600', async () => {
    const blobId = 'ab12' + randomBytes(14).toString('hex');
    const a = randomBytes(1000);
    const b = randomBytes(10);
    await store.put({ blobId, index: 5 }, pieces(a));
    await store.put({ blobId, index: 0xffff_ffff }, pieces(b));
    const dir = `chunks/ab/12/${blobId}`;
    expect(await tree(root)).toEqual(['chunks', 'chunks/ab', 'chunks/ab/12', dir, `${dir}/00000005`, `${dir}/ffffffff`]);
    expect(await readFile(join(root, dir, '00000005'))).toEqual(a);
    expect(await readFile(join(root, dir, 'ffffffff'))).toEqual(b);
    expect((await stat(join(root, dir, '00000005'))).mode & 0o777).toBe(0o600);
    expect(store.root).toBe(await realpath(root));
  });

  it('refuses a fan-out directory that is a symbolic link out of the root, for every operation', async () => {
    const outside = await tempRoot();
    try {
      const blobId = 'cd34' + randomBytes(14).toString('hex');
      await mkdir(join(root, 'chunks'), { recursive: true });
      await symlink(outside, join(root, 'chunks', 'cd'));
      const ref = { blobId, index: 0 };
      await expectCode(store.put(ref, pieces(randomBytes(100))), 'PATH_OUTSIDE_ROOT');
      expect(await readdir(outside)).toEqual([]); // nothing was created through the link
      // a planted chunk behind the link is neither read, listed nor deleted
      await mkdir(join(outside, '34', blobId), { recursive: true });
      await writeFile(join(outside, '34', blobId, '00000000'), 'outside');
      await expectCode(store.get(ref), 'PATH_OUTSIDE_ROOT');
      await expectCode(store.stat(ref), 'PATH_OUTSIDE_ROOT');
      await expectCode(store.list(blobId), 'PATH_OUTSIDE_ROOT');
      await expectCode(store.delete(ref), 'PATH_OUTSIDE_ROOT');
      await expectCode(store.deleteBlob(blobId), 'PATH_OUTSIDE_ROOT');
      await expectCode(store.put(ref, pieces(randomBytes(100))), 'PATH_OUTSIDE_ROOT');
      expect(await readFile(join(outside, '34', blobId, '00000000'), 'utf8')).toBe('outside');
      const listed: string[] = [];
      for await (const id of store.listBlobs()) listed.push(id);
      expect(listed).toEqual([]);
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });

  it('refuses a blob directory that is a link to another blob (no aliasing inside the root)', async () => {
    const victim = newBlobId();
    const data = randomBytes(64);
    await store.put({ blobId: victim, index: 0 }, pieces(data));
    const alias = victim.slice(0, 4) + randomBytes(14).toString('hex');
    await symlink(join(root, 'chunks', victim.slice(0, 2), victim.slice(2, 4), victim), join(root, 'chunks', alias.slice(0, 2), alias.slice(2, 4), alias));
    await expectCode(store.put({ blobId: alias, index: 0 }, pieces(randomBytes(64))), 'PATH_OUTSIDE_ROOT');
    await expectCode(store.get({ blobId: alias, index: 0 }), 'PATH_OUTSIDE_ROOT');
    await expectCode(store.deleteBlob(alias), 'PATH_OUTSIDE_ROOT');
    expect(await buffer(await store.get({ blobId: victim, index: 0 }))).toEqual(data);
  });

  it('refuses a chunk file that is a symbolic link; delete removes only the link', async () => {
    const outside = join(await tempRoot(), 'secret');
    try {
      await writeFile(outside, 'not a chunk');
      const blobId = newBlobId();
      await store.put({ blobId, index: 0 }, pieces(randomBytes(8)));
      const linkPath = join(root, 'chunks', blobId.slice(0, 2), blobId.slice(2, 4), blobId, '00000001');
      await symlink(outside, linkPath);
      await expectCode(store.get({ blobId, index: 1 }), 'PATH_OUTSIDE_ROOT');
      await expectCode(store.stat({ blobId, index: 1 }), 'PATH_OUTSIDE_ROOT');
      expect(await store.list(blobId)).toEqual([0]);
      await store.delete({ blobId, index: 1 });
      expect(existsSync(linkPath)).toBe(false);
      expect(await readFile(outside, 'utf8')).toBe('not a chunk');
    } finally {
      await rm(join(outside, '..'), { recursive: true, force: true });
    }
  });

  it('refuses a root whose chunks/ is a symbolic link, follows a root that is one', async () => {
    const elsewhere = await tempRoot();
    const other = await tempRoot();
    try {
      await symlink(elsewhere, join(other, 'chunks'));
      await expectCode(openFsChunkStore({ root: other }), 'PATH_OUTSIDE_ROOT');
      const linkedRoot = join(other, 'linked-root');
      await symlink(elsewhere, linkedRoot);
      const viaLink = await openFsChunkStore({ root: linkedRoot });
      const blobId = newBlobId();
      await viaLink.put({ blobId, index: 0 }, pieces(randomBytes(8)));
      expect((await tree(elsewhere)).at(-1)).toBe(`chunks/${blobId.slice(0, 2)}/${blobId.slice(2, 4)}/${blobId}/00000000`);
      await viaLink.close();
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
      await rm(other, { recursive: true, force: true });
    }
  });

  it('sweeps temporary files by age and never lists them', async () => {
    const blobId = newBlobId();
    await store.put({ blobId, index: 0 }, pieces(randomBytes(8)));
    const dir = join(root, 'chunks', blobId.slice(0, 2), blobId.slice(2, 4), blobId);
    const onlyTemps = newBlobId();
    const tempsDir = join(root, 'chunks', onlyTemps.slice(0, 2), onlyTemps.slice(2, 4), onlyTemps);
    await mkdir(tempsDir, { recursive: true });
    const hourAgo = new Date(Date.now() - 3600_000);
    for (const path of [join(dir, '.tmp-00000001-0011223344556677'), join(tempsDir, '.tmp-00000000-8899aabbccddeeff')]) {
      await writeFile(path, randomBytes(100));
      await utimes(path, hourAgo, hourAgo);
    }
    await writeFile(join(dir, '.tmp-00000002-fresh000fresh000'), randomBytes(100));
    expect(await store.list(blobId)).toEqual([0]);
    const listed: string[] = [];
    for await (const id of store.listBlobs()) listed.push(id);
    expect(listed).toEqual([blobId]);
    expect(await store.sweepTemporary(60_000)).toBe(2);
    expect((await tempFilesUnder(root)).map((p) => p.split('/').at(-1))).toEqual(['.tmp-00000002-fresh000fresh000']);
    expect(await store.sweepTemporary(0)).toBe(1);
    expect(await tempFilesUnder(root)).toEqual([]);
    expect(await store.list(blobId)).toEqual([0]);
  });

  it('a writer killed mid-put leaves only a temp file, which is swept', async () => {
    const blobId = newBlobId();
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, 'stall', root, blobId, '0'], { stdio: ['ignore', 'pipe', 'inherit'], cwd: REPO });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('stalled') && resolve());
      child.on('exit', (code) => reject(new Error(`child exited early (${code})`)));
    });
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    const temps = await tempFilesUnder(root);
    expect(temps).toHaveLength(1);
    expect(await store.stat({ blobId, index: 0 })).toBeNull();
    expect(await store.list(blobId)).toEqual([]);
    expect(await store.sweepTemporary(60_000)).toBe(0); // too young
    expect(await store.sweepTemporary(0)).toBe(1);
    expect(await tempFilesUnder(root)).toEqual([]);
  });

  it('after close, operations are refused with UNAVAILABLE; close is idempotent', async () => {
    await store.close();
    await store.close();
    await expectCode(store.put({ blobId: newBlobId(), index: 0 }, pieces(randomBytes(8))), 'UNAVAILABLE');
    await expectCode(store.list(newBlobId()), 'UNAVAILABLE');
  });
});

describe('opening', () => {
  it('refuses bad and unknown options', async () => {
    const root = await tempRoot();
    try {
      await expectCode(openFsChunkStore({ root: '' }), 'INVALID_ARGUMENT');
      await expectCode(openFsChunkStore({ root, concurrency: 0 }), 'INVALID_ARGUMENT');
      await expectCode(openFsChunkStore({ root, concurrency: 2.5 }), 'INVALID_ARGUMENT');
      await expectCode(openFsChunkStore({ root, verifyAfterWrite: 'yes' } as never), 'INVALID_ARGUMENT');
      await expectCode(openFsChunkStore({ root, verifyAfterwrite: true } as never), 'INVALID_ARGUMENT');
      await writeFile(join(root, 'a-file'), '');
      await expectCode(openFsChunkStore({ root: join(root, 'a-file') }), 'INVALID_ARGUMENT');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('openChunkStore opens kind fs, refuses s3 (not yet) and unknown kinds', async () => {
    const root = await tempRoot();
    try {
      const store = await openChunkStore({ kind: 'fs', root });
      await store.put({ blobId: newBlobId(), index: 0 }, pieces(randomBytes(8)));
      await store.close();
      expect((await lstat(join(root, 'chunks'))).isDirectory()).toBe(true);
      await expectCode(openChunkStore({ kind: 's3', bucket: 'b' }), 'UNAVAILABLE');
      await expectCode(openChunkStore({ kind: 'ftp', root } as never), 'INVALID_ARGUMENT');
      await expectCode(openChunkStore({ kind: 'fs', root, extra: 1 } as never), 'INVALID_ARGUMENT');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

/** Runs the test child under `prefix` (e.g. prlimit, strace); resolves with its JSON line and stderr. */
interface ChildResult {
  ok?: { size: number; sha256: string };
  error?: { code: string; message: string };
}

async function runChild(prefix: string[], args: string[]): Promise<ChildResult> {
  const [cmd, ...rest] = [...prefix, process.execPath, '--import', 'tsx', CHILD, ...args];
  const { stdout } = await run(cmd as string, rest, { timeout: 60_000, cwd: REPO });
  return JSON.parse(stdout.trim().split('\n').at(-1) as string) as ChildResult;
}

async function have(cmd: string): Promise<boolean> {
  return run('sh', ['-c', `command -v ${cmd}`]).then(
    () => true,
    () => false,
  );
}

describe('a really full filesystem', () => {
  // A 2 MiB tmpfs is a real filesystem that really fills: ENOSPC from the kernel, no mocks. Mounting needs
  // root (CAP_SYS_ADMIN); where that is refused the test says so and is skipped, and the prlimit test below
  // still exercises a real kernel-enforced limit (RLIMIT_FSIZE → EFBIG) through a child process.
  let mountPoint: string;
  let mounted = false;
  let whyNot = '';
  beforeAll(async () => {
    mountPoint = await mkdtemp(join(tmpdir(), 'coffer-tmpfs-'));
    try {
      await run('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'tmpfs', mountPoint]);
      mounted = true;
    } catch (e) {
      whyNot = `cannot mount a tmpfs here (${(e as Error).message.split('\n')[0]})`;
    }
  });
  afterAll(async () => {
    if (mounted) await run('umount', [mountPoint]);
    await rm(mountPoint, { recursive: true, force: true });
  });

  it('tmpfs of 2 MiB: NO_SPACE, no partial chunk or temp file, earlier chunks intact, space reusable', async (ctx) => {
    if (!mounted) ctx.skip(whyNot);
    const store = await openFsChunkStore({ root: join(mountPoint, 'store') });
    const blobId = newBlobId();
    const committed = new Map<number, string>();
    let failure: unknown;
    for (let index = 0; index < 16 && failure === undefined; index++) {
      const data = randomBytes(384 * 1024);
      try {
        await store.put({ blobId, index }, pieces(data));
        committed.set(index, sha256(data));
      } catch (e) {
        failure = e;
        expect(await store.stat({ blobId, index })).toBeNull();
      }
    }
    expect(committed.size).toBeGreaterThan(0);
    await expectCode(Promise.reject(failure), 'NO_SPACE');
    expect((failure as Error).message).toMatch(/no space left .* \(ENOSPC\)/);
    expect(await tempFilesUnder(mountPoint)).toEqual([]);
    expect(await store.list(blobId)).toEqual([...committed.keys()]);
    for (const [index, digest] of committed) expect(sha256(await buffer(await store.get({ blobId, index })))).toBe(digest);
    // freeing space makes the store usable again
    await store.delete({ blobId, index: 0 });
    const again = randomBytes(200 * 1024);
    await store.put({ blobId, index: 99 }, pieces(again));
    expect(sha256(await buffer(await store.get({ blobId, index: 99 })))).toBe(sha256(again));
    await store.close();
  });

  it('RLIMIT_FSIZE (prlimit --fsize) in a child: EFBIG maps to NO_SPACE, nothing partial left', async (ctx) => {
    if (!(await have('prlimit'))) ctx.skip('prlimit is not installed');
    const root = await tempRoot();
    try {
      const blobId = newBlobId();
      const small = await runChild(['prlimit', '--fsize=262144'], ['put', root, blobId, '0', String(100 * 1024)]);
      expect(small.ok?.size).toBe(100 * 1024);
      const big = await runChild(['prlimit', '--fsize=262144'], ['put', root, blobId, '1', String(1024 * 1024)]);
      expect(big.error?.code).toBe('NO_SPACE');
      expect(big.error?.message).toMatch(/EFBIG/);
      expect(await tempFilesUnder(root)).toEqual([]);
      const store = await openFsChunkStore({ root });
      expect(await store.list(blobId)).toEqual([0]);
      expect(sha256(await buffer(await store.get({ blobId, index: 0 })))).toBe(small.ok?.sha256);
      await store.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('durability sequence (strace)', () => {
  it('temp file created exclusively, fsynced, renamed over the name, then its directory fsynced', async (ctx) => {
    if (!(await have('strace'))) ctx.skip('strace is not installed');
    const root = await tempRoot();
    const log = join(root, 'strace.log');
    try {
      const blobId = newBlobId();
      const traced: ChildResult = await runChild(['strace', '-f', '-qq', '-o', log, '-e', 'trace=openat,fsync,fdatasync,rename,renameat,renameat2,close'], [
        'put', root, blobId, '3', String(300 * 1024),
      ]).catch((e: unknown) => ({ error: { code: 'STRACE', message: String(e) } }));
      if (traced.error?.code === 'STRACE') ctx.skip(`strace cannot trace here: ${traced.error.message.split('\n')[0]}`);
      expect(traced.ok?.size).toBe(300 * 1024);
      const lines = (await readFile(log, 'utf8')).split('\n');
      const blobDir = join(await realpath(root), 'chunks', blobId.slice(0, 2), blobId.slice(2, 4), blobId);
      const at = (re: RegExp, from = 0): number => {
        const i = lines.findIndex((l, n) => n >= from && re.test(l));
        expect(i, `no syscall matching ${re} after line ${from}`).toBeGreaterThanOrEqual(0);
        return i;
      };
      const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const openTemp = at(new RegExp(`openat\\(.*"${esc(blobDir)}/\\.tmp-00000003-[0-9a-f]{16}", (?=.*O_RDWR)(?=.*O_CREAT)(?=.*O_EXCL)(?=.*O_NOFOLLOW).*= (\\d+)`));
      const tempFd = /= (\d+)$/.exec(lines[openTemp] as string)?.[1];
      const syncTemp = at(new RegExp(`fsync\\(${tempFd}\\)\\s+= 0`), openTemp);
      const renamed = at(new RegExp(`rename.*"${esc(blobDir)}/\\.tmp-00000003-[0-9a-f]{16}".*"${esc(blobDir)}/00000003"`), syncTemp);
      const openDir = at(new RegExp(`openat\\(.*"${esc(blobDir)}", (?=.*O_DIRECTORY)O_RDONLY.*= (\\d+)`), renamed);
      const dirFd = /= (\d+)$/.exec(lines[openDir] as string)?.[1];
      at(new RegExp(`fsync\\(${dirFd}\\)\\s+= 0`), openDir);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
