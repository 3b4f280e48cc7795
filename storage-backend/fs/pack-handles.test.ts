// Kept pack handles (pack-handles.ts): one open per pack for many reads, a bounded number kept, a removed pack's
// handle dropped (its chunks then read as missing), a handle never closed under a read in progress.
import { randomBytes } from 'node:crypto';
import { readdir, readlink, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectCode, newBlobId } from '../contract.case.js';
import { type FsChunkStore } from './index.js';
import { PackHandles } from './pack-handles.js';
import { tempRoot, withTempStore } from './test-util.js';

const chunksOf = (n: number): Array<{ ref: { blobId: string; index: number }; data: Buffer }> =>
  Array.from({ length: n }, (_, i) => ({ ref: { blobId: newBlobId(), index: 0 }, data: randomBytes(100 + i) }));

const openFds = async (): Promise<number> => (await readdir('/proc/self/fd')).length;

describe('FsChunkStore keeps pack handles open for reads', () => {
  let root: string;
  let store: FsChunkStore;
  withTempStore((t) => ({ root, store } = t));

  it('reads every chunk of a pack, in parallel, through one open', async () => {
    const chunks = chunksOf(40);
    await store.putPack(chunks);
    const before = store.packs.handles.opens;
    const got = await Promise.all(chunks.map((c) => store.readInto(c.ref, Buffer.alloc(c.data.length))));
    got.forEach((g, i) => expect(g).toEqual(chunks[i]!.data));
    expect(store.packs.handles.opens - before).toBe(1);
    expect(store.packs.handles.size).toBe(1);
  });

  it('drops the handle of a removed pack: its chunks read as missing, and the file is not held open', async () => {
    const chunks = chunksOf(2);
    const { packId } = await store.putPack(chunks);
    await store.readInto(chunks[0]!.ref, Buffer.alloc(chunks[0]!.data.length));
    expect(store.packs.handles.size).toBe(1);
    for (const c of chunks) await store.deleteBlob(c.ref.blobId);
    expect(await readdir(join(root, 'packs', packId.slice(0, 2)))).toEqual([]);
    expect(store.packs.handles.size).toBe(0);
    await expectCode(store.readInto(chunks[0]!.ref, Buffer.alloc(chunks[0]!.data.length)), 'NOT_FOUND');
    // the handle is closed (asynchronously): no descriptor of this process points at the deleted pack
    await new Promise((r) => setTimeout(r, 50));
    const fds = await readdir('/proc/self/fd');
    const targets = await Promise.all(fds.map((f) => readlink(join('/proc/self/fd', f)).catch(() => '')));
    expect(targets.filter((t) => t.includes(packId))).toEqual([]);
  });

  it('reads small and large chunks on a kept handle, and a pack cut short under it says INTEGRITY', async () => {
    const SIZE = 128 * 1024;
    const small = { ref: { blobId: newBlobId(), index: 0 }, data: randomBytes(SIZE) };
    const large = { ref: { blobId: newBlobId(), index: 0 }, data: randomBytes(8 * SIZE) };
    const { packId } = await store.putPack([small, large]);
    expect(await store.readInto(small.ref, Buffer.alloc(small.data.length))).toEqual(small.data);
    expect(await store.readInto(large.ref, Buffer.alloc(large.data.length))).toEqual(large.data);
    // damage under a kept handle (the same file): both paths see the short file
    await truncate(join(root, 'packs', packId.slice(0, 2), packId), 100);
    await expectCode(store.readInto(small.ref, Buffer.alloc(small.data.length)), 'INTEGRITY');
    await expectCode(store.readInto(large.ref, Buffer.alloc(large.data.length)), 'INTEGRITY');
  });

  it('keeps at most its bound of handles however many packs are read', async () => {
    const packs = [];
    for (let i = 0; i < 80; i++) packs.push(chunksOf(1));
    for (const p of packs) await store.putPack(p);
    const fdsBefore = await openFds();
    for (const p of packs) expect(await store.readInto(p[0]!.ref, Buffer.alloc(p[0]!.data.length))).toEqual(p[0]!.data);
    expect(store.packs.handles.size).toBe(64);
    await new Promise((r) => setTimeout(r, 50));
    expect(await openFds()).toBeLessThanOrEqual(fdsBefore + 64);
  });
});

describe('PackHandles', () => {
  let root: string;
  beforeEach(async () => {
    root = await tempRoot();
  });
  afterEach(async () => rm(root, { recursive: true, force: true }));

  it('does not close a handle under a read in progress; closes it once the read is done', async () => {
    const file = join(root, 'p');
    await writeFile(file, 'abcdef');
    const handles = new PackHandles(pLimit(4), 1);
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let closedDuring = false;
    const reading = handles.use('p', file, async (fh) => {
      await gate;
      const b = Buffer.alloc(3);
      await fh.read(b, 0, 3, 2).catch(() => {
        closedDuring = true;
      });
      return b.toString();
    });
    await new Promise((r) => setTimeout(r, 10));
    handles.drop('p');
    expect(handles.size).toBe(0);
    release();
    expect(await reading).toBe('cde');
    expect(closedDuring).toBe(false);
  });

  it('does not keep a failed open: the next use opens again', async () => {
    const handles = new PackHandles(pLimit(4));
    const file = join(root, 'late');
    await expect(handles.use('late', file, async () => 1)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(handles.size).toBe(0);
    await writeFile(file, 'x');
    expect(await handles.use('late', file, async () => 2)).toBe(2);
    expect(handles.opens).toBe(2);
  });

  it('refuses a symbolic link at the pack path (O_NOFOLLOW), as the open per read did', async () => {
    await writeFile(join(root, 'real'), 'x');
    await symlink(join(root, 'real'), join(root, 'link'));
    const handles = new PackHandles(pLimit(4));
    await expect(handles.use('link', join(root, 'link'), async () => 1)).rejects.toMatchObject({ code: 'ELOOP' });
  });
});
