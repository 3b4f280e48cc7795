// The one MetadataStore contract suite. Every adapter's test file runs it against a real store
// (sqlite/sqlite-store.test.ts, mongo/mongo-store.test.ts); it checks each method's stated semantics from
// types.ts: uniqueness, compare-and-set, byte-order paging, the blob state machine, idempotency, round-trips.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { byteOrder, expectCode, mkNode, T0, type ContractTarget } from './contract-helpers.case.js';
import { runBlobAndRecordContract } from './contract-records.case.js';
import { runMacContract } from './contract-macs.case.js';
import { runBatchContract } from './contract-batches.case.js';
import { ROOT_ID, type MetadataStore, type TreeNode } from './types.js';

export type { ContractTarget } from './contract-helpers.case.js';

const ROOT = mkNode({ id: ROOT_ID, parentId: null, name: '' });

/** Registers the contract suite for one adapter. `open` returns a fresh, migrated, empty store. */
export function runMetadataStoreContract(name: string, open: () => Promise<ContractTarget>): void {
  describe(`MetadataStore contract: ${name}`, () => {
    let store: MetadataStore;
    let cleanup: () => Promise<void>;
    beforeEach(async () => {
      ({ store, cleanup } = await open());
    });
    afterEach(async () => {
      await cleanup();
    });

    it('starts migrated and empty', async () => {
      expect(await store.getSchemaVersion()).toBeGreaterThanOrEqual(1);
      expect(await store.getNode(ROOT_ID)).toBeNull();
      expect(await store.listUsers()).toEqual([]);
      expect(await store.lastAudit()).toBeNull();
    });

    it('inserts and reads nodes with exact Date round-trips', async () => {
      await store.insertNode(ROOT);
      const f = mkNode({ id: 'n1', name: 'a.bin', type: 'file', blobId: 'ab'.repeat(16), size: 2 ** 40 + 3 });
      await store.insertNode(f);
      expect(await store.getNode(ROOT_ID)).toEqual(ROOT);
      const got = await store.getNode('n1');
      expect(got).toEqual(f);
      expect(got?.createdAt).toBeInstanceOf(Date);
      expect(got?.createdAt.getTime()).toBe(T0.getTime());
      expect(await store.getChild(ROOT_ID, 'a.bin')).toEqual(f);
      expect(await store.getChild(ROOT_ID, 'A.bin')).toBeNull();
      expect(await store.getNode('missing')).toBeNull();
    });

    it('keeps names unique per parent (ALREADY_EXISTS), case-sensitively', async () => {
      await store.insertNode(ROOT);
      await store.insertNode(mkNode({ id: 'd1', name: 'docs' }));
      await expectCode(store.insertNode(mkNode({ id: 'd2', name: 'docs' })), 'ALREADY_EXISTS');
      await expectCode(store.insertNode(mkNode({ id: 'd1', name: 'other' })), 'ALREADY_EXISTS');
      await store.insertNode(mkNode({ id: 'd3', name: 'Docs' }));
      await store.insertNode(mkNode({ id: 'd4', name: 'docs', parentId: 'd1' }));
      expect((await store.getChild('d1', 'docs'))?.id).toBe('d4');
      expect(await store.getNode('d2')).toBeNull();
    });

    it('renames and moves with compare-and-set', async () => {
      await store.insertNode(ROOT);
      await store.insertNode(mkNode({ id: 'a', name: 'a' }));
      await store.insertNode(mkNode({ id: 'b', name: 'b' }));
      await store.insertNode(mkNode({ id: 'f', name: 'f.txt', parentId: 'a', type: 'file' }));

      const renamed = await store.updateNode('f', 1, { name: 'g.txt' });
      expect(renamed).toMatchObject({ id: 'f', name: 'g.txt', parentId: 'a', version: 2, createdAt: T0 });
      expect(renamed.modifiedAt.getTime()).toBeGreaterThan(T0.getTime());
      expect(await store.getNode('f')).toEqual(renamed);
      expect(await store.getChild('a', 'f.txt')).toBeNull();

      // stale version: CONFLICT, nothing changes
      await expectCode(store.updateNode('f', 1, { name: 'h.txt' }), 'CONFLICT');
      expect((await store.getNode('f'))?.name).toBe('g.txt');

      // move to another parent, with a new name, and a file's blob binding
      const moved = await store.updateNode('f', 2, { parentId: 'b', name: 'x', blobId: 'cd'.repeat(16), size: 7, owner: 'bob' });
      expect(moved).toMatchObject({ parentId: 'b', name: 'x', blobId: 'cd'.repeat(16), size: 7, owner: 'bob', version: 3 });
      expect(await store.hasChildren('a')).toBe(false);
      expect((await store.getChild('b', 'x'))?.id).toBe('f');

      // clash on move or rename: ALREADY_EXISTS, version unchanged
      await store.insertNode(mkNode({ id: 'y', name: 'y', parentId: 'a', type: 'file' }));
      await expectCode(store.updateNode('y', 1, { parentId: 'b', name: 'x' }), 'ALREADY_EXISTS');
      await expectCode(store.updateNode('a', 1, { name: 'b' }), 'ALREADY_EXISTS');
      expect(await store.getNode('y')).toMatchObject({ parentId: 'a', name: 'y', version: 1 });

      await expectCode(store.updateNode('nope', 1, { name: 'z' }), 'NOT_FOUND');
      // an empty patch still bumps the version (a touch)
      expect((await store.updateNode('y', 1, {})).version).toBe(2);
      // unknown fields are refused, never ignored
      await expectCode(store.updateNode('y', 2, { version: 9 } as never), 'INVALID_ARGUMENT');
      await expectCode(store.updateNode('y', 2, { type: 'dir' } as never), 'INVALID_ARGUMENT');
    });

    it('lets exactly one of several racing updates win (CAS is atomic)', async () => {
      await store.insertNode(ROOT);
      await store.insertNode(mkNode({ id: 'r', name: 'r' }));
      const results = await Promise.allSettled(['r1', 'r2', 'r3', 'r4'].map((n) => store.updateNode('r', 1, { name: n })));
      const won = results.filter((r) => r.status === 'fulfilled');
      expect(won).toHaveLength(1);
      for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'CONFLICT' });
      const final = await store.getNode('r');
      expect(final?.version).toBe(2);
      expect(final?.name).toBe((won[0] as PromiseFulfilledResult<TreeNode>).value.name);
    });

    it('deletes nodes idempotently, with an optional version check', async () => {
      await store.insertNode(ROOT);
      await store.insertNode(mkNode({ id: 'a', name: 'a' }));
      await expectCode(store.deleteNode('a', 5), 'CONFLICT');
      expect(await store.getNode('a')).not.toBeNull();
      expect(await store.deleteNode('a', 1)).toBe(true); // this call deleted it
      expect(await store.getNode('a')).toBeNull();
      expect(await store.deleteNode('a', 1)).toBe(false); // already gone: success, but not this call's doing
      expect(await store.deleteNode('a')).toBe(false);
      await store.insertNode(mkNode({ id: 'b', name: 'b' }));
      expect(await store.deleteNode('b')).toBe(true);
      expect(await store.getNode('b')).toBeNull();
    });

    it('pages a few thousand children in byte order with `after` cursors', async () => {
      await store.insertNode(ROOT);
      const special = ['a', 'A', 'b', 'B', 'Zebra', 'zebra', 'é', 'e\u0301', 'ü', 'Ω', '日本', '\uFF5E', '😀', '~', ' lead', 'a b', '0', '00', '9', 'ab', 'aB'];
      const names = [...special];
      // prefixes whose byte order differs from case-insensitive and from UTF-16 order, spread over every page
      const prefixes = ['f', 'F', 'é', 'E', '\uFF5E', '😀', 'ß'];
      for (let i = 0; i < 2500; i++) names.push(`${prefixes[i % prefixes.length]}-${(i * 7919) % 2500}`);
      await insertMany(store, names.map((n, i) => mkNode({ id: `c${i}`, name: n, parentId: 'big', type: 'file' })));
      const expected = [...names].sort(byteOrder);
      // UTF-16 order differs from byte order here: U+FF5E sorts before U+1F600 in UTF-8, after it in UTF-16
      expect(expected.indexOf('\uFF5E')).toBeLessThan(expected.indexOf('😀'));

      const seen: string[] = [];
      let after: string | undefined;
      let pages = 0;
      for (;;) {
        const page = await store.listChildren('big', { after, limit: 300 });
        pages++;
        expect(page.items.length).toBeLessThanOrEqual(300);
        seen.push(...page.items.map((n) => n.name));
        if (page.next === null) break;
        expect(page.next).toBe(page.items[page.items.length - 1]?.name);
        after = page.next;
      }
      expect(seen).toEqual(expected);
      expect(pages).toBe(Math.ceil(names.length / 300));

      const first = await store.listChildren('big');
      expect(first.items).toHaveLength(1000); // default limit
      const tail = await store.listChildren('big', { after: expected[expected.length - 2], limit: 5 });
      expect(tail).toEqual({ items: [expect.objectContaining({ name: expected[expected.length - 1] })], next: null });
      const exact = await store.listChildren('big', { limit: names.length });
      expect(exact.next).toBeNull();
      expect(await store.listChildren('nothing-here')).toEqual({ items: [], next: null });
      await expectCode(store.listChildren('big', { limit: 0 }), 'INVALID_ARGUMENT');
      await expectCode(store.listChildren('big', { limit: 10_001 }), 'INVALID_ARGUMENT');
    });

    it('answers hasChildren and findNodesByBlob', async () => {
      await store.insertNode(ROOT);
      expect(await store.hasChildren(ROOT_ID)).toBe(false);
      const blobA = 'aa'.repeat(16);
      await store.insertNode(mkNode({ id: 'f1', name: 'one', type: 'file', blobId: blobA }));
      await store.insertNode(mkNode({ id: 'f2', name: 'two', type: 'file', blobId: blobA }));
      await store.insertNode(mkNode({ id: 'f3', name: 'three', type: 'file', blobId: 'bb'.repeat(16) }));
      expect(await store.hasChildren(ROOT_ID)).toBe(true);
      expect(await store.hasChildren('f1')).toBe(false);
      expect((await store.findNodesByBlob(blobA)).map((n) => n.id).sort()).toEqual(['f1', 'f2']);
      expect(await store.findNodesByBlob('cc'.repeat(16))).toEqual([]);
      await store.updateNode('f2', 1, { blobId: null, size: 0 });
      expect((await store.findNodesByBlob(blobA)).map((n) => n.id)).toEqual(['f1']);
    });

    it('pages all nodes by id, attached or not', async () => {
      await store.insertNode(ROOT);
      const ids = ['n5', 'n3', 'n250', 'n17', 'n1', 'n4096', 'n64'];
      for (const [i, id] of ids.entries()) {
        // one of them hangs under a parent that does not exist: listNodes still finds it
        await store.insertNode(mkNode({ id, name: `x${i}`, parentId: id === 'n17' ? 'gone' : ROOT_ID }));
      }
      const seen: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await store.listNodes({ after, limit: 3 });
        seen.push(...page.items.map((n) => n.id));
        if (page.next === null) break;
        after = page.next;
      }
      expect(seen).toEqual([...ids, ROOT_ID].sort(byteOrder));
      expect((await store.listNodes({ after: 'n5' })).items.map((n) => n.id)).toEqual(['n64', ROOT_ID]);
      const exact = await store.listNodes({ limit: ids.length + 1 }); // a page that ends exactly at the limit
      expect(exact.items).toHaveLength(ids.length + 1);
      expect(exact.next).toBeNull();
      expect((await store.listNodes({ after: 'zz' }))).toEqual({ items: [], next: null });
      await expectCode(store.listNodes({ limit: 0 }), 'INVALID_ARGUMENT');
    });

    it('sync makes acknowledged writes durable and can be called any time', async () => {
      await store.sync(); // nothing written yet
      await store.insertNode(ROOT);
      await store.insertNode(mkNode({ id: 's1', name: 'synced' }));
      await store.sync();
      await store.sync(); // idempotent
      expect((await store.getNode('s1'))?.name).toBe('synced');
      expect(await store.getSchemaVersion()).toBeGreaterThan(0); // the barrier does not disturb the schema record
    });

    it('fails with METADATA after close, and close is idempotent', async () => {
      await store.close();
      await store.close();
      await expectCode(store.getNode(ROOT_ID), 'METADATA');
      await expectCode(store.insertNode(ROOT), 'METADATA');
    });

    runBlobAndRecordContract(() => store);
    runMacContract(() => store);
    runBatchContract(() => store);
  });
}

/** Inserts nodes with bounded concurrency (the store must cope with overlapping calls). */
async function insertMany(store: MetadataStore, nodes: TreeNode[]): Promise<void> {
  const width = 16;
  for (let i = 0; i < nodes.length; i += width) {
    await Promise.all(nodes.slice(i, i + width).map((n) => store.insertNode(n)));
  }
}
