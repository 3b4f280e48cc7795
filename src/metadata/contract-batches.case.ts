// MetadataStore contract, part 4: batches (insertBlobs, insertNodes) — many single-document inserts in one round
// (one SQLite transaction, one unordered MongoDB bulk write), each failing alone — and batched look-ups
// (getChildren, getBlobs), each answer what the single look-up gives. Registered from runMetadataStoreContract
// (contract.case.ts) inside its per-test store setup.
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

  it('getChildren answers, per name in the order asked, what getChild answers', async () => {
    const store = getStore();
    await store.insertNode(mkNode({ id: 'root', parentId: null, name: '' }));
    await store.insertNode(mkNode({ id: 'd', name: 'd' }));
    await store.insertNode(mkNode({ id: 'e', name: 'e' }));
    // names that differ only by case or Unicode normalisation are different names; one in another directory too
    const names = ['b', 'a', 'A', '\u00e9', 'e\u0301', 'x y', '\u{1f600}'];
    for (const [i, name] of names.entries()) {
      await store.insertNode(mkNode({ id: `n${i}`, parentId: 'd', name, type: 'file', blobId: mkBlob(i).id, size: i }));
    }
    await store.insertNode(mkNode({ id: 'other', parentId: 'e', name: 'only-in-e', type: 'file', blobId: mkBlob(99).id }));
    const asked = ['x y', 'missing', 'a', 'only-in-e', 'a', '\u00e9', 'B', 'e\u0301', '\u{1f600}', 'b', 'A', ''];
    const got = await store.getChildren('d', asked);
    const single = await Promise.all(asked.map((n) => store.getChild('d', n)));
    expect(got).toEqual(single);
    expect(got.map((n) => n?.id ?? null)).toEqual(['n5', null, 'n1', null, 'n1', 'n3', null, 'n4', 'n6', 'n0', 'n2', null]);
    expect(got[2]).not.toBe(got[4]); // a name asked twice: two records, as two getChild calls give
    expect(await store.getChildren('d', [])).toEqual([]);
    expect(await store.getChildren('nowhere', ['a', 'b'])).toEqual([null, null]);
    expect(await store.getChildren(ROOT_ID, ['e', 'd'])).toEqual([await store.getNode('e'), await store.getNode('d')]);
  });

  it('getChildren and getBlobs take long lists (past any bound-parameter limit) and refuse over 10,000', async () => {
    const store = getStore();
    await store.insertNode(mkNode({ id: 'root', parentId: null, name: '' }));
    const blobs = Array.from({ length: 1300 }, (_, i) => mkBlob(i, { state: i % 3 === 0 ? 'uploading' : 'committed' }));
    expect(await store.insertBlobs(blobs)).toEqual(blobs.map(() => null));
    const nodes = blobs.map((b, i) => mkNode({ id: `f${i}`, name: `file-${i}`, type: 'file', blobId: b.id, size: i }));
    expect(await store.insertNodes(nodes)).toEqual(nodes.map(() => null));
    // every stored one, reversed, with a missing one after each tenth and repeats: 1,300 + 130 + 300 keys
    const names: string[] = [];
    const ids: string[] = [];
    for (let i = 1299; i >= 0; i--) {
      names.push(`file-${i}`);
      ids.push(mkBlob(i).id);
      if (i % 10 === 0) {
        names.push(`absent-${i}`);
        ids.push(mkBlob(5000 + i).id);
      }
      if (i % 4 === 0 && i < 1200) {
        names.push(`file-${i + 100}`);
        ids.push(mkBlob(i + 100).id);
      }
    }
    const children = await store.getChildren(ROOT_ID, names);
    expect(children).toHaveLength(names.length);
    names.forEach((n, i) => expect(children[i]?.name ?? null, n).toBe(n.startsWith('file-') ? n : null));
    expect(children).toEqual(names.map((n) => (n.startsWith('file-') ? nodes[Number(n.slice(5))] : null)));
    const got = await store.getBlobs(ids);
    expect(got).toEqual(ids.map((id) => blobs.find((b) => b.id === id) ?? null));
    // spot checks against the single look-ups
    for (const i of [0, 1, 499, 500, 501, 1000, names.length - 1]) {
      expect(children[i]).toEqual(await store.getChild(ROOT_ID, names[i]!));
      expect(got[i]).toEqual(await store.getBlob(ids[i]!));
    }
    expect(await store.getBlobs([])).toEqual([]);
    await expectCode(store.getChildren(ROOT_ID, Array.from({ length: 10_001 }, (_, i) => `n${i}`)), 'INVALID_ARGUMENT');
    await expectCode(store.getBlobs(Array.from({ length: 10_001 }, (_, i) => mkBlob(i).id)), 'INVALID_ARGUMENT');
    await expectCode(store.getBlobs('no' as never), 'INVALID_ARGUMENT');
  });
}
