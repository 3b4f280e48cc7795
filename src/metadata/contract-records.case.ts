// MetadataStore contract, part 2: blobs (state machine, GC listing, paging), upload chunks, users, grants and
// the audit log. Registered from runMetadataStoreContract (contract.case.ts) inside its per-test store setup.
import { expect, it } from 'vitest';
import { expectCode, T0 } from './contract-helpers.case.js';
import type { AuditEntry, BlobRecord, MetadataStore, UploadChunkRecord } from './types.js';

function blobId(n: number): string {
  return n.toString(16).padStart(32, '0');
}

function mkBlob(id: string, over: Partial<BlobRecord> = {}): BlobRecord {
  return {
    id, state: 'uploading', owner: 'alice', keyGeneration: 1,
    keyRecord: { scheme: 'kms', keyId: 'arn:aws:kms:eu-west-1:1:key/x', ciphertextBlob: 'AQID', encryptionContext: { 'coffer:blob': id } },
    size: null, chunkCount: null, chunkSha256: null, createdAt: T0, updatedAt: T0, attrs: {}, ...over,
  };
}

function mkChunk(blob: string, index: number, over: Partial<UploadChunkRecord> = {}): UploadChunkRecord {
  return { blobId: blob, index, plaintextLength: 8 * 1024 * 1024, final: false, storedSize: 8 * 1024 * 1024 + 64, sha256: 'ef'.repeat(32), createdAt: T0, ...over };
}

function mkAudit(seq: number, over: Partial<AuditEntry> = {}): AuditEntry {
  return {
    seq, at: new Date(T0.getTime() + seq), actor: 'alice', action: 'put', target: `/docs/${seq}`, details: { size: seq },
    prevHash: '00'.repeat(32), hash: seq.toString(16).padStart(64, '0'), ...over,
  };
}

