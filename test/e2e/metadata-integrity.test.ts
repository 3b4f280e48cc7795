// Tamper-proof metadata (issue 9 point 5), on SQLite and on the MongoDB-wire server: records the enclave endorsed
// with MACs under its metadata key, then edited directly in the database by the host — grant yourself access,
// point a path at another of the owner's blobs, roll a blob's size back, swap two wrapped keys, re-enable a
// disabled user, copy or drop a MAC. Every one is refused by the gateway's record checks (MacIntegrity through
// GatewayRecords, the gateway's one door to the storage service) before a byte is served, and reported for audit.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { GatewayRecords } from '../../enclave/gateway/records.js';
import { endorseClientFile, MacIntegrity, MetadataMacKey, type IntegrityRefusal } from '../../enclave/integrity/index.js';
import { startTestServer, type TestServer } from '../../src/api/test-server.js';
import { KeyFileDataKeys, type DataKeyProvider } from '../../src/client/data-keys.js';
import { uploadStream } from '../../src/client/upload.js';
import { VaultClient } from '../../src/client/vault-client.js';
import { blobIdFromHex, openChunk } from '../../src/crypto/index.js';
import { isCofferError } from '../../src/errors.js';

const mongoUri = inject('mongoUri');

/** Direct edits of the untrusted database, as the host's administrator would make them. */
interface Db {
  setNode(path: string, set: { blobId?: string; size?: number; mac?: string | null }): Promise<void>;
  setBlob(blobId: string, set: { size?: number; keyRecord?: string; mac?: string | null }): Promise<void>;
  keyRecordOf(blobId: string): Promise<string>;
  insertGrant(nodeId: string, user: string, role: string, mac: string | null): Promise<void>;
  setUserDisabled(user: string, disabled: boolean): Promise<void>;
  insertFileNode(parentPath: string, name: string, blobId: string, size: number, owner: string): Promise<void>;
  close(): Promise<void>;
}

async function sqliteDb(s: TestServer): Promise<Db> {
  const db = new DatabaseSync(s.env.dbPath);
  db.exec('PRAGMA busy_timeout = 5000');
  const nodeId = async (p: string): Promise<string> => (await s.env.vault.stat({ user: ':test', admin: true }, p)).id;
  return {
    async setNode(p, set) {
      const id = await nodeId(p);
      for (const [k, v] of Object.entries(set)) db.prepare(`UPDATE nodes SET ${k === 'blobId' ? 'blob_id' : k} = ? WHERE id = ?`).run(v, id);
    },
    async setBlob(blobId, set) {
      for (const [k, v] of Object.entries(set)) db.prepare(`UPDATE blobs SET ${k === 'keyRecord' ? 'key_record' : k} = ? WHERE id = ?`).run(v, blobId);
    },
    async keyRecordOf(blobId) {
      return (db.prepare('SELECT key_record FROM blobs WHERE id = ?').get(blobId) as unknown as { key_record: string }).key_record;
    },
    async insertGrant(nodeId, user, role, mac) {
      db.prepare('INSERT INTO grants (node_id, user, role, created_at, mac) VALUES (?, ?, ?, ?, ?)').run(nodeId, user, role, Date.now(), mac);
    },
    async setUserDisabled(user, disabled) {
      db.prepare('UPDATE users SET disabled = ? WHERE name = ?').run(disabled ? 1 : 0, user);
    },
    async insertFileNode(parentPath, name, blobId, size, owner) {
      db.prepare(`INSERT INTO nodes (id, parent_id, name, type, blob_id, size, owner, created_at, modified_at, version) VALUES (?, ?, ?, 'file', ?, ?, ?, ?, ?, 1)`)
        .run(randomUUID(), await nodeId(parentPath), name, blobId, size, owner, Date.now(), Date.now());
    },
    async close() {
      db.close();
    },
  };
}

