// Interleavings that the vault must survive without transactions, forced with real stores: a Proxy around the
// real metadata store pauses one operation at a chosen call while another runs, so each race happens every
// time. Found by an audit of the commit protocol, the tree operations and GC (session 4).
import { afterEach, describe, expect, inject, it } from 'vitest';
import { symlink, rename } from 'node:fs/promises';
import path from 'node:path';
import type { MetadataStore } from '../metadata/types.js';
import type { Actor } from './context.js';
import { newBlobHex, newDek, once, openTestVault, sealAll, type TestVault } from './test-env.js';
import { DEFAULT_UPLOAD_GRACE_MS, Vault } from './vault.js';

const alice: Actor = { user: 'alice', admin: false };
const keyRecord = { scheme: 'test', wrapped: 'x' };
const mongoUri = inject('mongoUri');
const backends: Array<[string, string | null]> = [['sqlite', null], ['mongo', mongoUri]];

type Hook = (method: string, args: unknown[]) => Promise<void> | void;

/** The real store, with `hook` run before every call (methods bound to the real store: private fields). */
function hooked(store: MetadataStore, hook: { before?: Hook; after?: Hook }): MetadataStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function') return v;
      return async (...args: unknown[]) => {
        await hook.before?.(String(prop), args);
        const r = await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        await hook.after?.(String(prop), args);
        return r;
      };
    },
  });
}

function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

