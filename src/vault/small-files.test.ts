// The batch read (readSmallFiles, over a chunk store with packs and over one without) against one getSmallFile
// per path, on each real metadata store: the same answer for every path (node, manifest, sealed bytes, or the
// same error code and message), whoever asks and whatever the path, while the metadata is read by rounds of a
// group's files (getChildren, getBlobs, one listGrants) instead of per file; a failed round leaves each file to
// its own read.
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { randomBytes } from 'node:crypto';
import { CHUNK_SIZE } from '../crypto/index.js';
import { CofferError, ErrorCode } from '../errors.js';
import type { Actor } from './context.js';
import { Vault } from './vault.js';
import type { BatchReadItem } from './small-files.js';
import { newBlobHex, newDek, once, openTestVault, sealAll, type TestVault } from './test-env.js';

const root: Actor = { user: 'root', admin: true };
const alice: Actor = { user: 'alice', admin: false };
const bob: Actor = { user: 'bob', admin: false };
const carol: Actor = { user: 'carol', admin: false };
const keyRecord = { scheme: 'test', wrapped: 'x' };

const mongoUri = inject('mongoUri');
const backends: Array<[string, string | null]> = [['sqlite', null], ['mongo', mongoUri]];

/** 70 files of /a (more than one group), then every other kind of path, mixed across directories. */
const A_FILES = Array.from({ length: 70 }, (_, i) => `/a/f${i}`);
const ODD = [
  '/b/g0', '/a/f3', '/a/f3', '/a/f1/x', '/zz/q', '/a/none', '/', '/a', '/a/open', 'rel/x', '/a/./f1', '/b/g1',
  '/a/open/shared', '/a/gone', '/a/two', '/a/big0', '/a/big1', '/a/big2', '/a/big3', '/a/big4', '/c/d', '/c/d/h', '/b/g2',
  '/a/empty', '/a/f1/x/y', '/b/g1', '/a/f69',
];

const P_FILES = Array.from({ length: 12 }, (_, i) => `/p/p${i}`);
let packedBlob = '';

type Answer = { code: string; message: string } | { node: unknown; manifest: unknown; sealed: string | null };

function answerOf(item: BatchReadItem): Answer {
  if ('error' in item) return { code: item.error.code, message: item.error.message };
  const { node, manifest, sealed } = item.read;
  return { node, manifest, sealed: sealed ? Buffer.from(sealed).toString('base64') : null };
}