async function mongoDb(s: TestServer): Promise<Db> {
  const client = await MongoClient.connect(mongoUri as string);
  const db = client.db(s.env.dbName as string);
  const nodeId = async (p: string): Promise<string> => (await s.env.vault.stat({ user: ':test', admin: true }, p)).id;
  return {
    async setNode(p, set) {
      await db.collection('nodes').updateOne({ _id: (await nodeId(p)) as never }, { $set: set });
    },
    async setBlob(blobId, set) {
      await db.collection('blobs').updateOne({ _id: blobId as never }, { $set: set });
    },
    async keyRecordOf(blobId) {
      return ((await db.collection('blobs').findOne({ _id: blobId as never })) as unknown as { keyRecord: string }).keyRecord;
    },
    async insertGrant(nodeId, user, role, mac) {
      await db.collection('grants').insertOne({ nodeId, user, role, createdAt: new Date(), mac });
    },
    async setUserDisabled(user, disabled) {
      await db.collection('users').updateOne({ _id: user as never }, { $set: { disabled } });
    },
    async insertFileNode(parentPath, name, blobId, size, owner) {
      const now = new Date();
      await db.collection('nodes').insertOne({ _id: randomUUID() as never, parentId: await nodeId(parentPath), name, type: 'file', blobId, size, owner, createdAt: now, modifiedAt: now, version: 1 });
    },
    async close() {
      await client.close();
    },
  };
}

const stores: Array<{ name: string; open: (s: TestServer) => Promise<Db>; mongo: boolean }> = [{ name: 'SQLite', open: sqliteDb, mongo: false }];
if (mongoUri) stores.push({ name: 'the MongoDB-wire server', open: mongoDb, mongo: true });

