// Restore's batched metadata inserts (restore-batch.ts) against both real stores (SQLite, and the MongoDB-wire
// server the test setup starts): RESTORE_BATCH records per round, kinds kept in order, records inserted by an
// interrupted run tolerated, and any other failure reported per record while the rest of its batch is inserted.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { mkNode, T0 } from '../metadata/contract-helpers.case.js';
import { openMetadataStore } from '../metadata/index.js';
import { ROOT_ID, type BlobRecord, type MetadataStore } from '../metadata/types.js';
import { RESTORE_BATCH, RestoreInserter } from './restore-batch.js';

const blob = (n: number, over: Partial<BlobRecord> = {}): BlobRecord => ({
  id: (0xc000 + n).toString(16).padStart(32, '0'), state: 'committed', owner: 'alice', keyGeneration: 1,
  keyRecord: { scheme: 'keyfile', wrapped: `w${n}` }, size: n, chunkCount: 1, chunkSha256: ['ab'.repeat(32)],
  createdAt: T0, updatedAt: T0, attrs: {}, ...over,
});
const nodeId = (n: number): string => (0xd000 + n).toString(16).padStart(32, '0');

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const stores: Array<[string, () => Promise<MetadataStore | null>]> = [
  ['sqlite', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'coffer-restore-batch-'));
    dirs.push(dir);
    return openMetadataStore({ kind: 'sqlite', path: path.join(dir, 'm.sqlite') });
  }],
  ['mongo', async () => {
    const uri = inject('mongoUri');
    if (!uri) {
      if (process.env.CI === 'true') throw new Error(`no MongoDB-wire server: ${inject('mongoUnavailableReason')}`);
      return null;
    }
    return openMetadataStore({ kind: 'mongo', uri, dbName: `restore_batch_${process.pid}_${Date.now()}` });
  }],
];

describe.each(stores)('restore inserts in batches (%s)', (_kind, open) => {
  it(`inserts ${RESTORE_BATCH} records per round, blobs then nodes, parents before children in one batch`, async (ctx) => {
    const store = await open();
    if (!store) return ctx.skip('no MongoDB-wire test server');
    try {
      const ins = new RestoreInserter(store);
      for (let i = 0; i < 2500; i++) await ins.addBlob(blob(i));
      await ins.addNode(mkNode({ id: nodeId(0), name: 'd', parentId: ROOT_ID }));
      for (let i = 1; i <= 1200; i++) await ins.addNode(mkNode({ id: nodeId(i), name: `f${i}`, parentId: nodeId(0), type: 'file', blobId: blob(i).id, size: i }));
      await ins.flush();
      expect(ins.rounds).toBe(3 + 2);
      expect((await store.listBlobs({ limit: 10_000 })).items).toHaveLength(2500);
      expect((await store.listChildren(nodeId(0), { limit: 10_000 })).items).toHaveLength(1200);
      // a resumed restore: the same records again are all ALREADY_EXISTS, tolerated
      const again = new RestoreInserter(store);
      for (let i = 0; i < 2500; i++) await again.addBlob(blob(i));
      await again.flush();
    } finally {
      await store.close();
    }
  });

  it('a record that fails for another reason is named in the error; the rest of its batch is inserted', async (ctx) => {
    const store = await open();
    if (!store) return ctx.skip('no MongoDB-wire test server');
    try {
      const ins = new RestoreInserter(store, 10);
      await ins.addBlob(blob(1));
      await ins.addBlob(blob(2, { state: 'lost' as never }));
      await ins.addBlob(blob(3));
      const e = await ins.flush().catch((err: unknown) => err);
      expect(e).toMatchObject({ code: 'INVALID_ARGUMENT', details: { failures: [{ kind: 'blob', id: blob(2).id, code: 'INVALID_ARGUMENT' }] } });
      expect((e as Error).message).toMatch(new RegExp(`1 blob record\\(s\\).*blob ${blob(2).id}`));
      expect(await store.getBlob(blob(1).id)).not.toBeNull();
      expect(await store.getBlob(blob(3).id)).not.toBeNull();
      expect(await store.getBlob(blob(2).id)).toBeNull();
    } finally {
      await store.close();
    }
  });
});
