// The filesystem store against real failures, across a real process boundary where needed: a writer killed
// mid-put (crash leftovers), a really full filesystem (a 2 MiB tmpfs: ENOSPC; prlimit --fsize: EFBIG), and the
// durability syscalls themselves, observed with strace. Nothing here is mocked.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, realpath, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectCode, newBlobId, pieces } from '../contract.case.js';
import { openFsChunkStore, type FsChunkStore } from './index.js';
import { CHILD, have, joinResumed, REPO, runChild, sha256, tempFilesUnder, tempRoot, withTempStore, type ChildResult } from './test-util.js';
import { mountTmpfs, type Tmpfs } from '../../test/support/tmpfs.js';

describe('a crash', () => {
  let root: string;
  let store: FsChunkStore;
  withTempStore((t) => ({ root, store } = t));

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
});

describe('a crash with many small chunks in flight (a pack)', () => {
  it('a writer killed with its pack durable under a temporary name but not renamed: no chunk visible, the temp swept', async () => {
    const root = await tempRoot();
    const store = await openFsChunkStore({ root });
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', CHILD, 'stallpack', root, '300', '16448'], { stdio: ['ignore', 'pipe', 'inherit'], cwd: REPO });
      const refs = await new Promise<Array<{ blobId: string; index: number }>>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const line = out.split('\n').find((l) => l.startsWith('{"stalled"'));
          if (line) resolve((JSON.parse(line) as { stalled: Array<{ blobId: string; index: number }> }).stalled);
        });
        child.on('exit', (code) => reject(new Error(`child exited early (${code})`)));
      });
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
      const fresh = await openFsChunkStore({ root });
      try {
        for (const ref of refs.slice(0, 20)) expect(await fresh.stat(ref)).toBeNull();
        const listed: string[] = [];
        for await (const id of fresh.listBlobs()) listed.push(id);
        expect(listed).toEqual([]);
        expect(await fresh.sweepTemporary(60_000)).toBe(0); // too young
        expect(await fresh.sweepTemporary(0)).toBe(1);
      } finally {
        await fresh.close();
      }
    } finally {
      await store.close();
      await rm(root, { recursive: true, force: true });
    }
  });

  it('a pack that resolved survives its writer being killed right after: every chunk readable by a fresh store', async () => {
    const root = await tempRoot();
    try {
      const r: ChildResult & { ok?: { refs?: Array<{ blobId: string; index: number }> } } = await runChild([], ['pack', root, '300', '16448', '-', '-']);
      const fresh = await openFsChunkStore({ root });
      try {
        for (const ref of r.ok!.refs!) expect(await fresh.stat(ref)).toEqual({ size: 16448 });
      } finally {
        await fresh.close();
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('a really full filesystem', () => {
  // A 2 MiB tmpfs is a real filesystem that really fills: ENOSPC from the kernel, no mocks. Mounting needs
  // root (CAP_SYS_ADMIN); where that is refused the test says so and is skipped, and the prlimit test below
  // still exercises a real kernel-enforced limit (RLIMIT_FSIZE → EFBIG) through a child process.
  let fs: Tmpfs;
  beforeAll(async () => {
    fs = await mountTmpfs('coffer-tmpfs-', '2m');
  });
  afterAll(async () => fs.close());

  it.for(['direct', 'buffered'] as const)('%s writes, tmpfs of 2 MiB: NO_SPACE, no partial chunk or temp file, earlier chunks intact, space reusable', async (io, ctx) => {
    if (!fs.mounted) ctx.skip(fs.whyNot);
    const mountPoint = fs.path;
    const store = await openFsChunkStore({ root: join(mountPoint, `store-${io}`), directIo: io === 'direct' });
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
    await store.deleteBlob(blobId);
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
  for (const io of ['direct', 'buffered'] as const) {
    it(`${io}: temp file created exclusively, written, fsynced, renamed over the name, then its directory fsynced`, async (ctx) => {
      if (!(await have('strace'))) ctx.skip('strace is not installed');
      const root = await tempRoot();
      const log = join(root, 'strace.log');
      const size = 300 * 1024 + 17; // not a multiple of 4 KiB: the direct write pads the last block, then cuts it
      try {
        const blobId = newBlobId();
        const traced: ChildResult = await runChild(['strace', '-f', '-qq', '-o', log, '-e', 'trace=openat,fsync,fdatasync,ftruncate,rename,renameat,renameat2,close'], [
          'put', root, blobId, '3', String(size), io,
        ]).catch((e: unknown) => ({ error: { code: 'STRACE', message: String(e) } }));
        if (traced.error?.code === 'STRACE') ctx.skip(`strace cannot trace here: ${traced.error.message.split('\n')[0]}`);
        expect(traced.ok?.size).toBe(size);
        // the directory chain's fsyncs run beside the chunk's own (group commit), so strace may split a call
        // into "<unfinished ...>" and "<... resumed>": each is joined back at the line where it started
        const lines = joinResumed((await readFile(log, 'utf8')).split('\n'));
        const blobDir = join(await realpath(root), 'chunks', blobId.slice(0, 2), blobId.slice(2, 4), blobId);
        const at = (re: RegExp, from = 0): number => {
          const i = lines.findIndex((l, n) => n >= from && re.test(l));
          expect(i, `no syscall matching ${re} after line ${from}`).toBeGreaterThanOrEqual(0);
          return i;
        };
        const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        const openTemp = at(new RegExp(`openat\\(.*"${esc(blobDir)}/\\.tmp-00000003-[0-9a-f]{16}", (?=.*O_RDWR)(?=.*O_CREAT)(?=.*O_EXCL)(?=.*O_NOFOLLOW).*= (\\d+)`));
        expect(lines[openTemp]?.includes('O_DIRECT')).toBe(io === 'direct');
        const tempFd = /= (\d+)$/.exec(lines[openTemp] as string)?.[1];
        const syncTemp = at(new RegExp(`fsync\\(${tempFd}\\)\\s+= 0`), openTemp);
        const truncated = lines.findIndex((l, n) => n > openTemp && new RegExp(`ftruncate\\(${tempFd}, ${size}\\)\\s+= 0`).test(l));
        if (io === 'direct') expect(truncated, 'padding cut off before the fsync').toBeGreaterThan(openTemp);
        if (io === 'direct') expect(truncated).toBeLessThan(syncTemp);
        else expect(truncated).toBe(-1);
        const renamed = at(new RegExp(`rename.*"${esc(blobDir)}/\\.tmp-00000003-[0-9a-f]{16}".*"${esc(blobDir)}/00000003"`), syncTemp);
        const openDir = at(new RegExp(`openat\\(.*"${esc(blobDir)}", (?=.*O_DIRECTORY)O_RDONLY.*= (\\d+)`), renamed);
        const dirFd = /= (\d+)$/.exec(lines[openDir] as string)?.[1];
        at(new RegExp(`fsync\\(${dirFd}\\)\\s+= 0`), openDir);
        expect((await stat(join(blobDir, '00000003'))).size).toBe(size);
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    });
  }

  it('a pack of 200 chunks: one temp file created exclusively, ONE fsync of it, renamed, its directory fsynced', async (ctx) => {
    if (!(await have('strace'))) ctx.skip('strace is not installed');
    const root = await tempRoot();
    const log = join(root, 'strace.log');
    try {
      const traced: ChildResult = await runChild(['strace', '-f', '-qq', '-o', log, '-e', 'trace=openat,fsync,fdatasync,rename,renameat,renameat2'], ['pack', root, '200', '16448', '-', '-'])
        .catch((e: unknown) => ({ error: { code: 'STRACE', message: String(e) } }));
      if (traced.error?.code === 'STRACE') ctx.skip(`strace cannot trace here: ${traced.error.message.split('\n')[0]}`);
      const packId = (traced.ok as unknown as { packId: string }).packId;
      const lines = joinResumed((await readFile(log, 'utf8')).split('\n'));
      const packDir = join(await realpath(root), 'packs', packId.slice(0, 2));
      const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const openTemp = lines.findIndex((l) => new RegExp(`openat\\(.*"${esc(packDir)}/\\.tmp-pack-[0-9a-f]{16}", (?=.*O_CREAT)(?=.*O_EXCL)(?=.*O_NOFOLLOW).*= \\d+$`).test(l));
      expect(openTemp).toBeGreaterThanOrEqual(0);
      const tempFd = /= (\d+)$/.exec(lines[openTemp] as string)?.[1];
      const syncs = lines.filter((l) => new RegExp(`fsync\\(${tempFd}\\)\\s+= 0`).test(l));
      expect(syncs).toHaveLength(1);
      const renamed = lines.findIndex((l, n) => n > openTemp && new RegExp(`rename.*"${esc(packDir)}/\\.tmp-pack-[0-9a-f]{16}".*"${esc(packDir)}/${packId}"`).test(l));
      expect(renamed).toBeGreaterThan(lines.findIndex((l) => new RegExp(`fsync\\(${tempFd}\\)`).test(l)));
      const openDir = lines.findIndex((l, n) => n > renamed && new RegExp(`openat\\(.*"${esc(packDir)}", (?=.*O_DIRECTORY)O_RDONLY.*= \\d+$`).test(l));
      expect(openDir).toBeGreaterThan(renamed);
      const dirFd = /= (\d+)$/.exec(lines[openDir] as string)?.[1];
      expect(lines.findIndex((l, n) => n > openDir && new RegExp(`fsync\\(${dirFd}\\)\\s+= 0`).test(l))).toBeGreaterThan(openDir);
      // 200 chunks, and only a handful of fsyncs in the whole process: the pack, its directory, packs/ and the root
      // once each (their entries), and the root once more when the store's open made chunks/ (one chunk file alone takes 3+)
      expect(lines.filter((l) => /fsync\(/.test(l)).length).toBeLessThanOrEqual(5);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  for (const size of [8 * 1024 * 1024 + 64, 300 * 1024 + 17, 64 * 1024, 100]) {
    it(`direct: a whole chunk of ${size} bytes in one aligned piece is written from where it lies (no copy), padding cut off`, async (ctx) => {
      if (!(await have('strace'))) ctx.skip('strace is not installed');
      const root = await tempRoot();
      const log = join(root, 'strace.log');
      try {
        const blobId = newBlobId();
        const traced = (await runChild(['strace', '-f', '-qq', '-o', log, '-e', 'trace=openat,pwrite64,ftruncate'], ['putone', root, blobId, '2', String(size), 'aligned'])
          .catch((e: unknown) => ({ error: { code: 'STRACE', message: String(e) } }))) as ChildResult & { data?: string; untouched?: boolean };
        if (traced.error?.code === 'STRACE') ctx.skip(`strace cannot trace here: ${traced.error.message.split('\n')[0]}`);
        expect(traced.ok?.sha256).toBe(traced.data);
        expect(traced.untouched).toBe(true);
        const lines = joinResumed((await readFile(log, 'utf8')).split('\n'));
        const open = lines.find((l) => /\.tmp-00000002-[0-9a-f]{16}", .*O_DIRECT.*= \d+$/.test(l));
        const fd = /= (\d+)$/.exec(open ?? '')?.[1];
        expect(fd, 'temp file opened with O_DIRECT').toBeDefined();
        const writes = lines.filter((l) => new RegExp(`pwrite64\\(${fd}, `).test(l)).map((l) => Number(/, (\d+), \d+\)\s+= \d+$/.exec(l)?.[1]));
        const head = size - (size % 4096);
        // the aligned part in one write(2), straight from the caller's buffer; the last partial block padded
        expect(writes).toEqual([...(head > 0 ? [head] : []), ...(size % 4096 ? [4096] : [])]);
        const root2 = await realpath(root);
        const file = join(root2, 'chunks', blobId.slice(0, 2), blobId.slice(2, 4), blobId, '00000002');
        expect((await stat(file)).size).toBe(size);
        expect(sha256(await readFile(file))).toBe(traced.data);
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    });
  }

  it('direct: a piece O_DIRECT refuses (memory not aligned) is written through the aligned buffers instead, bytes intact', async () => {
    const root = await tempRoot();
    try {
      const blobId = newBlobId();
      const size = 8 * 1024 * 1024 + 64;
      const log = join(root, 'strace.log');
      const traced = await have('strace');
      const r = (await runChild(traced ? ['strace', '-f', '-qq', '-o', log, '-e', 'trace=pwrite64'] : [], ['putone', root, blobId, '0', String(size), 'unaligned'])) as ChildResult & { data?: string; untouched?: boolean };
      expect(r.error).toBeUndefined();
      if (traced) {
        // the kernel's refusal, then the copy through aligned 1 MiB buffers from offset 0
        const writes = (await readFile(log, 'utf8')).split('\n').filter((l) => l.includes('pwrite64('));
        expect(writes.some((l) => /= -1 EINVAL/.test(l))).toBe(true);
        expect(writes.filter((l) => /, 1048576, 0\)\s+= 1048576$/.test(l))).toHaveLength(1);
      }
      expect(r.ok?.sha256).toBe(r.data);
      expect(r.untouched).toBe(true);
      const store = await openFsChunkStore({ root });
      try {
        expect(sha256(await buffer(await store.get({ blobId, index: 0 })))).toBe(r.data);
        expect((await store.stat({ blobId, index: 0 }))?.size).toBe(size);
      } finally {
        await store.close();
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('direct: readInto an aligned buffer reads the chunk with O_DIRECT, in one open', async (ctx) => {
    if (!(await have('strace'))) ctx.skip('strace is not installed');
    const root = await tempRoot();
    const log = join(root, 'strace.log');
    try {
      const blobId = newBlobId();
      const put = await runChild([], ['put', root, blobId, '1', String(8 * 1024 * 1024 + 64), 'direct']);
      const read: ChildResult = await runChild(['strace', '-f', '-qq', '-o', log, '-e', 'trace=openat'], ['read', root, blobId, '1', '-', 'direct'])
        .catch((e: unknown) => ({ error: { code: 'STRACE', message: String(e) } }));
      if (read.error?.code === 'STRACE') ctx.skip(`strace cannot trace here: ${read.error.message.split('\n')[0]}`);
      expect(read.ok).toEqual(put.ok);
      const opens = (await readFile(log, 'utf8')).split('\n').filter((l) => l.includes(`/${blobId}/00000001"`));
      expect(opens).toHaveLength(1);
      expect(opens[0]).toContain('O_DIRECT');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
