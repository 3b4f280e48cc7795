// Tests of the filesystem ChunkStore: the shared contract suite (O_DIRECT and buffered writes, each with and
// without verify-after-write, and with a single-slot I/O queue), then what only a filesystem has: the exact on-disk layout, symbolic links refused,
// temporary files swept, options checked. Crashes, full disks and the fsync sequence: fs-durability.test.ts.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, realpath, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { expectCode, newBlobId, pieces, runChunkStoreContract } from '../contract.case.js';
import { openChunkStore } from '../index.js';
import { openFsChunkStore, type FsChunkStore } from './index.js';
import { tempFilesUnder, tempRoot, withTempStore, tree } from './test-util.js';

const variants = [
  ['fs, O_DIRECT writes', { directIo: true }],
  ['fs, buffered writes', { directIo: false }],
  ['fs, O_DIRECT, verifyAfterWrite', { directIo: true, verifyAfterWrite: true }],
  ['fs, buffered, verifyAfterWrite', { directIo: false, verifyAfterWrite: true }],
  ['fs, concurrency 1', { concurrency: 1 }],
  ['fs, deferSync (bulk writers: fsyncs deferred to flush)', { deferSync: true }],
] as const;
for (const [label, extra] of variants) {
  runChunkStoreContract(label, async () => {
    const root = await tempRoot();
    const store = await openFsChunkStore({ root, ...extra });
    if ('directIo' in extra) expect(store.directIo).toBe(extra.directIo);
    return {
      store,
      cleanup: async () => {
        if ('deferSync' in extra) await store.flush(); // syncfs of the root's filesystem succeeds
        await rm(root, { recursive: true, force: true });
      },
    };
  });
}

describe('FsChunkStore on disk', () => {
  let root: string;
  let store: FsChunkStore;
  withTempStore((t) => ({ root, store } = t));

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

  it('makes the fan-out directories again when they were removed behind its back (it remembers made ones)', async () => {
    const first = 'ab12' + randomBytes(14).toString('hex');
    await store.put({ blobId: first, index: 0 }, pieces(randomBytes(10)));
    await rm(join(root, 'chunks', 'ab'), { recursive: true });
    const second = 'ab12' + randomBytes(14).toString('hex');
    await store.put({ blobId: second, index: 0 }, pieces(randomBytes(10)));
    expect(await store.list(second)).toEqual([0]);
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
    // the O_DIRECT probe's file, as a crash during open leaves it, and a foreign dot file that is not ours
    const probe = join(root, 'chunks', '.direct-io-probe-0123456789ab');
    const foreign = join(root, 'chunks', '.keep-me');
    for (const path of [probe, foreign]) {
      await writeFile(path, randomBytes(10));
      await utimes(path, hourAgo, hourAgo);
    }
    expect(await store.list(blobId)).toEqual([0]);
    const listed: string[] = [];
    for await (const id of store.listBlobs()) listed.push(id);
    expect(listed).toEqual([blobId]);
    expect(await store.sweepTemporary(60_000)).toBe(3);
    expect([existsSync(probe), existsSync(foreign)]).toEqual([false, true]);
    expect((await tempFilesUnder(root)).map((p) => p.split('/').at(-1))).toEqual(['.tmp-00000002-fresh000fresh000']);
    expect(await store.sweepTemporary(0)).toBe(1);
    expect(await tempFilesUnder(root)).toEqual([]);
    expect(await store.list(blobId)).toEqual([0]);
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
      await expectCode(openFsChunkStore({ root, directIo: 'auto' } as never), 'INVALID_ARGUMENT');
      await writeFile(join(root, 'a-file'), '');
      await expectCode(openFsChunkStore({ root: join(root, 'a-file') }), 'INVALID_ARGUMENT');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('openChunkStore opens kind fs, refuses a malformed s3 config and unknown kinds', async () => {
    const root = await tempRoot();
    try {
      const store = await openChunkStore({ kind: 'fs', root });
      await store.put({ blobId: newBlobId(), index: 0 }, pieces(randomBytes(8)));
      await store.close();
      expect((await lstat(join(root, 'chunks'))).isDirectory()).toBe(true);
      await expectCode(openChunkStore({ kind: 's3', bucket: 'b' }), 'INVALID_ARGUMENT'); // bucket names have 3..63 characters
      await expectCode(openChunkStore({ kind: 'ftp', root } as never), 'INVALID_ARGUMENT');
      await expectCode(openChunkStore({ kind: 'fs', root, extra: 1 } as never), 'INVALID_ARGUMENT');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
