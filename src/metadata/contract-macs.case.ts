// MetadataStore contract, part 3: record MACs (docs/metadata.md "Record MACs"). The store keeps the enclave's MAC
// of a node, blob, grant or user verbatim and never interprets it: written with the record or by a patch,
// returned on every read, absent when there is none, refused when it is not a short printable string.
import { expect, it } from 'vitest';
import { expectCode, mkNode, T0 } from './contract-helpers.case.js';
import type { BlobRecord, MetadataStore } from './types.js';

const MAC1 = `cm1.${'a1'.repeat(32)}`;
const MAC2 = `cm1.${'b2'.repeat(32)}`;

function blob(id: string): BlobRecord {
  return {
    id, state: 'uploading', owner: 'alice', keyGeneration: 1, keyRecord: { scheme: 'keyfile', wrapped: 'AAAA' },
    size: null, chunkCount: null, chunkSha256: null, createdAt: T0, updatedAt: T0, attrs: {},
  };
}

export function runMacContract(getStore: () => MetadataStore): void {
  it('keeps node and blob MACs verbatim: on insert, by patch, and absent when none', async () => {
    const store = getStore();
    await store.insertNode(mkNode({ id: 'm1', name: 'with-mac', mac: MAC1 }));
    await store.insertNode(mkNode({ id: 'm2', name: 'without' }));
    expect((await store.getNode('m1'))?.mac).toBe(MAC1);
    expect(await store.getNode('m2')).not.toHaveProperty('mac');
    expect((await store.getChild('root', 'with-mac'))?.mac).toBe(MAC1);
    expect((await store.listChildren('root')).items.find((n) => n.id === 'm1')?.mac).toBe(MAC1);
    // a patch that does not name the MAC leaves it as it was (the enclave's verification will fail, not the store's)
    const moved = await store.updateNode('m1', 1, { name: 'renamed' });
    expect(moved.mac).toBe(MAC1);
    const remaced = await store.updateNode('m1', 2, { mac: MAC2 });
    expect(remaced).toMatchObject({ mac: MAC2, version: 3, name: 'renamed' });
    expect(await store.updateNode('m1', 3, { mac: null })).not.toHaveProperty('mac');

    const id = '0c'.repeat(16);
    await store.insertBlob(blob(id));
    expect(await store.getBlob(id)).not.toHaveProperty('mac');
    const committed = await store.updateBlob(id, 'uploading', { state: 'committed', size: 1, chunkCount: 1, chunkSha256: ['01'.repeat(32)] });
    expect(committed).not.toHaveProperty('mac');
    expect((await store.updateBlob(id, 'committed', { mac: MAC1 })).mac).toBe(MAC1);
    expect((await store.getBlob(id))?.mac).toBe(MAC1);
    expect((await store.listBlobs()).items.find((b) => b.id === id)?.mac).toBe(MAC1);
    const withMac = { ...blob('0d'.repeat(16)), mac: MAC2 };
    await store.insertBlob(withMac);
    expect(await store.getBlob(withMac.id)).toEqual(withMac);
  });

  it('keeps grant and user MACs; a grant upsert replaces the MAC with the record', async () => {
    const store = getStore();
    await store.putGrant({ nodeId: 'g1', user: 'bob', role: 'read', createdAt: T0, mac: MAC1 });
    expect(await store.listGrants(['g1'])).toEqual([{ nodeId: 'g1', user: 'bob', role: 'read', createdAt: T0, mac: MAC1 }]);
    await store.putGrant({ nodeId: 'g1', user: 'bob', role: 'write', createdAt: T0 });
    expect(await store.listGrants(['g1'])).toEqual([{ nodeId: 'g1', user: 'bob', role: 'write', createdAt: T0 }]);

    await store.ensureUser('dora');
    expect(await store.getUser('dora')).not.toHaveProperty('mac');
    expect(await store.updateUser('dora', { disabled: true, mac: MAC2 })).toMatchObject({ name: 'dora', disabled: true, mac: MAC2 });
    expect(await store.getUser('dora')).toMatchObject({ disabled: true, mac: MAC2 });
    expect((await store.listUsers()).find((u) => u.name === 'dora')?.mac).toBe(MAC2);
    expect(await store.updateUser('dora', { disabled: false })).toMatchObject({ disabled: false, mac: MAC2 });
    expect(await store.ensureUser('dora')).toMatchObject({ disabled: false, mac: MAC2 });
    await expectCode(store.updateUser('nobody', { disabled: true }), 'NOT_FOUND');
    await expectCode(store.updateUser('dora', { admin: true } as never), 'INVALID_ARGUMENT');
  });

  it('refuses a MAC that is not 1..256 printable ASCII characters', async () => {
    const store = getStore();
    for (const mac of ['', 'x'.repeat(257), 'cm1.\n', 'é', 42]) {
      await expectCode(store.insertNode(mkNode({ id: `bad${String(mac).length}`, name: `bad${String(mac).length}`, mac: mac as string })), 'INVALID_ARGUMENT');
      await expectCode(store.putGrant({ nodeId: 'g', user: 'u', role: 'read', createdAt: T0, mac: mac as string }), 'INVALID_ARGUMENT');
    }
    await store.insertNode(mkNode({ id: 'ok', name: 'ok' }));
    await expectCode(store.updateNode('ok', 1, { mac: 'a b' }), 'INVALID_ARGUMENT');
  });
}
