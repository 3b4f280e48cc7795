// fsck over the real fs chunk store and each real metadata store: the damage the documented races and the
// storage can leave behind (detached subtrees, cycles, nodes under files, missing, short or altered chunk
// files, files pointing at wrong blobs) is found, only confirmed damage is reported, and --repair makes
// unreachable subtrees reachable again under /lost+found, audited.
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { CHUNK_SIZE } from '../crypto/index.js';
import { ROOT_ID } from '../metadata/types.js';
import type { Actor } from './context.js';
import { LOST_AND_FOUND, fsck, fsckStores, type FsckReport } from './fsck.js';
import { newBlobHex, newDek, once, openTestVault, sealAll, type TestVault } from './test-env.js';
import { newNode } from './tree.js';

const alice: Actor = { user: 'alice', admin: false };
const bob: Actor = { user: 'bob', admin: false };
const keyRecord = { scheme: 'test', wrapped: 'x' };

const mongoUri = inject('mongoUri');
const backends: Array<[string, string | null]> = [['sqlite', null], ['mongo', mongoUri]];

/** A property of a store for a Proxy: methods bound to the real store (its private fields need that receiver). */
function bound(target: object, prop: string | symbol, receiver: unknown): unknown {
  const v = Reflect.get(target, prop, receiver) as unknown;
  return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
}

function kinds(r: FsckReport): string[] {
  return r.problems.map((p) => p.kind);
}