for (const kind of stores) {
  describe(`tamper-proof metadata on ${kind.name}`, () => {
    let s: TestServer;
    let db: Db;
    let work: string;
    let alice: VaultClient;
    let bob: VaultClient;
    let admin: VaultClient;
    let keys: DataKeyProvider;
    const refusals: IntegrityRefusal[] = [];
    const key = new MetadataMacKey(randomBytes(32));
    const integrity = new MacIntegrity(key, (r) => refusals.push(r));
    const files = new Map<string, { bytes: Buffer; blobId: string; dek: Buffer }>();

    /** What the gateway does to serve a file: verified records, verified data key, then chunks. */
    async function serve(client: VaultClient, p: string): Promise<Buffer> {
      const records = new GatewayRecords(client, integrity);
      const file = await records.file(p);
      const dek = await keys.openDataKey(file.manifest.keyRecord, file.manifest.blobId);
      await integrity.checkDataKey(file, dek);
      const parts: Uint8Array[] = [];
      for (let i = 0; i < file.manifest.chunkCount; i++) {
        const sealed = await client.getChunk(file.manifest.blobId, i);
        const expect = { blobId: blobIdFromHex(file.manifest.blobId), index: i, keyGeneration: file.manifest.keyGeneration, final: i === file.manifest.chunkCount - 1 };
        parts.push(await openChunk(dek, sealed, expect));
      }
      return Buffer.concat(parts);
    }

    /** Refused with INTEGRITY (or the key layer's KEY_INVALID), nothing served, and the refusal reported. */
    async function refused(attempt: () => Promise<unknown>, kindOf: IntegrityRefusal['kind'] | null): Promise<void> {
      const before = refusals.length;
      const r = await attempt().then((v) => ({ served: v }), (e: unknown) => ({ error: e }));
      expect('served' in r ? `served ${String(r.served).slice(0, 40)}` : 'refused').toBe('refused');
      const e = (r as { error: unknown }).error;
      expect(isCofferError(e, 'INTEGRITY') || (kindOf === null && isCofferError(e, 'KEY_INVALID')), String(e)).toBe(true);
      if (kindOf) expect(refusals.slice(before).map((x) => x.kind)).toContain(kindOf);
    }

    beforeAll(async () => {
      s = await startTestServer({ defaultRootRole: 'none', ...(kind.mongo ? { mongoUri: mongoUri as string } : {}) });
      db = await kind.open(s);
      work = await mkdtemp(path.join(os.tmpdir(), 'coffer-mac-'));
      const keyFile = path.join(work, 'k');
      await writeFile(keyFile, randomBytes(32), { mode: 0o600 });
      const kf = await KeyFileDataKeys.open(keyFile);
      const deks = new Map<string, Buffer>();
      keys = { newDataKey: async (b) => { const r = await kf.newDataKey(b); deks.set(b, Buffer.from(r.dek)); return r; }, openDataKey: (r, b) => kf.openDataKey(r, b) };
      alice = new VaultClient({ server: s.url, token: await s.token('alice') });
      bob = new VaultClient({ server: s.url, token: await s.token('bob') });
      admin = new VaultClient({ server: s.url, token: await s.token('root', true) });
      // the enclave's writes: a directory, two files of alice's, a grant for bob; each endorsed with its MAC
      const docs = await admin.mkdir('/docs');
      await admin.setNodeMac('/docs', docs.version, integrity.nodeMac(docs));
      await admin.putGrant('/docs', 'alice', 'write', integrity.grantMac('/docs', 'alice', 'write'));
      for (const [p, size] of [['/docs/a.bin', 1000], ['/docs/b.bin', 2000]] as const) {
        const bytes = randomBytes(size);
        const r = await uploadStream(alice, [bytes], size, { path: p, keys });
        const { node, manifest } = await alice.manifestByPath(p);
        const dek = deks.get(r.blobId) as Buffer;
        const macs = integrity.commitMacs(node, manifest, dek);
        await alice.setBlobMac(manifest.blobId, macs.blob);
        await alice.setNodeMac(p, node.version, macs.node);
        files.set(p, { bytes, blobId: r.blobId, dek });
      }
      await admin.putGrant('/docs', 'bob', 'read', integrity.grantMac('/docs', 'bob', 'read'));
      await new VaultClient({ server: s.url, token: await s.token('carol') }).whoami();
      await admin.setUserStatus('carol', { disabled: true, mac: integrity.userMac('carol', true) });
    }, 120_000);

    afterAll(async () => {
      for (const c of [alice, bob, admin]) c?.close();
      await db?.close();
      await s?.close();
      if (work) await rm(work, { recursive: true, force: true });
      key.destroy();
    });

    it('serves endorsed records: both files, the grants, the user status', async () => {
      for (const [p, f] of files) expect((await serve(alice, p)).equals(f.bytes)).toBe(true);
      expect((await serve(bob, '/docs/a.bin')).equals(files.get('/docs/a.bin')?.bytes as Buffer)).toBe(true);
      await new GatewayRecords(admin, integrity).grants('/docs');
      integrity.checkUser(await admin.userStatus('carol'));
      expect(refusals).toEqual([]);
    });

    it('grant yourself access: a grant row without a MAC, or with a MAC copied from another grant, is refused', async () => {
      const docsId = (await admin.stat('/docs')).id;
      await db.insertGrant(docsId, 'mallory', 'admin', null);
      await refused(() => new GatewayRecords(admin, integrity).grants('/docs'), 'grant');
      await db.insertGrant(docsId, 'eve', 'read', integrity.grantMac('/docs', 'bob', 'read'));
      await refused(() => new GatewayRecords(admin, integrity).grants('/docs'), 'grant');
    });

    it('point a path at another of the owner\'s blobs: refused, nothing served', async () => {
      const b = files.get('/docs/b.bin') as { blobId: string; bytes: Buffer };
      await db.setNode('/docs/a.bin', { blobId: b.blobId, size: b.bytes.length });
      await refused(() => serve(alice, '/docs/a.bin'), 'node');
      await refused(() => serve(bob, '/docs/a.bin'), 'node');
      // with a valid MAC copied from the other file's node: still bound to that node's id and path
      const bNode = await admin.stat('/docs/b.bin');
      await db.setNode('/docs/a.bin', { mac: bNode.mac ?? null });
      await refused(() => serve(alice, '/docs/a.bin'), 'node');
    });

    it('roll a blob\'s size back: refused, nothing served', async () => {
      const b = files.get('/docs/b.bin') as { blobId: string; bytes: Buffer };
      await db.setBlob(b.blobId, { size: b.bytes.length - 1 });
      await refused(() => serve(alice, '/docs/b.bin'), 'blob');
      await db.setNode('/docs/b.bin', { size: b.bytes.length - 1 });
      await refused(() => serve(alice, '/docs/b.bin'), 'node');
      await db.setBlob(b.blobId, { size: b.bytes.length });
      await db.setNode('/docs/b.bin', { size: b.bytes.length });
      expect((await serve(alice, '/docs/b.bin')).equals(b.bytes)).toBe(true);
    });

    it('swap two wrapped keys: refused, nothing served; and a data key other than the committed one is refused', async () => {
      const a = files.get('/docs/a.bin') as { blobId: string; dek: Buffer };
      const b = files.get('/docs/b.bin') as { blobId: string; dek: Buffer; bytes: Buffer };
      const [ka, kb] = [await db.keyRecordOf(a.blobId), await db.keyRecordOf(b.blobId)];
      await db.setBlob(a.blobId, { keyRecord: kb });
      await db.setBlob(b.blobId, { keyRecord: ka });
      await refused(() => serve(alice, '/docs/b.bin'), null);
      await db.setBlob(a.blobId, { keyRecord: ka });
      await db.setBlob(b.blobId, { keyRecord: kb });
      // whatever opened the wrapped key (a KMS record re-encrypted under another blob's context, say), the data key
      // must be the one the blob's MAC commits to
      const file = await new GatewayRecords(alice, integrity).file('/docs/b.bin');
      await refused(() => integrity.checkDataKey(file, a.dek), 'dataKey');
      await integrity.checkDataKey(file, b.dek);
      expect((await serve(alice, '/docs/b.bin')).equals(b.bytes)).toBe(true);
    });

    it('a dropped MAC, a MAC moved between blobs, and a re-enabled user are refused', async () => {
      const b = files.get('/docs/b.bin') as { blobId: string };
      const bMac = (await alice.manifestByPath('/docs/b.bin')).manifest.mac ?? null;
      await db.setBlob(b.blobId, { mac: null });
      await refused(() => serve(alice, '/docs/b.bin'), 'blob');
      const aBlob = (files.get('/docs/a.bin') as { blobId: string }).blobId;
      await db.setBlob(b.blobId, { mac: (await s.env.store.getBlob(aBlob))?.mac ?? null });
      await refused(() => serve(alice, '/docs/b.bin'), 'blob');
      await db.setBlob(b.blobId, { mac: bMac });
      await db.setUserDisabled('carol', false);
      expect(() => integrity.checkUser({ user: 'carol', disabled: false, mac: integrity.userMac('carol', true) })).toThrow(/user record of carol refused/);
      expect(() => integrity.checkUser({ user: 'carol', disabled: false, mac: integrity.userMac('dave', false) })).toThrow(/user record of carol refused/);
      // no MAC at all: a user whose status no enclave ever set stands as the service says (docs/metadata.md "Users' status")
      expect(() => integrity.checkUser({ user: 'carol', disabled: false })).not.toThrow();
      await expect(admin.userStatus('carol').then((st) => integrity.checkUser(st))).rejects.toMatchObject({ code: 'INTEGRITY' });
    });

    it('a file a client committed itself is refused until endorsed; endorsed only at the path and owner its uploader bound', async () => {
      const bytes = randomBytes(3000);
      const r = await uploadStream(alice, [bytes], bytes.length, { path: '/docs/c.bin', keys });
      await refused(() => serve(alice, '/docs/c.bin'), 'node');
      // the host binds the same blob elsewhere before the enclave sees it, for another owner or the same one
      await db.insertFileNode('/docs', 'stolen.bin', r.blobId, bytes.length, 'mallory');
      await db.insertFileNode('/docs', 'copy.bin', r.blobId, bytes.length, 'alice');
      await refused(() => endorseClientFile(admin, integrity, keys, '/docs/stolen.bin'), 'node');
      await refused(() => endorseClientFile(admin, integrity, keys, '/docs/copy.bin'), 'node');
      await refused(() => serve(admin, '/docs/stolen.bin'), 'node');
      const endorsed = await endorseClientFile(alice, integrity, keys, '/docs/c.bin');
      expect(endorsed.node.mac).toMatch(/^cm1\./);
      expect((await serve(alice, '/docs/c.bin')).equals(bytes)).toBe(true);
      expect((await serve(bob, '/docs/c.bin')).equals(bytes)).toBe(true);
      // endorsing the original did not endorse the host's extra bindings
      await refused(() => serve(admin, '/docs/copy.bin'), 'node');
    });
  });
}