describe.each(backends)('races on metadata %s', (kind, mongoUri) => {
  if (kind === 'mongo' && !mongoUri) {
    it.skip(`MongoDB-wire server unavailable: ${inject('mongoUnavailableReason')}`, () => undefined);
    return;
  }
  let t: TestVault;
  afterEach(async () => t.close());

  async function staged(vault: Vault, path: string, data: Uint8Array, overwrite = false): Promise<string> {
    const blobId = newBlobHex();
    await vault.createUpload(alice, { path, blobId, keyGeneration: 1, keyRecord, overwrite, size: data.length });
    const sealed = await sealAll(newDek(), blobId, data);
    for (const [i, c] of sealed.entries()) await vault.putChunk(alice, blobId, i, once(c), c.length);
    return blobId;
  }

  /**
   * Marks "now" and returns a clock for GC that is one grace period later: every blob last written before the
   * call counts as idle for the whole grace period, every blob touched after it does not.
   */
  async function pastGrace(): Promise<() => Date> {
    await new Promise((r) => setTimeout(r, 3)); // the blobs written so far are strictly older than the mark
    const mark = Date.now();
    await new Promise((r) => setTimeout(r, 3)); // and every later touch strictly newer
    return () => new Date(mark + DEFAULT_UPLOAD_GRACE_MS);
  }

  /** A vault on which the first two commits of `blobId` both look for a node bound to it before either binds. */
  async function bothLookBeforeEitherBinds(blobId: string): Promise<Vault> {
    let waiting = 0;
    const both = gate();
    return Vault.open(hooked(t.store, {
      after: async (m, args) => {
        if (m === 'findNodesByBlob' && args[0] === blobId && waiting < 2) {
          waiting++;
          if (waiting === 2) both.open();
          await both.wait;
        }
      },
    }), t.chunks, { defaultRootRole: 'write' });
  }

  it('two commits of one blob at once (a client retrying after a timeout) both succeed and the old file is the one released', async () => {
    t = await openTestVault({ defaultRootRole: 'write', mongoUri });
    const x = await staged(t.vault, '/f', Buffer.from('old'));
    await t.vault.commitUpload(alice, x, { chunkCount: 1, size: 3 });
    const a = await staged(t.vault, '/f', Buffer.from('new!'), true);
    const vault = await bothLookBeforeEitherBinds(a);
    const rs = await Promise.all([1, 2].map(() => vault.commitUpload(alice, a, { chunkCount: 1, size: 4 })));
    expect(rs.map((r) => r.node.blobId)).toEqual([a, a]);
    expect((await t.vault.stat(alice, '/f')).blobId).toBe(a);
    expect((await t.store.getBlob(a))?.state).toBe('committed');
    expect((await t.store.getBlob(x))?.state).toBe('deleting');
    await t.vault.runGc(new Date());
    expect((await t.vault.manifestByPath(alice, '/f')).manifest.size).toBe(4);
  });

  it('two commits of one new file at once: neither fails with ALREADY_EXISTS', async () => {
    t = await openTestVault({ defaultRootRole: 'write', mongoUri });
    const a = await staged(t.vault, '/new', Buffer.from('abc'));
    const vault = await bothLookBeforeEitherBinds(a);
    const rs = await Promise.allSettled([1, 2].map(() => vault.commitUpload(alice, a, { chunkCount: 1, size: 3 })));
    expect(rs.map((r) => (r.status === 'fulfilled' ? r.value.node.blobId : String(r.reason)))).toEqual([a, a]);
  });

  it('a commit that finds no node for its blob, then the path bound to it by a racing commit, returns that node', async () => {
    t = await openTestVault({ defaultRootRole: 'write', mongoUri });
    const a = await staged(t.vault, '/new', Buffer.from('abc'));
    const looked = gate();
    const resume = gate();
    const vault = await Vault.open(hooked(t.store, {
      after: async (m, args) => {
        if (m === 'findNodesByBlob' && args[0] === a) {
          looked.open();
          await resume.wait;
        }
      },
    }), t.chunks, { defaultRootRole: 'write' });
    const late = vault.commitUpload(alice, a, { chunkCount: 1, size: 3 }).then((r) => r.node.blobId, (e: unknown) => String(e));
    await looked.wait; // the late commit saw no node bound to the blob
    await t.vault.commitUpload(alice, a, { chunkCount: 1, size: 3 }); // the racing commit binds /new
    resume.open();
    expect(await late).toBe(a);
    expect((await t.vault.stat(alice, '/new')).blobId).toBe(a);
    expect((await t.store.getBlob(a))?.state).toBe('committed');
  });

  it('a stale commit retry never rebinds a blob that a later upload replaced and GC purged', async () => {
    t = await openTestVault({ defaultRootRole: 'write', mongoUri });
    const x = await staged(t.vault, '/f', Buffer.from('X'));
    await t.vault.commitUpload(alice, x, { chunkCount: 1, size: 1 });
    const a = await staged(t.vault, '/f', Buffer.from('A content'), true);
    await t.vault.commitUpload(alice, a, { chunkCount: 1, size: 9 }); // done, but the client never heard
    const b = await staged(t.vault, '/f', Buffer.from('B content!!'), true);
    const paused = gate();
    const reached = gate();
    let armed = true;
    const vault = await Vault.open(hooked(t.store, {
      before: async (m, args) => {
        if (armed && m === 'findNodesByBlob' && args[0] === a) {
          armed = false;
          reached.open();
          await paused.wait;
        }
      },
    }), t.chunks, { defaultRootRole: 'write' });
    const retry = vault.commitUpload(alice, a, { chunkCount: 1, size: 9 }).then(() => 'OK', (e: { code?: string }) => e.code);
    await reached.wait; // the retry has read A as committed
    await t.vault.commitUpload(alice, b, { chunkCount: 1, size: 11 }); // B replaces /f, releasing A
    await t.vault.runGc(new Date()); // A's chunks and record are purged
    paused.open();
    expect(await retry).toBe('UPLOAD_STATE');
    expect((await t.vault.stat(alice, '/f')).blobId).toBe(b);
    await t.vault.runGc(new Date());
    expect((await t.store.getBlob(b))?.state).toBe('committed');
    expect((await t.vault.manifestByPath(alice, '/f')).manifest.size).toBe(11);
    expect((await t.vault.fsck({ readData: true })).errors).toBe(0);
  });

  it('a blob released between the bind and its re-check is unbound: the path points at what it had', async () => {
    t = await openTestVault({ defaultRootRole: 'write', mongoUri });
    const x = await staged(t.vault, '/f', Buffer.from('X'));
    await t.vault.commitUpload(alice, x, { chunkCount: 1, size: 1 });
    const a = await staged(t.vault, '/f', Buffer.from('AA'), true);
    const oldEnough = await pastGrace(); // X is older than the grace period from here on
    let armed = true;
    const vault = await Vault.open(hooked(t.store, {
      after: async (m, args) => {
        // right after the node now points at A, something releases A (an abort, GC's orphan sweep)
        if (armed && m === 'updateNode' && (args[2] as { blobId?: string }).blobId === a) {
          armed = false;
          await t.store.updateBlob(a, 'committed', { state: 'deleting' });
          // and a GC pass finds X referenced by nothing: the commit held it, so the orphan sweep leaves it
          expect((await t.vault.runGc(oldEnough())).orphanedBlobs).toBe(0);
        }
      },
    }), t.chunks, { defaultRootRole: 'write' });
    await expect(vault.commitUpload(alice, a, { chunkCount: 1, size: 2 })).rejects.toMatchObject({ code: 'UPLOAD_STATE' });
    expect((await t.vault.stat(alice, '/f')).blobId).toBe(x);
    expect((await t.store.getBlob(x))?.state).toBe('committed'); // the old file was not released
    expect((await t.vault.manifestByPath(alice, '/f')).manifest.size).toBe(1);
  });

  it('a commit --overwrite whose target file is removed meanwhile binds the path anew', async () => {
    t = await openTestVault({ defaultRootRole: 'write', mongoUri });
    const x = await staged(t.vault, '/f', Buffer.from('X'));
    await t.vault.commitUpload(alice, x, { chunkCount: 1, size: 1 });
    const a = await staged(t.vault, '/f', Buffer.from('AA'), true);
    let armed = true;
    const vault = await Vault.open(hooked(t.store, {
      before: async (m, args) => {
        if (armed && m === 'updateNode' && (args[2] as { blobId?: string }).blobId === a) {
          armed = false;
          await t.vault.remove(alice, '/f'); // the file the commit is about to repoint goes
        }
      },
    }), t.chunks, { defaultRootRole: 'write' });
    expect((await vault.commitUpload(alice, a, { chunkCount: 1, size: 2 })).node.blobId).toBe(a);
    expect((await t.vault.manifestByPath(alice, '/f')).manifest.size).toBe(2);
    expect((await t.store.getBlob(x))?.state).toBe('deleting'); // released by the remove, once
  });

  it('a move --overwrite whose source changed meanwhile fails and puts its target back', async () => {
    t = await openTestVault({ defaultRootRole: 'write', mongoUri });
    const s = await staged(t.vault, '/src', Buffer.from('src'));
    await t.vault.commitUpload(alice, s, { chunkCount: 1, size: 3 });
    const d = await staged(t.vault, '/dst', Buffer.from('dst!'));
    await t.vault.commitUpload(alice, d, { chunkCount: 1, size: 4 });
    const s2 = await staged(t.vault, '/src', Buffer.from('src2'), true);
    const oldEnough = await pastGrace(); // the target's blob is older than the grace period from here on
    let armed = true;
    const vault = await Vault.open(hooked(t.store, {
      after: async (m) => {
        // the target is gone; now another writer commits a new version of the source
        if (armed && m === 'deleteNode') {
          armed = false;
          await t.vault.commitUpload(alice, s2, { chunkCount: 1, size: 4 });
          // and a GC pass finds the target's blob referenced by nothing: the move held it, so the sweep leaves it
          expect((await t.vault.runGc(oldEnough())).orphanedBlobs).toBe(0);
        }
      },
    }), t.chunks, { defaultRootRole: 'write' });
    await expect(vault.move(alice, '/src', '/dst', { overwrite: true })).rejects.toMatchObject({ code: 'CONFLICT' });
    expect((await t.vault.stat(alice, '/dst')).blobId).toBe(d);
    expect((await t.vault.stat(alice, '/src')).blobId).toBe(s2);
    await t.vault.runGc(new Date(Date.now() + 25 * 3600_000));
    expect((await t.store.getBlob(d))?.state).toBe('committed');
    expect((await t.vault.manifestByPath(alice, '/dst')).manifest.size).toBe(4);
  });

  it('a move --overwrite whose target a concurrent remove deleted first, then whose source changed, does not bring the target back', async () => {
    t = await openTestVault({ defaultRootRole: 'write', mongoUri });
    const s = await staged(t.vault, '/src', Buffer.from('S'));
    await t.vault.commitUpload(alice, s, { chunkCount: 1, size: 1 });
    const d = await staged(t.vault, '/dst', Buffer.from('D'));
    await t.vault.commitUpload(alice, d, { chunkCount: 1, size: 1 });
    const dstId = (await t.vault.stat(alice, '/dst')).id;
    let armed = true;
    const vault = await Vault.open(hooked(t.store, {
      before: async (m, args) => {
        if (armed && m === 'deleteNode' && args[0] === dstId) {
          armed = false;
          expect(await t.vault.remove(alice, '/dst')).toEqual({ removed: 1 }); // the remove wins the target
          await t.vault.move(alice, '/src', '/src2'); // and the source changes: the move's update will CONFLICT
        }
      },
    }), t.chunks, { defaultRootRole: 'write' });
    await expect(vault.move(alice, '/src', '/dst', { overwrite: true })).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(t.vault.stat(alice, '/dst')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect((await t.store.getBlob(d))?.state).toBe('deleting');
    const actions = (await t.store.listAudit(0, 1000)).map((e) => e.action);
    expect(actions.filter((a) => a === 'blob.release')).toHaveLength(1);
  });

  it('GC goes on past a blob whose chunks cannot be deleted, reports it, and purges it once it can', async () => {
    t = await openTestVault({ defaultRootRole: 'write', mongoUri });
    const a = await staged(t.vault, '/a', Buffer.from('aaa'));
    await t.vault.abortUpload(alice, a);
    const b = await staged(t.vault, '/b', Buffer.from('bbb'));
    await t.vault.abortUpload(alice, b);
    // a's chunk directory is now a symlink, which the store refuses to follow or remove
    const dir = path.join(t.dir, 'store', 'chunks', a.slice(0, 2), a.slice(2, 4), a);
    await rename(dir, `${dir}.moved`);
    await symlink(`${dir}.moved`, dir);
    const r = await t.vault.runGc(new Date());
    expect(r.failed.map((f) => f.blobId)).toEqual([a]);
    expect(r.purgedBlobs).toBe(1);
    expect(await t.store.getBlob(b)).toBeNull();
    expect((await t.store.getBlob(a))?.state).toBe('deleting');
    await rename(`${dir}.moved`, `${dir}.gone`); // the link now dangles; an admin removed the odd directory
    await import('node:fs/promises').then((fs) => fs.unlink(dir));
    const again = await t.vault.runGc(new Date());
    expect(again.failed).toEqual([]);
    expect(await t.store.getBlob(a)).toBeNull();
  });

  it('a chunk PUT still streaming when its upload commits never replaces the committed chunk file', async () => {
    t = await openTestVault({ defaultRootRole: 'write', mongoUri });
    const blobId = newBlobHex();
    const dek = newDek();
    await t.vault.createUpload(alice, { path: '/g', blobId, keyGeneration: 1, keyRecord }); // size not declared
    const [small] = await sealAll(dek, blobId, Buffer.alloc(100, 1));
    const [large] = await sealAll(dek, blobId, Buffer.alloc(200, 2));
    await t.vault.putChunk(alice, blobId, 0, once(small!), small!.length);
    const go = gate();
    const streaming = gate();
    async function* slow(): AsyncIterable<Uint8Array> {
      yield large!.subarray(0, 48);
      streaming.open(); // asked for more than the header: the chunk store is writing it
      await go.wait;
      yield large!.subarray(48);
    }
    const late = t.vault.putChunk(alice, blobId, 0, slow(), large!.length).then(() => 'OK', (e: { code?: string }) => e.code);
    await streaming.wait; // the late PUT has passed its state check and is streaming
    const { manifest } = await t.vault.commitUpload(alice, blobId, { chunkCount: 1, size: 100 });
    go.open();
    expect(await late).toBe('UPLOAD_STATE');
    expect((await t.chunks.stat({ blobId, index: 0 }))?.size).toBe(manifest.chunks[0]!.storedSize);
    expect((await t.vault.fsck({ readData: true })).errors).toBe(0);
  });

  it('a chunk PUT whose upload is aborted and purged between its chunk file and its record leaves no record behind', async () => {
    t = await openTestVault({ defaultRootRole: 'write', mongoUri });
    const blobId = newBlobHex();
    await t.vault.createUpload(alice, { path: '/h', blobId, keyGeneration: 1, keyRecord });
    const [c] = await sealAll(newDek(), blobId, Buffer.from('late'));
    const reached = gate();
    const resume = gate();
    const vault = await Vault.open(hooked(t.store, {
      before: async (m) => {
        if (m === 'putUploadChunk') {
          reached.open();
          await resume.wait;
        }
      },
    }), t.chunks, { defaultRootRole: 'write' });
    const late = vault.putChunk(alice, blobId, 0, once(c!), c!.length).then(() => 'OK', (e: { code?: string }) => e.code);
    await reached.wait; // the chunk file is stored; its record is not written yet
    await t.vault.abortUpload(alice, blobId);
    expect((await t.vault.runGc(new Date())).purgedBlobs).toBe(1);
    resume.open();
    expect(await late).toBe('NOT_FOUND');
    expect(await t.store.listUploadChunks(blobId)).toEqual([]);
    expect(await t.chunks.stat({ blobId, index: 0 })).toBeNull();
  });

  /** The vault on `t.store` on which the first two calls of `method` (matching `which`) wait for each other. */
  async function bothReach(method: string, which: (args: unknown[]) => boolean = () => true): Promise<Vault> {
    let waiting = 0;
    const both = gate();
    return Vault.open(hooked(t.store, {
      before: async (m, args) => {
        if (m === method && which(args) && waiting < 2) {
          waiting++;
          if (waiting === 2) both.open();
          await both.wait;
        }
      },
    }), t.chunks, { defaultRootRole: 'write' });
  }

  async function auditActions(): Promise<string[]> {
    return (await t.store.listAudit(0, 1000)).map((e) => e.action);
  }

  it('two removes of one file at once: one removes it (audited once, blob released once), the other is NOT_FOUND', async () => {
    t = await openTestVault({ defaultRootRole: 'write', mongoUri });
    const x = await staged(t.vault, '/f', Buffer.from('X'));
    await t.vault.commitUpload(alice, x, { chunkCount: 1, size: 1 });
    const vault = await bothReach('deleteNode');
    const rs = await Promise.allSettled([1, 2].map(() => vault.remove(alice, '/f')));
    expect(rs.map((r) => (r.status === 'fulfilled' ? r.value.removed : (r.reason as { code: string }).code)).sort()).toEqual([1, 'NOT_FOUND']);
    const actions = await auditActions();
    expect(actions.filter((a) => a === 'file.remove')).toHaveLength(1);
    expect(actions.filter((a) => a === 'blob.release')).toHaveLength(1);
  });

  it('two GC passes at once (two replicas) expire, release and purge each blob once, audited once', async () => {
    t = await openTestVault({ defaultRootRole: 'write', mongoUri });
    await staged(t.vault, '/stale', Buffer.from('S')); // an upload nobody finishes
    const gone = await staged(t.vault, '/gone', Buffer.from('G'));
    await t.vault.commitUpload(alice, gone, { chunkCount: 1, size: 1 });
    await t.vault.remove(alice, '/gone'); // released: 'deleting'
    const later = new Date(Date.now() + DEFAULT_UPLOAD_GRACE_MS + 60_000);
    const vault = await bothReach('updateBlob'); // both passes have listed the stale upload before either expires it
    const [r1, r2] = await Promise.all([vault.runGc(later), vault.runGc(later)]);
    expect(r1.expiredUploads + r2.expiredUploads).toBe(1);
    expect(r1.purgedBlobs + r2.purgedBlobs).toBe(2);
    const actions = await auditActions();
    expect(actions.filter((a) => a === 'gc.expire-upload')).toHaveLength(1);
    expect(actions.filter((a) => a === 'gc.purge')).toHaveLength(2);
  });

  it('GC does not expire an upload that stored a chunk after GC listed it as stale', async () => {
    t = await openTestVault({ defaultRootRole: 'write', mongoUri, uploadGraceMs: 200 });
    const a = await staged(t.vault, '/slow', Buffer.from('x')); // updatedAt = now
    const passStart = Date.now();
    let armed = true;
    const vault = await Vault.open(hooked(t.store, {
      after: async (m, args) => {
        // GC listed the upload as idle; the owner stores a chunk now (which touches updatedAt) before GC acts
        if (armed && m === 'listBlobsByState' && args[0] === 'uploading') {
          armed = false;
          await new Promise((r) => setTimeout(r, Math.max(0, passStart + 150 - Date.now())));
          await t.store.updateBlob(a, 'uploading', {});
        }
      },
    }), t.chunks, { defaultRootRole: 'write', uploadGraceMs: 200 });
    const r = await vault.runGc(new Date(passStart + 300)); // grace edge: passStart + 100, after the first touch
    expect(r.expiredUploads).toBe(0);
    expect((await t.store.getBlob(a))?.state).toBe('uploading');
  });
});