describe.each(backends)('fsck on metadata %s', (kind, mongoUri) => {
  if (kind === 'mongo' && !mongoUri) {
    it.skip(`MongoDB-wire server unavailable: ${inject('mongoUnavailableReason')}`, () => undefined);
    return;
  }
  let t: TestVault;
  beforeEach(async () => {
    t = await openTestVault({ defaultRootRole: 'none', mongoUri });
  });
  afterEach(async () => t.close());

  async function upload(actor: Actor, path: string, data: Uint8Array): Promise<{ blobId: string; sealed: Uint8Array[] }> {
    const blobId = newBlobHex();
    await t.vault.createUpload(actor, { path, blobId, keyGeneration: 1, keyRecord });
    const sealed = await sealAll(newDek(), blobId, data);
    for (const [i, s] of sealed.entries()) await t.vault.putChunk(actor, blobId, i, once(s), s.length);
    await t.vault.commitUpload(actor, blobId, { chunkCount: sealed.length, size: data.length });
    return { blobId, sealed };
  }

  async function nodeAt(path: string) {
    const st = await t.vault.stat({ user: 'ops', admin: true }, path);
    const node = await t.store.getNode(st.id);
    if (!node) throw new Error(`no node at ${path}`);
    return node;
  }

  it('finds nothing wrong in a healthy vault, and --read-data hashes every chunk file', async () => {
    await t.store.putGrant({ nodeId: ROOT_ID, user: 'alice', role: 'write', createdAt: new Date() });
    await t.vault.mkdir(alice, '/a/b', { parents: true });
    const big = await upload(alice, '/a/b/big.bin', randomBytes(CHUNK_SIZE + 10));
    await upload(alice, '/a/small.bin', randomBytes(100));
    await upload(alice, '/empty.bin', new Uint8Array(0));
    const quick = await t.vault.fsck();
    expect(quick.problems).toEqual([]);
    expect(quick).toMatchObject({ nodes: 6, files: 3, directories: 3, unreachable: 0, chunksChecked: 4, bytesRead: 0, errors: 0 });
    expect(quick.blobs).toEqual({ uploading: 0, committed: 3, deleting: 0 });
    const full = await t.vault.fsck({ readData: true });
    expect(full.problems).toEqual([]);
    expect(full.bytesRead).toBe(big.sealed[0]!.length + big.sealed[1]!.length + 164 + 64);
  });

  it('reports a subtree whose parent is gone (a mkdir racing a recursive remove) and reattaches it', async () => {
    await t.vault.mkdir({ user: 'ops', admin: true }, '/proj');
    await t.store.putGrant({ nodeId: (await nodeAt('/proj')).id, user: 'alice', role: 'write', createdAt: new Date() });
    await t.vault.mkdir(alice, '/proj/run1/out', { parents: true });
    const data = randomBytes(300);
    await upload({ user: 'ops', admin: true }, '/proj/run1/out/r.bin', data);
    const run1 = await nodeAt('/proj/run1');

    const proj = await nodeAt('/proj');
    // what the race leaves: the directory deleted under a child that was created at the same moment
    await t.store.deleteNode(proj.id);
    const found = await t.vault.fsck();
    expect(kinds(found)).toEqual(['detached']);
    expect(found.problems[0]).toMatchObject({ severity: 'error', nodeId: run1.id, nodeIds: [run1.id], parentId: proj.id });
    expect(found.unreachable).toBe(3); // run1, out, r.bin
    expect(found.errors).toBe(1);
    expect((await t.store.getChild(ROOT_ID, LOST_AND_FOUND))).toBeNull(); // no repair without asking

    const repaired = await t.vault.fsck({ repair: true });
    expect(repaired.errors).toBe(0);
    const where = `/${LOST_AND_FOUND}/missing~${proj.id}/run1`; // under a directory named after the lost parent
    expect(repaired.problems[0]!.repaired).toBe(`reattached under /${LOST_AND_FOUND}/missing~${proj.id}`);
    // readable again by path, by its owner (alice owns run1) and by admins; lost+found itself grants nothing
    const m = await t.vault.manifestByPath(alice, `${where}/out/r.bin`);
    expect(m.manifest.size).toBe(data.length);
    await expect(t.vault.list(bob, `/${LOST_AND_FOUND}`)).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    expect((await t.store.getChild(ROOT_ID, LOST_AND_FOUND))!.owner).toBe(':system');

    const again = await t.vault.fsck({ readData: true });
    expect(again.problems).toEqual([]);
    expect(again.unreachable).toBe(0);
    const audit = await t.vault.verifyAudit();
    expect(audit.ok).toBe(true);
    const log = await t.store.listAudit(0, 1000);
    expect(log.filter((e) => e.action === 'fsck.reattach').map((e) => e.target)).toEqual([where]);
  });

  it('reports a cycle of parents once (two crossing moves) and breaks it by reattaching one member', async () => {
    await t.vault.mkdir({ user: 'ops', admin: true }, '/x/y/z', { parents: true });
    const x = await nodeAt('/x');
    const y = await nodeAt('/x/y');
    await t.store.updateNode(x.id, x.version, { parentId: y.id }); // x under y, y under x
    const found = await t.vault.fsck();
    expect(kinds(found)).toEqual(['cycle']);
    expect(found.problems[0]!.nodeId).toBe(x.id < y.id ? x.id : y.id);
    expect(found.unreachable).toBe(3);
    const repaired = await t.vault.fsck({ repair: true });
    expect(repaired.errors).toBe(0);
    expect((await t.vault.fsck()).problems).toEqual([]);
    const ls = await t.vault.list({ user: 'ops', admin: true }, `/${LOST_AND_FOUND}`);
    expect(ls.items).toHaveLength(1);
  });

  it('reports nodes hanging under a file and a non-root node without a parent', async () => {
    const ops: Actor = { user: 'ops', admin: true };
    await upload(ops, '/f.bin', randomBytes(10));
    const file = await nodeAt('/f.bin');
    const under = newNode(alice, file.id, 'inside', new Date());
    await t.store.insertNode(under);
    const orphan = { ...newNode(alice, ROOT_ID, 'loose', new Date()), parentId: null };
    await t.store.insertNode(orphan);
    const found = await t.vault.fsck();
    expect(kinds(found).sort()).toEqual(['detached', 'parent-not-dir']);
    expect(found.problems.find((p) => p.kind === 'parent-not-dir')!.nodeId).toBe(under.id);
    expect(found.problems.find((p) => p.kind === 'detached')!.nodeId).toBe(orphan.id);
    expect((await t.vault.fsck({ repair: true })).errors).toBe(0);
    expect((await t.vault.fsck()).problems).toEqual([]);
  });

  it('finds missing, short, altered and extra chunk files; sizes without --read-data, contents with it', async () => {
    const ops: Actor = { user: 'ops', admin: true };
    const a = await upload(ops, '/a.bin', randomBytes(2 * CHUNK_SIZE + 5)); // 3 chunks
    const b = await upload(ops, '/b.bin', randomBytes(1000));
    const flipped = Buffer.from(a.sealed[1]!);
    flipped[flipped.length - 100]! ^= 1;
    await t.chunks.put({ blobId: a.blobId, index: 1 }, once(flipped)); // same size, other bytes
    await t.chunks.delete({ blobId: a.blobId, index: 2 });
    await t.chunks.put({ blobId: b.blobId, index: 0 }, once(b.sealed[0]!.subarray(0, 500))); // cut short
    await t.chunks.put({ blobId: b.blobId, index: 7 }, once(randomBytes(64))); // beyond the chunk count

    const quick = await t.vault.fsck();
    expect(quick.problems.map((p) => [p.kind, p.blobId, p.index])).toEqual(expect.arrayContaining([
      ['chunk-missing', a.blobId, 2], ['chunk-size', b.blobId, 0], ['chunk-extra', b.blobId, 7],
    ]));
    expect(quick.problems).toHaveLength(3);
    expect(quick.errors).toBe(2); // the extra file is a warning
    const full = await t.vault.fsck({ readData: true });
    expect(full.problems.map((p) => [p.kind, p.blobId, p.index])).toEqual(expect.arrayContaining([
      ['chunk-damaged', a.blobId, 1], ['chunk-missing', a.blobId, 2], ['chunk-size', b.blobId, 0], ['chunk-extra', b.blobId, 7],
    ]));
    expect(full.errors).toBe(3);
    // repair does not touch data problems: they need a backup
    const repaired = await t.vault.fsck({ repair: true, readData: true });
    expect(repaired.errors).toBe(3);
    expect(repaired.problems.every((p) => p.repaired === undefined)).toBe(true);
  });

  it('finds files pointing at a missing blob, a blob being deleted, a blob of another size, and inconsistent blob records', async () => {
    const ops: Actor = { user: 'ops', admin: true };
    await upload(ops, '/gone.bin', randomBytes(10));
    const dying = await upload(ops, '/dying.bin', randomBytes(10));
    await upload(ops, '/resized.bin', randomBytes(10));
    const odd = await upload(ops, '/odd.bin', randomBytes(10));
    const gone = await nodeAt('/gone.bin');
    await t.store.updateNode(gone.id, gone.version, { blobId: 'ff'.repeat(16) });
    await t.store.updateBlob(dying.blobId, 'committed', { state: 'deleting' });
    const resized = await nodeAt('/resized.bin');
    await t.store.updateNode(resized.id, resized.version, { size: 11 });
    await t.store.updateBlob(odd.blobId, 'committed', { chunkSha256: [] });
    const r = await t.vault.fsck();
    expect(kinds(r).sort()).toEqual(['blob-record', 'file-blob-missing', 'file-blob-state', 'file-size']);
    expect(r.errors).toBe(4);
    expect(r.blobs).toMatchObject({ committed: 3, deleting: 1 });
  });

  it('does not report what a live service changed after the listing (findings are confirmed)', async () => {
    const ops: Actor = { user: 'ops', admin: true };
    const f = await upload(ops, '/f.bin', randomBytes(10));
    await t.chunks.delete({ blobId: f.blobId, index: 0 });
    // the service removes the file (releasing its blob) just after fsck listed the blob as committed
    const chunks = new Proxy(t.chunks, {
      get(target, prop, receiver) {
        if (prop !== 'list') return bound(target, prop, receiver);
        return async (blobId: string) => {
          await t.vault.remove(ops, '/f.bin');
          return target.list(blobId);
        };
      },
    });
    const ctx = { store: t.store, chunks, defaultRootRole: 'none' as const, uploadGraceMs: 86_400_000, now: () => new Date() };
    const r = await fsck(ctx, { readData: true });
    expect(r.blobs.committed).toBe(1); // as listed
    expect(r.problems).toEqual([]); // the missing chunk belongs to a blob that is garbage now, not damage
    // without the removal the same missing chunk is reported
    const g = await upload(ops, '/g.bin', randomBytes(10));
    await t.chunks.delete({ blobId: g.blobId, index: 0 });
    expect(kinds(await t.vault.fsck())).toEqual(['chunk-missing']);
  });

  it('does not report a subtree that a live service reattached after the listing', async () => {
    const ops: Actor = { user: 'ops', admin: true };
    await t.vault.mkdir(ops, '/p/q', { parents: true });
    const q = await nodeAt('/p/q');
    await t.store.deleteNode((await nodeAt('/p')).id);
    const store = new Proxy(t.store, {
      get(target, prop, receiver) {
        if (prop !== 'listNodes') return bound(target, prop, receiver);
        return async (options: { after?: string; limit?: number }) => {
          const page = await target.listNodes(options);
          if (page.next === null) await target.updateNode(q.id, q.version, { parentId: ROOT_ID }); // moved back meanwhile
          return page;
        };
      },
    });
    const ctx = { store, chunks: t.chunks, defaultRootRole: 'none' as const, uploadGraceMs: 86_400_000, now: () => new Date() };
    const r = await fsck(ctx, { repair: true });
    expect(r.unreachable).toBe(0); // counted under confirmed heads only
    expect(r.problems).toEqual([]);
    expect(await t.store.getChild(ROOT_ID, LOST_AND_FOUND)).toBeNull();
  });

  it('never reattaches into a /lost+found that someone owns or holds a grant on', async () => {
    const ops: Actor = { user: 'ops', admin: true };
    await t.vault.mkdir(ops, '/private/sub', { parents: true });
    await t.vault.mkdir(ops, `/${LOST_AND_FOUND}`);
    const lf = await nodeAt(`/${LOST_AND_FOUND}`);
    await t.store.deleteNode((await nodeAt('/private')).id);
    // owned by a user (ops made it): that user would become admin of whatever lands there
    const owned = await t.vault.fsck({ repair: true });
    expect(owned.errors).toBe(1);
    expect(owned.problems[0]!.repaired).toBeUndefined();
    expect(owned.problems[0]!.message).toMatch(/not repaired: \/lost\+found is owned by "ops"/);
    // owned by :system but carrying a grant: the grantee would inherit access
    await t.store.updateNode(lf.id, lf.version, { owner: ':system' });
    await t.store.putGrant({ nodeId: lf.id, user: 'carol', role: 'read', createdAt: new Date() });
    const granted = await t.vault.fsck({ repair: true });
    expect(granted.problems[0]!.message).toMatch(/has grants \(carol:read\)/);
    await t.store.deleteGrant(lf.id, 'carol');
    expect((await t.vault.fsck({ repair: true })).errors).toBe(0);
    expect((await t.vault.list(ops, `/${LOST_AND_FOUND}`)).items.map((n) => n.name)).toEqual([expect.stringMatching(/^missing~/)]);
  });

  it('reattaches a node whose stored name is no valid path segment under a cleaned name', async () => {
    const ops: Actor = { user: 'ops', admin: true };
    const odd = newNode(alice, 'no-such-parent', 'a/b\u0001c', new Date());
    const long = newNode(alice, 'no-such-parent', 'é'.repeat(200), new Date()); // 400 bytes
    await t.store.insertNode(odd);
    await t.store.insertNode(long);
    const r = await t.vault.fsck({ repair: true });
    expect(r.problems).toHaveLength(1); // one missing parent
    expect(r.problems[0]!.repaired).toBe(`reattached under /${LOST_AND_FOUND}/missing~no-such-parent`);
    const names = (await t.vault.list(ops, `/${LOST_AND_FOUND}/missing~no-such-parent`)).items.map((n) => n.name);
    expect(names).toContain(`a_b_c~${odd.id}`);
    const cut = names.find((n) => n.endsWith(`~${long.id}`))!;
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(255);
    expect(cut.startsWith('éé')).toBe(true);
    expect((await t.vault.fsck()).problems).toEqual([]);
  });

  it('reports the children of one missing directory as one problem and reattaches them together, names kept', async () => {
    const ops: Actor = { user: 'ops', admin: true };
    await t.vault.mkdir(ops, '/big');
    const names = Array.from({ length: 150 }, (_, i) => `n${i}`);
    for (const n of names) await t.vault.mkdir(ops, `/big/${n}/deeper`, { parents: true });
    const big = await nodeAt('/big');
    await t.store.deleteNode(big.id);
    const r = await t.vault.fsck();
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]).toMatchObject({ kind: 'detached', parentId: big.id });
    expect(r.problems[0]!.nodeIds).toHaveLength(150);
    expect(r.problems[0]!.message).toMatch(/^150 nodes \(directory "n\d+" .*, …\) hang under node /);
    expect(r.unreachable).toBe(300);
    const repaired = await t.vault.fsck({ repair: true });
    expect(repaired.errors).toBe(0);
    const listed: string[] = [];
    let after: string | undefined;
    do {
      const page = await t.vault.list(ops, `/${LOST_AND_FOUND}/missing~${big.id}`, { after, limit: 100 });
      listed.push(...page.items.map((n) => n.name));
      after = page.next ?? undefined;
    } while (after);
    expect(listed.sort()).toEqual([...names].sort());
    expect((await t.vault.stat(ops, `/${LOST_AND_FOUND}/missing~${big.id}/n7/deeper`)).type).toBe('dir');
    expect((await t.vault.fsck()).problems).toEqual([]);
  });

  it('reports a chunk file the store cannot read as chunk-unreadable and goes on with the others', async () => {
    const ops: Actor = { user: 'ops', admin: true };
    const a = await upload(ops, '/a.bin', randomBytes(CHUNK_SIZE + 1));
    await upload(ops, '/b.bin', randomBytes(10));
    let calls = 0;
    const chunks = new Proxy(t.chunks, {
      get(target, prop, receiver) {
        if (prop !== 'readInto') return bound(target, prop, receiver);
        return async (ref: { blobId: string; index: number }, into: Buffer) => {
          if (ref.blobId === a.blobId && ref.index === 1) {
            calls++;
            throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
          }
          return target.readInto(ref, into);
        };
      },
    });
    const ctx = { store: t.store, chunks, defaultRootRole: 'none' as const, uploadGraceMs: 86_400_000, now: () => new Date() };
    const r = await fsck(ctx, { readData: true, concurrency: 2 });
    expect(r.problems.map((p) => [p.kind, p.blobId, p.index])).toEqual([['chunk-unreadable', a.blobId, 1]]);
    expect(r.problems[0]!.message).toMatch(/EIO/);
    expect(calls).toBe(2); // tried once more
    expect(r.chunksChecked).toBe(3);
    expect(r.bytesRead).toBe(CHUNK_SIZE + 64 + 74);
  });

  it('reports a missing root once (not every top-level node) and recreates it with --repair', async () => {
    const ops: Actor = { user: 'ops', admin: true };
    await t.vault.mkdir(ops, '/top/deeper', { parents: true });
    await t.vault.mkdir(ops, '/other');
    await t.store.deleteNode(ROOT_ID);
    const r = await fsckStores(t.store, t.chunks);
    expect(kinds(r)).toEqual(['root-missing']);
    expect(r.errors).toBe(1);
    expect(await t.store.getNode(ROOT_ID)).toBeNull(); // checking changed nothing
    const repaired = await fsckStores(t.store, t.chunks, { repair: true });
    expect(repaired.errors).toBe(0);
    expect((await t.vault.list(ops, '/')).items.map((n) => n.name)).toEqual(['other', 'top']);
    expect((await fsckStores(t.store, t.chunks)).problems).toEqual([]);
  });
});
