// MetadataStore contract, part 4: batches (insertBlobs, insertNodes) — many single-document inserts in one round
// (one SQLite transaction, one unordered MongoDB bulk write), each failing alone. Registered from
// runMetadataStoreContract (contract.case.ts) inside its per-test store setup.
import { expect, it } from 'vitest';
import { expectCode, mkNode, T0 } from './contract-helpers.case.js';
import { ROOT_ID, type BlobRecord, type MetadataStore } from './types.js';

function mkBlob(n: number, over: Partial<BlobRecord> = {}): BlobRecord {
  const id = (0xb000 + n).toString(16).padStart(32, '0');
  return {
    id, state: 'committed', owner: 'alice', keyGeneration: 1, keyRecord: { scheme: 'keyfile', wrapped: `w${n}` },
    size: n, chunkCount: 1, chunkSha256: ['cd'.repeat(32)], createdAt: T0, updatedAt: T0, attrs: { path: `/f${n}` }, ...over,
  };
}

export function runBatchContract(getStore: () => MetadataStore): void {
  it('insertBlobs inserts many blobs in one call, each as insertBlob would', async () => {
    const store = getStore();
    const blobs = Array.from({ length: 300 }, (_, i) => mkBlob(i));
    expect(await store.insertBlobs(blobs)).toEqual(blobs.map(() => null));
    for (const b of [blobs[0]!, blobs[299]!]) expect(await store.getBlob(b.id)).toEqual(b);
    expect((await store.listBlobs({ limit: 1000 })).items).toHaveLength(300);
    expect(await store.insertBlobs([])).toEqual([]);
  });

  it('insertBlobs: one bad or conflicting blob fails alone; the rest are inserted', async () => {
    const store = getStore();
    await store.insertBlob(mkBlob(1));
    const batch = [mkBlob(0), mkBlob(1, { size: 99 }), mkBlob(2, { state: 'lost' as never }), mkBlob(3), mkBlob(3, { size: 7 })];
    const r = await store.insertBlobs(batch);
    expect(r.map((e) => e?.code ?? null)).toEqual([null, 'ALREADY_EXISTS', 'INVALID_ARGUMENT', null, 'ALREADY_EXISTS']);
    expect((await store.getBlob(mkBlob(1).id))?.size).toBe(1); // the stored one is untouched
    expect(await store.getBlob(mkBlob(2).id)).toBeNull();
    expect((await store.getBlob(mkBlob(3).id))?.size).toBe(3); // the first of two with one id wins
    // the same batch again (a retry after a lost answer): every one answers ALREADY_EXISTS or its own error
    expect((await store.insertBlobs(batch)).map((e) => e?.code)).toEqual(['ALREADY_EXISTS', 'ALREADY_EXISTS', 'INVALID_ARGUMENT', 'ALREADY_EXISTS', 'ALREADY_EXISTS']);
  });

  it('insertNodes: unique names per parent hold inside one batch and against the stored tree', async () => {
    const store = getStore();
    await store.insertNode(mkNode({ id: 'root', parentId: null, name: '' }));
    await store.insertNode(mkNode({ id: 'd', name: 'd' }));
    await store.insertNode(mkNode({ id: 'x', parentId: 'd', name: 'taken', type: 'file', blobId: mkBlob(9).id }));
    const file = (id: string, name: string) => mkNode({ id, parentId: 'd', name, type: 'file', blobId: mkBlob(Number.parseInt(id.slice(1), 10)).id, size: 5 });
    const batch = [file('n1', 'a'), file('n2', 'taken'), file('n3', 'b'), file('n4', 'a'), { ...file('n5', 'c'), version: -1 }, file('x', 'e')];
    const r = await store.insertNodes(batch);
    expect(r.map((e) => e?.code ?? null)).toEqual([null, 'ALREADY_EXISTS', null, 'ALREADY_EXISTS', 'INVALID_ARGUMENT', 'ALREADY_EXISTS']);
    const names = (await store.listChildren('d')).items.map((n) => `${n.id}:${n.name}`);
    expect(names).toEqual(['n1:a', 'n3:b', 'x:taken']);
    expect(await store.getNode('n1')).toEqual(batch[0]);
    expect(await store.getChild(ROOT_ID, 'd')).not.toBeNull();
  });

  it('batches over 10,000 records are refused whole (INVALID_ARGUMENT)', async () => {
    const store = getStore();
    await expectCode(store.insertBlobs(Array.from({ length: 10_001 }, (_, i) => mkBlob(i))), 'INVALID_ARGUMENT');
    await expectCode(store.insertNodes('no' as never), 'INVALID_ARGUMENT');
    expect((await store.listBlobs()).items).toEqual([]);
  });
}
