// The SQLite adapter on a really full filesystem (a small tmpfs: ENOSPC from the kernel, no mocks). An
// autocommit `UPDATE … RETURNING` reports its row while stepping and only fails at COMMIT, when the WAL frames
// are written; better-sqlite3's `.get()` stops after the row and never sees that failure, so a write the disk
// refused came back as done (found by an audit: a commit on a full disk said "replaced or aborted", and a
// `put -f` reported success while the file kept its released old blob). Every mutating method must fail with
// NO_SPACE and change nothing.
import { openSync, writeSync, closeSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openMetadataStore } from '../index.js';
import { expectCode, mkNode } from '../contract-helpers.case.js';
import { ROOT_ID, type BlobRecord, type MetadataStore } from '../types.js';
import { mountTmpfs, type Tmpfs } from '../../../test/support/tmpfs.js';

/** Writes zeros to `path` until the filesystem refuses. */
function fill(path: string): void {
  const fd = openSync(path, 'w');
  const block = Buffer.alloc(64 * 1024);
  try {
    for (;;) writeSync(fd, block);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
}

describe('SQLite metadata on a full filesystem', () => {
  let fs: Tmpfs;
  let store: MetadataStore;
  beforeAll(async () => {
    fs = await mountTmpfs('coffer-sqlite-full-', '4m');
  });
  afterAll(async () => {
    await store?.close();
    await fs.close();
  });

  it('compare-and-set writes fail with NO_SPACE and change nothing, and work again once space is freed', async (ctx) => {
    if (!fs.mounted) ctx.skip(fs.whyNot);
    const mountPoint = fs.path;
    store = await openMetadataStore({ kind: 'sqlite', path: join(mountPoint, 'metadata.sqlite') });
    await store.insertNode(mkNode({ id: ROOT_ID, parentId: null, name: '' }));
    await store.insertNode(mkNode({ id: 'f', name: 'f', type: 'file', blobId: 'aa'.repeat(16), size: 1 }));
    const blob: BlobRecord = {
      id: 'bb'.repeat(16), state: 'uploading', owner: 'alice', size: null, chunkCount: null, chunkSha256: null,
      keyGeneration: 1, keyRecord: { scheme: 'test' }, attrs: { path: '/g' }, createdAt: new Date(), updatedAt: new Date(),
    };
    await store.insertBlob(blob);
    fill(join(mountPoint, 'filler'));

    await expectCode(store.updateNode('f', 1, { name: 'renamed', blobId: 'cc'.repeat(16) }), 'NO_SPACE');
    await expectCode(store.updateBlob(blob.id, 'uploading', { state: 'committed', size: 0, chunkCount: 1, chunkSha256: ['dd'.repeat(32)] }), 'NO_SPACE');
    await expectCode(store.ensureUser('carol'), 'NO_SPACE');
    expect(await store.getNode('f')).toMatchObject({ name: 'f', version: 1, blobId: 'aa'.repeat(16) });
    expect(await store.getBlob(blob.id)).toMatchObject({ state: 'uploading', chunkCount: null });
    expect(await store.getUser('carol')).toBeNull();

    await unlink(join(mountPoint, 'filler'));
    expect(await store.updateNode('f', 1, { name: 'renamed' })).toMatchObject({ name: 'renamed', version: 2 });
    expect((await store.updateBlob(blob.id, 'uploading', { state: 'committed', size: 0, chunkCount: 1, chunkSha256: ['dd'.repeat(32)] })).state).toBe('committed');
    expect((await store.ensureUser('carol')).name).toBe('carol');
  });
});