describe.each(backends)('batch read on metadata %s', (kind, mongoUri) => {
  if (kind === 'mongo' && !mongoUri) {
    it.skip(`MongoDB-wire server unavailable: ${inject('mongoUnavailableReason')}`, () => undefined);
    return;
  }
  let t: TestVault;
  /** The same vault over a chunk store without packedLocation / readPackRange (as S3): the batch read's other path. */
  let plain: Vault;

  async function put(actor: Actor, path: string, size: number): Promise<string> {
    const blobId = newBlobHex();
    const sealed = await sealAll(newDek(), blobId, randomBytes(size));
    if (sealed.length === 1) {
      await t.vault.putSmallFile(actor, { path, blobId, keyGeneration: 1, keyRecord, size }, once(sealed[0]!), sealed[0]!.length);
      return blobId;
    }
    await t.vault.createUpload(actor, { path, blobId, keyGeneration: 1, keyRecord, size });
    for (const [i, s] of sealed.entries()) await t.vault.putChunk(actor, blobId, i, once(s), s.length);
    await t.vault.commitUpload(actor, blobId, { chunkCount: sealed.length, size });
    return blobId;
  }

  beforeAll(async () => {
    t = await openTestVault({ defaultRootRole: 'none', mongoUri });
    for (const d of ['/a/open', '/b', '/c/d']) await t.vault.mkdir(root, d, { parents: true });
    await t.vault.putGrant(root, '/a', 'alice', 'write');
    await t.vault.putGrant(root, '/a/open', 'bob', 'read');
    await t.vault.putGrant(root, '/c', 'carol', 'read');
    for (const p of A_FILES) await put(alice, p, 100 + Number(p.slice(4)));
    await put(alice, '/a/empty', 0);
    for (let i = 0; i < 5; i++) await put(alice, `/a/big${i}`, 300_000); // more than a group's bytes together
    await put(alice, '/a/two', CHUNK_SIZE + 1);
    await put(alice, '/a/open/shared', 77);
    for (let i = 0; i < 3; i++) await put(root, `/b/g${i}`, 10 + i);
    await t.vault.putGrant(root, '/b/g1', 'bob', 'read'); // a grant on the file itself
    await put(root, '/c/d/h', 5);
    // files stored together in one pack (the batch upload), as put -r stores a tree's small files
    await t.vault.mkdir(root, '/p');
    await t.vault.putGrant(root, '/p', 'alice', 'write');
    const packed = await Promise.all(P_FILES.map(async (path, i) => {
      const blobId = newBlobHex();
      const sealed = (await sealAll(newDek(), blobId, randomBytes(50 + i)))[0]!;
      return { input: { path, blobId, keyGeneration: 1, keyRecord, size: 50 + i }, sealed: Buffer.from(sealed) };
    }));
    expect((await t.vault.putSmallFiles(alice, packed)).every((r) => r.ok)).toBe(true);
    packedBlob = packed[3]!.input.blobId;
    // one whose record no longer matches its packed chunk's length: CHUNK_MISSING, alone
    await t.store.updateBlob(packed[5]!.input.blobId, 'committed', { size: 7 });
    const gone = await put(alice, '/a/gone', 9);
    await t.store.updateBlob(gone, 'committed', { state: 'deleting' }); // its node stays: "its blob is gone"
    const hidden = new Set<string | symbol>(['packedLocation', 'readPackRange']);
    const chunks = new Proxy(t.chunks, {
      get: (target, prop) => {
        if (hidden.has(prop)) return undefined;
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    plain = await Vault.open(t.store, chunks, { defaultRootRole: 'none' });
  });
  afterAll(async () => t?.close());

  async function batch(actor: Actor, paths: readonly string[], vault: Vault = t.vault): Promise<Answer[]> {
    const out: Answer[] = [];
    for await (const item of vault.readSmallFiles(actor, paths)) out.push(answerOf(item));
    return out;
  }

  async function single(actor: Actor, paths: readonly string[]): Promise<Answer[]> {
    const out: Answer[] = [];
    for (const path of paths) {
      out.push(answerOf(await t.vault.getSmallFile(actor, path).then(
        (read) => ({ path, read }),
        (error: CofferError) => ({ path, error }),
      )));
    }
    return out;
  }

  it('answers every path as getSmallFile does, for each caller', async () => {
    expect(t.chunks.packedLocation).toBeTypeOf('function'); // the grouped path is the one under test
    expect(t.chunks.packedLocation?.({ blobId: packedBlob, index: 0 })).toBeDefined();
    const paths = [...ODD.slice(0, 12), ...A_FILES, ...P_FILES, ...ODD.slice(12)];
    for (const actor of [alice, bob, carol, root]) {
      const want = await single(actor, paths);
      expect(await batch(actor, paths), actor.user).toEqual(want);
      expect(await batch(actor, paths, plain), `${actor.user}, no packs`).toEqual(want);
    }
    // the cases are all there: alice's answers by code
    const codes = (await batch(alice, ODD)).map((a) => ('code' in a ? a.code : 'ok'));
    expect(codes).toEqual([
      'PERMISSION_DENIED', 'ok', 'ok', 'NOT_A_DIRECTORY', 'NOT_FOUND', 'NOT_FOUND', 'PERMISSION_DENIED', 'IS_A_DIRECTORY',
      'IS_A_DIRECTORY', 'INVALID_PATH', 'INVALID_PATH', 'PERMISSION_DENIED', 'ok', 'NOT_FOUND', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok',
      'PERMISSION_DENIED', 'PERMISSION_DENIED', 'PERMISSION_DENIED', 'ok', 'NOT_A_DIRECTORY', 'PERMISSION_DENIED', 'ok',
    ]);
    expect((await batch(bob, ['/b/g0', '/b/g1', '/a/open/shared', '/a/f0'])).map((a) => ('code' in a ? a.code : 'ok'))).toEqual(['PERMISSION_DENIED', 'ok', 'ok', 'PERMISSION_DENIED']);
    expect((await batch(alice, P_FILES)).map((a) => ('code' in a ? a.code : 'ok'))).toEqual(P_FILES.map((_, i) => (i === 5 ? 'CHUNK_MISSING' : 'ok')));
  });

  it('reads the metadata by rounds of a group: one getChildren a directory, one getBlobs, one listGrants', async () => {
    const spies = (['getChild', 'getChildren', 'getBlob', 'getBlobs', 'listGrants'] as const).map((m) => vi.spyOn(t.store, m));
    const [getChild, getChildren, getBlob, getBlobs, listGrants] = spies;
    try {
      for (const vault of [t.vault, plain]) {
        expect((await batch(alice, A_FILES, vault)).every((a) => 'node' in a)).toBe(true);
        expect(getChild!.mock.calls.length).toBe(1); // '/a', walked once
        expect(getChildren!.mock.calls.length).toBe(2); // 70 files: rounds of 64 and 6
        expect(getBlobs!.mock.calls.length).toBe(2);
        expect(getBlob!.mock.calls.length).toBe(0);
        expect(listGrants!.mock.calls.length).toBe(0); // alice owns her files
        for (const s of spies) s.mockClear();
      }
      const bobs = ['/b/g1', '/a/open/shared', '/b/g1', '/b/g0'];
      expect((await batch(bob, bobs)).map((a) => ('code' in a ? a.code : 'ok'))).toEqual(['ok', 'ok', 'ok', 'PERMISSION_DENIED']);
      expect(listGrants!.mock.calls.length).toBe(1); // one for the group, not one a file
      expect(getChildren!.mock.calls.length).toBe(2); // /b and /a/open
      expect(getBlobs!.mock.calls.length).toBe(1);
      expect(getBlobs!.mock.calls[0]![0]).toHaveLength(3); // only the files bob may read
    } finally {
      for (const s of spies) s.mockRestore();
    }
  });

  it('when a round fails (METADATA), decides each file of the group alone; a bug is thrown', async () => {
    const paths = ['/a/f0', '/a/none', '/b/g0', '/a/f1', '/a/gone', '/a/open/shared'];
    const want = await single(alice, paths);
    for (const m of ['getChildren', 'getBlobs'] as const) {
      const spy = vi.spyOn(t.store, m).mockRejectedValueOnce(new CofferError(ErrorCode.METADATA, 'the store is away'));
      try {
        expect(await batch(alice, paths), m).toEqual(want);
        expect(spy).toHaveBeenCalled();
        spy.mockClear().mockRejectedValueOnce(new CofferError(ErrorCode.METADATA, 'the store is away'));
        expect(await batch(alice, paths, plain), `${m}, no packs`).toEqual(want);
        expect(spy).toHaveBeenCalled();
      } finally {
        spy.mockRestore();
      }
    }
    const spy = vi.spyOn(t.store, 'listGrants').mockRejectedValueOnce(new CofferError(ErrorCode.METADATA, 'the store is away'));
    try {
      expect(await batch(bob, ['/b/g1', '/b/g0'])).toEqual(await single(bob, ['/b/g1', '/b/g0']));
      expect(spy).toHaveBeenCalled();
    } finally {
      spy.mockRestore();
    }
    const bug = vi.spyOn(t.store, 'getBlobs').mockRejectedValueOnce(new TypeError('a bug'));
    try {
      await expect(batch(alice, paths)).rejects.toThrow('a bug');
      bug.mockRejectedValueOnce(new TypeError('a bug'));
      await expect(batch(alice, paths, plain)).rejects.toThrow('a bug');
    } finally {
      bug.mockRestore();
    }
  });
});
