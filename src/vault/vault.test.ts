// Vault over the real fs chunk store and each real metadata store (SQLite; MongoDB wire protocol when the test
// server is available): tree, permissions, uploads, commit, GC.
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { buffer } from 'node:stream/consumers';
import { CHUNK_SIZE, blobIdFromHex, openChunk } from '../crypto/index.js';
import { isCofferError } from '../errors.js';
import type { Actor } from './context.js';
import { newBlobHex, newDek, once, openTestVault, seal, sealAll, type TestVault } from './test-env.js';

const alice: Actor = { user: 'alice', admin: false };
const bob: Actor = { user: 'bob', admin: false };
const root: Actor = { user: 'ops', admin: true };
const keyRecord = { scheme: 'test', wrapped: 'x' };

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (e) {
    if (isCofferError(e)) return e.code;
    throw e;
  }
}

const mongoUri = inject('mongoUri');
const backends: Array<[string, string | null]> = [['sqlite', null], ['mongo', mongoUri]];

describe.each(backends)('metadata %s', (kind, mongoUri) => {
  if (kind === 'mongo' && !mongoUri) {
    it.skip(`MongoDB-wire server unavailable: ${inject('mongoUnavailableReason')}`, () => undefined);
    return;
  }
  let t: TestVault;
  afterEach(async () => t.close());

  async function upload(actor: Actor, path: string, data: Uint8Array, opts: { overwrite?: boolean } = {}): Promise<{ blobId: string; dek: Uint8Array }> {
    const blobId = newBlobHex();
    const dek = newDek();
    await t.vault.createUpload(actor, { path, blobId, keyGeneration: 1, keyRecord, overwrite: opts.overwrite });
    const sealed = await sealAll(dek, blobId, data);
    for (const [i, s] of sealed.entries()) await t.vault.putChunk(actor, blobId, i, once(s), s.length);
    await t.vault.commitUpload(actor, blobId, { chunkCount: sealed.length, size: data.length });
    return { blobId, dek };
  }

  describe('tree (defaultRootRole write)', () => {
    beforeEach(async () => {
      t = await openTestVault({ defaultRootRole: 'write', mongoUri });
    });

    it('mkdir, stat, list with pagination, parents', async () => {
      await t.vault.mkdir(alice, '/a/b/c', { parents: true });
      expect((await t.vault.stat(alice, '/a/b')).type).toBe('dir');
      expect(await codeOf(t.vault.mkdir(alice, '/a/b'))).toBe('ALREADY_EXISTS');
      expect((await t.vault.mkdir(alice, '/a/b', { parents: true })).created).toBe(false);
      expect(await codeOf(t.vault.mkdir(alice, '/x/y'))).toBe('NOT_FOUND');
      for (const n of ['d', 'a2', 'z', 'b1']) await t.vault.mkdir(alice, `/a/${n}`);
      const p1 = await t.vault.list(alice, '/a', { limit: 2 });
      expect(p1.items.map((n) => n.path)).toEqual(['/a/a2', '/a/b']);
      const p2 = await t.vault.list(alice, '/a', { limit: 2, after: p1.next! });
      const p3 = await t.vault.list(alice, '/a', { limit: 2, after: p2.next! });
      expect([...p2.items, ...p3.items].map((n) => n.name)).toEqual(['b1', 'd', 'z']);
      expect(p3.next).toBeNull();
      expect(await codeOf(t.vault.list(alice, '/a', { limit: 1001 }))).toBe('INVALID_ARGUMENT');
    });

    it('move: rename, into a descendant refused, overwrite rules', async () => {
      await t.vault.mkdir(alice, '/a/b', { parents: true });
      expect(await codeOf(t.vault.move(alice, '/a', '/a/b/a'))).toBe('INVALID_ARGUMENT');
      expect(await codeOf(t.vault.move(alice, '/a', '/a/x'))).toBe('INVALID_ARGUMENT');
      expect(await codeOf(t.vault.move(alice, '/', '/q'))).toBe('INVALID_ARGUMENT');
      const moved = await t.vault.move(alice, '/a/b', '/b2');
      expect(moved.path).toBe('/b2');
      await upload(alice, '/f1', new Uint8Array([1]));
      const { blobId: b2 } = await upload(alice, '/f2', new Uint8Array([2]));
      expect(await codeOf(t.vault.move(alice, '/f1', '/f2'))).toBe('ALREADY_EXISTS');
      expect(await codeOf(t.vault.move(alice, '/f1', '/b2'))).toBe('IS_A_DIRECTORY');
      expect(await codeOf(t.vault.move(alice, '/b2', '/f2', { overwrite: true }))).toBe('NOT_A_DIRECTORY');
      await t.vault.move(alice, '/f1', '/f2', { overwrite: true });
      expect((await t.store.getBlob(b2))?.state).toBe('deleting');
      expect(await codeOf(t.vault.stat(alice, '/f1'))).toBe('NOT_FOUND');
    });

    it('remove: non-empty needs recursive; recursive releases blobs; GC purges them', async () => {
      await t.vault.mkdir(alice, '/r/s', { parents: true });
      const { blobId } = await upload(alice, '/r/s/f', randomBytes(100));
      expect(await codeOf(t.vault.remove(alice, '/r'))).toBe('DIRECTORY_NOT_EMPTY');
      expect(await codeOf(t.vault.remove(alice, '/'))).toBe('INVALID_ARGUMENT');
      expect(await t.vault.remove(alice, '/r', { recursive: true })).toEqual({ removed: 3 });
      expect(await codeOf(t.vault.stat(alice, '/r'))).toBe('NOT_FOUND');
      expect((await t.store.getBlob(blobId))?.state).toBe('deleting');
      const report = await t.vault.runGc(new Date());
      expect(report.purgedBlobs).toBe(1);
      expect(await t.store.getBlob(blobId)).toBeNull();
      expect(await t.chunks.list(blobId)).toEqual([]);
      expect((await t.vault.verifyAudit()).ok).toBe(true);
    });
  });

  describe('permissions (defaultRootRole none)', () => {
    beforeEach(async () => {
      t = await openTestVault({ defaultRootRole: 'none', mongoUri });
    });

    it('fails closed and follows grants, ownership and the admin claim', async () => {
      expect(await codeOf(t.vault.list(alice, '/'))).toBe('PERMISSION_DENIED');
      expect(await codeOf(t.vault.mkdir(alice, '/home'))).toBe('PERMISSION_DENIED');
      await t.vault.mkdir(root, '/home');
      await t.vault.mkdir(root, '/home/alice');
      expect(await codeOf(t.vault.putGrant(alice, '/home/alice', 'alice', 'admin'))).toBe('PERMISSION_DENIED');
      await t.vault.putGrant(root, '/home/alice', 'alice', 'write');
      await t.vault.mkdir(alice, '/home/alice/proj'); // alice owns proj → admin there
      await t.vault.putGrant(alice, '/home/alice/proj', 'bob', 'read');
      expect(await codeOf(t.vault.putGrant(alice, '/home/alice', 'bob', 'read'))).toBe('PERMISSION_DENIED');
      const { dek, blobId } = await upload(alice, '/home/alice/proj/data.bin', new Uint8Array([7, 7]));
      // bob reads (inherited grant) but cannot write
      expect((await t.vault.list(bob, '/home/alice/proj')).items).toHaveLength(1);
      expect(await codeOf(t.vault.list(bob, '/home/alice'))).toBe('PERMISSION_DENIED');
      expect(await codeOf(t.vault.mkdir(bob, '/home/alice/proj/x'))).toBe('PERMISSION_DENIED');
      expect(await codeOf(t.vault.remove(bob, '/home/alice/proj/data.bin'))).toBe('PERMISSION_DENIED');
      const m = await t.vault.manifestByBlob(bob, blobId);
      const c = await t.vault.readChunk(bob, blobId, 0);
      const sealed = await buffer(c.stream!);
      expect(m.chunks[0]?.storedSize).toBe(sealed.length);
      expect(Array.from(await openChunk(dek, new Uint8Array(sealed), { blobId: blobIdFromHex(blobId), index: 0, keyGeneration: 1 }))).toEqual([7, 7]);
      // a stranger can neither stat nor fetch by blob id
      const eve: Actor = { user: 'eve', admin: false };
      expect(await codeOf(t.vault.stat(eve, '/home/alice/proj/data.bin'))).toBe('PERMISSION_DENIED');
      expect(await codeOf(t.vault.manifestByBlob(eve, blobId))).toBe('PERMISSION_DENIED');
      await t.vault.deleteGrant(alice, '/home/alice/proj', 'bob');
      expect(await codeOf(t.vault.manifestByBlob(bob, blobId))).toBe('PERMISSION_DENIED');
      expect(await t.vault.listGrants(root, '/home/alice')).toMatchObject([{ user: 'alice', role: 'write' }]);
    });
  });

  describe('uploads', () => {
    beforeEach(async () => {
      t = await openTestVault({ defaultRootRole: 'write', mongoUri });
    });

    it('a two-chunk upload commits, is invisible before, and reads back', async () => {
      const data = randomBytes(CHUNK_SIZE + 1000);
      const blobId = newBlobHex();
      const dek = newDek();
      await t.vault.createUpload(alice, { path: '/big', blobId, keyGeneration: 1, keyRecord, size: data.length });
      const [c0, c1] = await sealAll(dek, blobId, data);
      await t.vault.putChunk(alice, blobId, 1, once(c1!), c1!.length);
      expect((await t.vault.list(alice, '/')).items).toEqual([]);
      expect(await codeOf(t.vault.commitUpload(alice, blobId, { chunkCount: 2, size: data.length }))).toBe('UPLOAD_INCOMPLETE');
      expect(await codeOf(t.vault.putChunk(bob, blobId, 0, once(c0!), c0!.length))).toBe('PERMISSION_DENIED');
      await t.vault.putChunk(alice, blobId, 0, once(c0!), c0!.length);
      expect((await t.vault.getUpload(alice, blobId)).chunks.map((c) => c.index)).toEqual([0, 1]);
      const r = await t.vault.commitUpload(alice, blobId, { chunkCount: 2, size: data.length });
      expect(r.node).toMatchObject({ path: '/big', size: data.length, blobId });
      expect(r.manifest.chunks.map((c) => c.plaintextLength)).toEqual([CHUNK_SIZE, 1000]);
      // idempotent commit
      expect((await t.vault.commitUpload(alice, blobId, { chunkCount: 2, size: data.length })).node.id).toBe(r.node.id);
      expect(await codeOf(t.vault.putChunk(alice, blobId, 0, once(c0!), c0!.length))).toBe('UPLOAD_STATE');
    });

    it('creating an upload again with the same request answers the same upload (a retry after a lost answer); any other request under its id is ALREADY_EXISTS', async () => {
      const blobId = newBlobHex();
      const req = { path: '/again', blobId, keyGeneration: 1, keyRecord, size: 10, source: 'tag-1' };
      await t.vault.createUpload(alice, req);
      const dek = newDek();
      await t.vault.putChunk(alice, blobId, 0, once(await seal(dek, blobId, 0, new Uint8Array(10), true)), 10 + 64);
      const again = await t.vault.createUpload(alice, req);
      expect([again.blobId, again.state, again.chunks.map((c) => c.index)]).toEqual([blobId, 'uploading', [0]]);
      for (const other of [{ ...req, path: '/elsewhere' }, { ...req, keyRecord: { scheme: 'test', wrapped: 'y' } }, { ...req, size: 11 }, { ...req, source: 'tag-2' }, { ...req, overwrite: true }]) {
        expect(await codeOf(t.vault.createUpload(alice, other))).toBe('ALREADY_EXISTS');
      }
      expect(await codeOf(t.vault.createUpload(bob, req))).toBe('ALREADY_EXISTS'); // someone else's id
      const entries = (await t.store.listAudit(0, 1000)).filter((e) => e.action === 'upload.create' && e.details?.blobId === blobId);
      expect(entries.map((e) => e.details?.repeated ?? false)).toEqual([false, true]); // the repeat is audited, marked
    });

    it('refuses bad chunks before storing anything', async () => {
      const blobId = newBlobHex();
      const other = newBlobHex();
      const dek = newDek();
      await t.vault.createUpload(alice, { path: '/f', blobId, keyGeneration: 1, keyRecord });
      const good = await seal(dek, blobId, 0, new Uint8Array(10), true);
      const otherChunk = await seal(dek, other, 0, new Uint8Array(10), true);
      const gen2Chunk = await seal(dek, blobId, 0, new Uint8Array(10), true, 2);
      const cases: Array<[string, () => Promise<unknown>]> = [
        ['CHUNK_FORMAT', () => t.vault.putChunk(alice, blobId, 0, once(new Uint8Array(good.length)), good.length)],
        ['CHUNK_MISMATCH', () => t.vault.putChunk(alice, blobId, 0, once(otherChunk), good.length)],
        ['CHUNK_MISMATCH', () => t.vault.putChunk(alice, blobId, 1, once(good), good.length)],
        ['CHUNK_MISMATCH', () => t.vault.putChunk(alice, blobId, 0, once(gen2Chunk), good.length)],
        ['CHUNK_MISMATCH', () => t.vault.putChunk(alice, blobId, 0, once(good), good.length + 1)],
        ['CHUNK_MISMATCH', () => t.vault.putChunk(alice, blobId, 0, once(good.subarray(0, 20)), good.length)],
        ['PAYLOAD_TOO_LARGE', () => t.vault.putChunk(alice, blobId, 0, once(good), CHUNK_SIZE + 65)],
      ];
      for (const [expected, f] of cases) expect(await codeOf(f())).toBe(expected);
      expect(await t.chunks.list(blobId)).toEqual([]);
      expect((await t.vault.getUpload(alice, blobId)).chunks).toEqual([]);
      // a stream that ends early leaves nothing either (ChunkStore expectedSize)
      expect(await codeOf(t.vault.putChunk(alice, blobId, 0, once(good.subarray(0, good.length - 1))))).toBe('CHUNK_MISMATCH');
      expect(await t.chunks.list(blobId)).toEqual([]);
      await t.vault.putChunk(alice, blobId, 0, once(good), good.length);
      expect((await t.vault.commitUpload(alice, blobId, { chunkCount: 1, size: 10 })).node.size).toBe(10);
    });

    it('commit refuses two FINALs, no FINAL and a wrong size', async () => {
      const dek = newDek();
      const full = new Uint8Array(CHUNK_SIZE);
      // no FINAL: a single non-final chunk
      const b1 = newBlobHex();
      await t.vault.createUpload(alice, { path: '/nofinal', blobId: b1, keyGeneration: 1, keyRecord });
      const nf = await seal(dek, b1, 0, full, false);
      await t.vault.putChunk(alice, b1, 0, once(nf), nf.length);
      expect(await codeOf(t.vault.commitUpload(alice, b1, { chunkCount: 1, size: CHUNK_SIZE }))).toBe('CHUNK_MISMATCH');
      // two FINALs: the second is refused at PUT time, and commit with only the first is a size/layout mismatch
      const b2 = newBlobHex();
      await t.vault.createUpload(alice, { path: '/twofinal', blobId: b2, keyGeneration: 1, keyRecord });
      const f0 = await seal(dek, b2, 0, full, true);
      const f1 = await seal(dek, b2, 1, new Uint8Array(5), true);
      await t.vault.putChunk(alice, b2, 0, once(f0), f0.length);
      expect(await codeOf(t.vault.putChunk(alice, b2, 1, once(f1), f1.length))).toBe('CHUNK_MISMATCH');
      expect(await codeOf(t.vault.commitUpload(alice, b2, { chunkCount: 2, size: CHUNK_SIZE + 5 }))).toBe('UPLOAD_INCOMPLETE');
      expect(await codeOf(t.vault.commitUpload(alice, b2, { chunkCount: 1, size: CHUNK_SIZE + 5 }))).toBe('CHUNK_MISMATCH');
      expect(await codeOf(t.vault.commitUpload(alice, b2, { chunkCount: 1, size: 5 }))).toBe('CHUNK_MISMATCH');
      expect((await t.vault.commitUpload(alice, b2, { chunkCount: 1, size: CHUNK_SIZE })).node.size).toBe(CHUNK_SIZE);
      expect((await t.vault.list(alice, '/')).items.map((n) => n.name)).toEqual(['twofinal']);
    });

    it('commit refuses a chunk the store lost', async () => {
      const blobId = newBlobHex();
      await t.vault.createUpload(alice, { path: '/lost', blobId, keyGeneration: 1, keyRecord });
      const c = await seal(newDek(), blobId, 0, new Uint8Array(3), true);
      await t.vault.putChunk(alice, blobId, 0, once(c), c.length);
      await t.chunks.delete({ blobId, index: 0 });
      expect(await codeOf(t.vault.commitUpload(alice, blobId, { chunkCount: 1, size: 3 }))).toBe('CHUNK_MISSING');
    });

    it('overwrite only when asked; old blob collected; stale uploads expire; abort', async () => {
      const { blobId: old } = await upload(alice, '/doc', new Uint8Array([1]));
      expect(await codeOf(upload(alice, '/doc', new Uint8Array([2])))).toBe('ALREADY_EXISTS');
      await t.vault.mkdir(alice, '/dir');
      expect(await codeOf(upload(alice, '/dir', new Uint8Array([2]), { overwrite: true }))).toBe('IS_A_DIRECTORY');
      const { blobId: fresh } = await upload(alice, '/doc', new Uint8Array([2]), { overwrite: true });
      expect((await t.vault.stat(alice, '/doc')).blobId).toBe(fresh);
      expect((await t.store.getBlob(old))?.state).toBe('deleting');

      const stale = newBlobHex();
      await t.vault.createUpload(alice, { path: '/stale', blobId: stale, keyGeneration: 1, keyRecord });
      const c = await seal(newDek(), stale, 0, new Uint8Array(3), true);
      await t.vault.putChunk(alice, stale, 0, once(c), c.length);
      const aborted = newBlobHex();
      await t.vault.createUpload(alice, { path: '/aborted', blobId: aborted, keyGeneration: 1, keyRecord });
      await t.vault.abortUpload(alice, aborted);
      expect(await codeOf(t.vault.abortUpload(bob, aborted))).toBe('PERMISSION_DENIED');

      const early = await t.vault.runGc(new Date());
      expect(early).toMatchObject({ expiredUploads: 0, purgedBlobs: 2 }); // old + aborted
      expect((await t.store.getBlob(stale))?.state).toBe('uploading');
      const later = await t.vault.runGc(new Date(Date.now() + 25 * 3600 * 1000));
      expect(later).toMatchObject({ expiredUploads: 1, purgedBlobs: 1 });
      expect(await t.store.getBlob(stale)).toBeNull();
      expect(await t.chunks.list(stale)).toEqual([]);
      expect(await t.store.listUploadChunks(stale)).toEqual([]);
      expect((await t.store.getBlob(fresh))?.state).toBe('committed');
      const again = await t.vault.runGc(new Date(Date.now() + 25 * 3600 * 1000));
      expect(again).toMatchObject({ expiredUploads: 0, purgedBlobs: 0, orphanedBlobs: 0 });
      expect((await t.vault.verifyAudit()).ok).toBe(true);
    });

    it('GC and recursive remove finish the job after an interruption', async () => {
      // GC interrupted after deleting the chunks but before the records
      const { blobId } = await upload(alice, '/g', new Uint8Array([1, 2, 3]));
      await t.vault.remove(alice, '/g');
      await t.chunks.deleteBlob(blobId);
      expect((await t.vault.runGc(new Date())).purgedBlobs).toBe(1);
      expect(await t.store.getBlob(blobId)).toBeNull();
      // chunks whose blob record is gone (a PUT that raced a purge) are swept
      const stray = newBlobHex();
      const c = await seal(newDek(), stray, 0, new Uint8Array(1), true);
      await t.chunks.put({ blobId: stray, index: 0 }, once(c));
      expect((await t.vault.runGc(new Date())).strayChunkBlobs).toBe(1);
      expect(await t.chunks.list(stray)).toEqual([]);
      // a recursive remove interrupted half-way (some children already gone) completes when re-run
      await t.vault.mkdir(alice, '/tree/a/b', { parents: true });
      await upload(alice, '/tree/a/f1', new Uint8Array([1]));
      const { blobId: f2 } = await upload(alice, '/tree/a/b/f2', new Uint8Array([2]));
      const b = await t.vault.stat(alice, '/tree/a/b');
      const f2node = (await t.vault.stat(alice, '/tree/a/b/f2'));
      await t.store.deleteNode(f2node.id); // the first step of an earlier run
      expect((await t.vault.remove(alice, '/tree', { recursive: true })).removed).toBe(4);
      expect(await codeOf(t.vault.stat(alice, '/tree'))).toBe('NOT_FOUND');
      expect(await t.store.getNode(b.id)).toBeNull();
      // f2's node vanished before its blob was released: the orphan sweep catches it after the grace period
      const later = await t.vault.runGc(new Date(Date.now() + 25 * 3600 * 1000));
      expect(later.orphanedBlobs).toBe(1);
      expect(await t.store.getBlob(f2)).toBeNull();
    });

    it('GC releases a committed blob no file points to (interrupted commit) after the grace period', async () => {
      const blobId = newBlobHex();
      await t.vault.createUpload(alice, { path: '/o', blobId, keyGeneration: 1, keyRecord });
      const c = await seal(newDek(), blobId, 0, new Uint8Array(3), true);
      await t.vault.putChunk(alice, blobId, 0, once(c), c.length);
      // simulate a crash between "blob committed" and "path bound"
      await t.store.updateBlob(blobId, 'uploading', { state: 'committed', size: 3, chunkCount: 1, chunkSha256: ['00'] });
      expect((await t.vault.runGc(new Date())).orphanedBlobs).toBe(0);
      const r = await t.vault.runGc(new Date(Date.now() + 25 * 3600 * 1000));
      expect(r).toMatchObject({ orphanedBlobs: 1, purgedBlobs: 1 });
    });
  });
});