export function runBlobAndRecordContract(getStore: () => MetadataStore): void {
  it('round-trips blobs, their JSON fields and Dates; ids are unique', async () => {
    const store = getStore();
    // keys with '$' and '.' and non-ASCII text must come back unchanged (and never act as operators)
    const attrs = { path: '/docs/é 日本.bin', nested: { 'a.b': [1, 2.5, null, true, 'x'], $set: { evil: 1 } }, empty: {} };
    const b = mkBlob(blobId(1), { attrs, size: 0, chunkCount: 1, chunkSha256: ['ab'.repeat(32)] });
    await store.insertBlob(b);
    const got = await store.getBlob(b.id);
    expect(got).toEqual(b);
    expect(got?.updatedAt).toBeInstanceOf(Date);
    await expectCode(store.insertBlob(mkBlob(blobId(1))), 'ALREADY_EXISTS');
    expect(await store.getBlob(blobId(2))).toBeNull();
  });

  it('moves blobs through uploading → committed → deleting by compare-and-set', async () => {
    const store = getStore();
    const id = blobId(7);
    await store.insertBlob(mkBlob(id));
    // a patch without a state change, guarded by the current state
    const withAttrs = await store.updateBlob(id, 'uploading', { attrs: { bindTo: '/a' } });
    expect(withAttrs).toMatchObject({ state: 'uploading', attrs: { bindTo: '/a' } });
    expect(withAttrs.updatedAt.getTime()).toBeGreaterThan(T0.getTime());

    const commit = { state: 'committed' as const, size: 10, chunkCount: 1, chunkSha256: ['01'.repeat(32)] };
    const committed = await store.updateBlob(id, 'uploading', commit);
    expect(committed).toMatchObject({ ...commit, attrs: { bindTo: '/a' } });
    // the same transition again (a retry after a timeout) succeeds and changes nothing
    expect(await store.updateBlob(id, 'uploading', commit)).toEqual(committed);
    expect(await store.getBlob(id)).toEqual(committed);
    // a different commit is not a repeat: UPLOAD_STATE
    const e = await expectCode(store.updateBlob(id, 'uploading', { ...commit, chunkSha256: ['02'.repeat(32)] }), 'UPLOAD_STATE');
    expect(e.details).toMatchObject({ state: 'committed', expected: 'uploading' });
    await expectCode(store.updateBlob(id, 'committed', { state: 'uploading' }), 'INVALID_ARGUMENT'); // never backwards
    await expectCode(store.updateBlob(id, 'deleting', { state: 'committed' }), 'INVALID_ARGUMENT');
    await expectCode(store.updateBlob(id, 'uploading', { attrs: { x: 1 } }), 'UPLOAD_STATE');

    const deleting = await store.updateBlob(id, 'committed', { state: 'deleting' });
    expect(deleting.state).toBe('deleting');
    expect(deleting.chunkSha256).toEqual(commit.chunkSha256);
    await store.updateBlob(id, 'committed', { state: 'deleting' }); // idempotent repeat
    // strict: only the call that made the change succeeds (two GC passes must not both audit one release)
    const strict = await expectCode(store.updateBlob(id, 'committed', { state: 'deleting' }, { strict: true }), 'UPLOAD_STATE');
    expect(strict.details).toMatchObject({ state: 'deleting', expected: 'committed' });
    await expectCode(store.updateBlob(id, 'uploading', { state: 'committed' }), 'UPLOAD_STATE');

    // rewrap: a key change guarded by state
    const rewrapped = await store.updateBlob(id, 'deleting', { keyRecord: { scheme: 'keyfile', wrapped: 'AAAA' }, keyGeneration: 1 });
    expect(rewrapped.keyRecord).toEqual({ scheme: 'keyfile', wrapped: 'AAAA' });

    await expectCode(store.updateBlob(blobId(8), 'uploading', { state: 'committed' }), 'NOT_FOUND');
    await expectCode(store.updateBlob(id, 'deleting', { owner: 'mallory' } as never), 'INVALID_ARGUMENT');
    await expectCode(store.updateBlob(id, 'deleting', { state: 'gone' as never }), 'INVALID_ARGUMENT');

    expect(await store.deleteBlob(id)).toBe(true);
    expect(await store.getBlob(id)).toBeNull();
    expect(await store.deleteBlob(id)).toBe(false); // idempotent, and says it was not this call
  });

  it('lists blobs by state, oldest first, for GC', async () => {
    const store = getStore();
    const ages = [50, 10, 40, 20, 30]; // minutes before T0
    for (const [i, m] of ages.entries()) {
      await store.insertBlob(mkBlob(blobId(100 + i), { updatedAt: new Date(T0.getTime() - m * 60_000) }));
    }
    await store.insertBlob(mkBlob(blobId(200), { state: 'deleting', updatedAt: new Date(T0.getTime() - 3_600_000) }));
    const old = await store.listBlobsByState('uploading', new Date(T0.getTime() - 15 * 60_000), 10);
    expect(old.map((b) => b.id)).toEqual([blobId(100), blobId(102), blobId(104), blobId(103)]);
    const two = await store.listBlobsByState('uploading', T0, 2);
    expect(two.map((b) => b.id)).toEqual([blobId(100), blobId(102)]);
    expect((await store.listBlobsByState('deleting', T0, 10)).map((b) => b.id)).toEqual([blobId(200)]);
    expect(await store.listBlobsByState('committed', T0, 10)).toEqual([]);
    await expectCode(store.listBlobsByState('uploading', T0, 0), 'INVALID_ARGUMENT');
  });

  it('pages all blobs by id', async () => {
    const store = getStore();
    const ids = [5, 3, 250, 17, 1, 4096, 64].map(blobId);
    for (const id of ids) await store.insertBlob(mkBlob(id));
    const seen: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await store.listBlobs({ after, limit: 3 });
      seen.push(...page.items.map((b) => b.id));
      if (page.next === null) break;
      after = page.next;
    }
    expect(seen).toEqual([...ids].sort());
    expect((await store.listBlobs()).items).toHaveLength(ids.length);
    expect(await store.listBlobs({ after: blobId(5000) })).toEqual({ items: [], next: null });
  });

  it('upserts upload chunks: latest record wins, listed by index', async () => {
    const store = getStore();
    const a = blobId(1);
    const b = blobId(2);
    for (const i of [10, 2, 0, 1]) await store.putUploadChunk(mkChunk(a, i));
    await store.putUploadChunk(mkChunk(b, 0));
    const replaced = mkChunk(a, 2, { plaintextLength: 5, final: true, storedSize: 69, sha256: '12'.repeat(32), createdAt: new Date(T0.getTime() + 1) });
    await store.putUploadChunk(replaced);
    await store.putUploadChunk(replaced);
    const list = await store.listUploadChunks(a);
    expect(list.map((c) => c.index)).toEqual([0, 1, 2, 10]);
    expect(list[2]).toEqual(replaced);
    expect(list[0]).toEqual(mkChunk(a, 0));
    await store.deleteUploadChunks(a);
    await store.deleteUploadChunks(a);
    expect(await store.listUploadChunks(a)).toEqual([]);
    expect(await store.listUploadChunks(b)).toHaveLength(1);
  });

  it('creates users idempotently and upserts grants', async () => {
    const store = getStore();
    expect(await store.getUser('bob')).toBeNull();
    const bob = await store.ensureUser('bob');
    expect(bob).toMatchObject({ name: 'bob', disabled: false });
    expect(bob.createdAt).toBeInstanceOf(Date);
    await new Promise((r) => setTimeout(r, 5));
    expect(await store.ensureUser('bob')).toEqual(bob);
    await Promise.all([store.ensureUser('carol'), store.ensureUser('carol'), store.ensureUser('alice')]);
    expect((await store.listUsers()).map((u) => u.name)).toEqual(['alice', 'bob', 'carol']);
    expect(await store.getUser('bob')).toEqual(bob);
    expect(await store.setUserDisabled('bob', true)).toMatchObject({ name: 'bob', disabled: true });
    expect(await store.getUser('bob')).toMatchObject({ disabled: true, createdAt: bob.createdAt });
    expect(await store.ensureUser('bob')).toMatchObject({ disabled: true });
    expect(await store.setUserDisabled('bob', false)).toEqual(bob);
    await expectCode(store.setUserDisabled('nobody', true), 'NOT_FOUND');
    // a restore recreates a user with its original date; an existing user keeps its own
    const old = new Date('2020-02-03T04:05:06.789Z');
    expect(await store.ensureUser('dave', { createdAt: old })).toMatchObject({ name: 'dave', createdAt: old, disabled: false });
    expect((await store.ensureUser('dave', { createdAt: T0 })).createdAt).toEqual(old);
    expect((await store.ensureUser('bob', { createdAt: old })).createdAt).toEqual(bob.createdAt);
    await expectCode(store.ensureUser('erin', { createdAt: new Date(Number.NaN) }), 'INVALID_ARGUMENT');
    await expectCode(store.ensureUser('erin', { when: old } as never), 'INVALID_ARGUMENT');
    expect(await store.getUser('erin')).toBeNull();

    await store.putGrant({ nodeId: 'n1', user: 'bob', role: 'read', createdAt: T0 });
    await store.putGrant({ nodeId: 'n1', user: 'bob', role: 'write', createdAt: T0 });
    await store.putGrant({ nodeId: 'n1', user: 'carol', role: 'admin', createdAt: T0 });
    await store.putGrant({ nodeId: 'n2', user: 'bob', role: 'read', createdAt: T0 });
    await store.putGrant({ nodeId: 'n3', user: 'bob', role: 'read', createdAt: T0 });
    const grants = await store.listGrants(['n1', 'n2', 'missing']);
    expect(grants.map((g) => `${g.nodeId}/${g.user}/${g.role}`).sort()).toEqual(['n1/bob/write', 'n1/carol/admin', 'n2/bob/read']);
    expect(grants[0]?.createdAt).toEqual(T0);
    expect(await store.listGrants([])).toEqual([]);
    await store.deleteGrant('n1', 'bob');
    await store.deleteGrant('n1', 'bob');
    expect((await store.listGrants(['n1'])).map((g) => g.user)).toEqual(['carol']);
  });

  it('appends audit entries at free seqs only', async () => {
    const store = getStore();
    expect(await store.lastAudit()).toBeNull();
    expect(await store.listAudit(0, 10)).toEqual([]);
    for (let s = 1; s <= 12; s++) await store.appendAudit(mkAudit(s));
    const e = mkAudit(13, { details: { nested: { 'k.$': ['é', 1.5, false, null] } } });
    await store.appendAudit(e);
    await expectCode(store.appendAudit(mkAudit(13, { actor: 'mallory' })), 'ALREADY_EXISTS');
    expect(await store.lastAudit()).toEqual(e);
    const page = await store.listAudit(10, 2);
    expect(page).toEqual([mkAudit(11), mkAudit(12)]);
    expect((await store.listAudit(0, 100)).map((a) => a.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
    expect(await store.listAudit(13, 5)).toEqual([]);
    // racing appenders at the same seq: exactly one wins
    const race = await Promise.allSettled([1, 2, 3].map((i) => store.appendAudit(mkAudit(14, { actor: `w${i}` }))));
    expect(race.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(race.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason.code)).toEqual(['ALREADY_EXISTS', 'ALREADY_EXISTS']);
  });
}
