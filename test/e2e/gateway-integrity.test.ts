// Tamper-proof metadata switched on in the running gateway (issue 9 point 5): startDev runs the storage service,
// the embedded KMS and `coffer enclave run` (which opens its metadata MAC key at boot and checks every record it
// reads, and decides access itself from verified nodes and grants). Through the gateway's attested TLS, the
// database is edited directly — the SQLite file, and the MongoDB-wire server through the driver — and each edit
// is refused (INTEGRITY) with nothing served: grant yourself access, point a path at another of the owner's blobs,
// roll a blob's size back, swap two wrapped keys. Normal use (put, get, mkdir, move, grants, a file sealed by
// `coffer put` in KMS mode) still works.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { mintDevToken } from '../../src/api/auth/index.js';
import { KmsDataKeys } from '../../src/client/data-keys.js';
import { verifyGateway } from '../../src/client/gateway-verify.js';
import { uploadStream } from '../../src/client/upload.js';
import { VaultClient } from '../../src/client/vault-client.js';
import { startDev, type RunningDev } from '../../src/dev.js';
import { AwsKeyService } from '../../src/kms/index.js';
import { ensureDevRoot } from '../../enclave/attestation/index.js';

const mongoUri = inject('mongoUri');
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const fileUrl = (p: string): string => `/v1/files${p.split('/').map(encodeURIComponent).join('/')}`;

/** Direct edits of the untrusted database, as the host's administrator would make them. */
interface Db {
  nodeId(path: string): Promise<string>;
  setNode(path: string, set: { blobId?: string; size?: number; mac?: string | null }): Promise<void>;
  getNode(path: string): Promise<{ blobId: string | null; size: number; mac: string | null }>;
  setBlob(blobId: string, set: { size?: number; keyRecord?: string }): Promise<void>;
  getBlob(blobId: string): Promise<{ size: number; keyRecord: string }>;
  insertGrant(nodeId: string, user: string, role: string, mac: string | null): Promise<void>;
  grantMac(nodeId: string, user: string): Promise<string | null>;
  setUser(name: string, set: { disabled?: boolean; mac?: string | null }): Promise<void>;
  getUser(name: string): Promise<{ disabled: boolean; mac: string | null }>;
  /** The audit chain's `integrity.refused` entries: [actor, target, kind]. */
  refusals(): Promise<Array<[string, string, string]>>;
  close(): Promise<void>;
}

function sqliteDb(file: string): Db {
  const db = new DatabaseSync(file);
  db.exec('PRAGMA busy_timeout = 5000');
  const nodeId = async (p: string): Promise<string> => {
    let id = 'root';
    for (const name of p.split('/').filter((s) => s !== '')) id = (db.prepare('SELECT id FROM nodes WHERE parent_id = ? AND name = ?').get(id, name) as unknown as { id: string }).id;
    return id;
  };
  return {
    nodeId,
    async setNode(p, set) {
      const id = await nodeId(p);
      for (const [k, v] of Object.entries(set)) db.prepare(`UPDATE nodes SET ${k === 'blobId' ? 'blob_id' : k} = ? WHERE id = ?`).run(v, id);
    },
    async getNode(p) {
      const r = db.prepare('SELECT blob_id, size, mac FROM nodes WHERE id = ?').get(await nodeId(p)) as unknown as { blob_id: string | null; size: number; mac: string | null };
      return { blobId: r.blob_id, size: r.size, mac: r.mac };
    },
    async setBlob(blobId, set) {
      for (const [k, v] of Object.entries(set)) db.prepare(`UPDATE blobs SET ${k === 'keyRecord' ? 'key_record' : k} = ? WHERE id = ?`).run(v, blobId);
    },
    async getBlob(blobId) {
      const r = db.prepare('SELECT size, key_record FROM blobs WHERE id = ?').get(blobId) as unknown as { size: number; key_record: string };
      return { size: r.size, keyRecord: r.key_record };
    },
    async insertGrant(nodeId, user, role, mac) {
      db.prepare('INSERT INTO grants (node_id, user, role, created_at, mac) VALUES (?, ?, ?, ?, ?)').run(nodeId, user, role, Date.now(), mac);
    },
    async grantMac(nodeId, user) {
      return (db.prepare('SELECT mac FROM grants WHERE node_id = ? AND user = ?').get(nodeId, user) as unknown as { mac: string | null }).mac;
    },
    async setUser(name, set) {
      if (set.disabled !== undefined) db.prepare('UPDATE users SET disabled = ? WHERE name = ?').run(set.disabled ? 1 : 0, name);
      if (set.mac !== undefined) db.prepare('UPDATE users SET mac = ? WHERE name = ?').run(set.mac, name);
    },
    async getUser(name) {
      const r = db.prepare('SELECT disabled, mac FROM users WHERE name = ?').get(name) as unknown as { disabled: number; mac: string | null };
      return { disabled: r.disabled === 1, mac: r.mac };
    },
    async refusals() {
      const rows = db.prepare(`SELECT actor, target, details FROM audit WHERE action = 'integrity.refused' ORDER BY seq`).all() as unknown as Array<{ actor: string; target: string; details: string }>;
      return rows.map((r) => [r.actor, r.target, (JSON.parse(r.details) as { kind: string }).kind]);
    },
    async close() {
      db.close();
    },
  };
}

async function mongoDb(uri: string): Promise<Db> {
  const client = await MongoClient.connect(uri);
  const db = client.db();
  const nodeId = async (p: string): Promise<string> => {
    let id = 'root';
    for (const name of p.split('/').filter((s) => s !== '')) id = ((await db.collection('nodes').findOne({ parentId: id, name })) as unknown as { _id: string })._id;
    return id;
  };
  return {
    nodeId,
    async setNode(p, set) {
      await db.collection('nodes').updateOne({ _id: (await nodeId(p)) as never }, { $set: set });
    },
    async getNode(p) {
      const r = (await db.collection('nodes').findOne({ _id: (await nodeId(p)) as never })) as unknown as { blobId: string | null; size: number; mac?: string };
      return { blobId: r.blobId, size: r.size, mac: r.mac ?? null };
    },
    async setBlob(blobId, set) {
      await db.collection('blobs').updateOne({ _id: blobId as never }, { $set: set });
    },
    async getBlob(blobId) {
      const r = (await db.collection('blobs').findOne({ _id: blobId as never })) as unknown as { size: number; keyRecord: string };
      return { size: r.size, keyRecord: r.keyRecord };
    },
    async insertGrant(nodeId, user, role, mac) {
      await db.collection('grants').insertOne({ nodeId, user, role, createdAt: new Date(), ...(mac === null ? {} : { mac }) });
    },
    async grantMac(nodeId, user) {
      return ((await db.collection('grants').findOne({ nodeId, user })) as unknown as { mac?: string }).mac ?? null;
    },
    async setUser(name, set) {
      await db.collection('users').updateOne({ _id: name as never }, { $set: set });
    },
    async getUser(name) {
      const r = (await db.collection('users').findOne({ _id: name as never })) as unknown as { disabled: boolean; mac?: string | null };
      return { disabled: r.disabled, mac: r.mac ?? null };
    },
    async refusals() {
      const rows = (await db.collection('audit').find({ action: 'integrity.refused' }).sort({ _id: 1 }).toArray()) as unknown as Array<{ actor: string; target: string; details: string }>;
      return rows.map((r) => [r.actor, r.target, (JSON.parse(r.details) as { kind: string }).kind]);
    },
    async close() {
      await client.close();
    },
  };
}

const stores: Array<{ name: string; mongo: boolean }> = [{ name: 'SQLite', mongo: false }];
if (mongoUri) stores.push({ name: 'the MongoDB-wire server', mongo: true });

for (const store of stores) {
  describe(`the running gateway refuses tampered metadata on ${store.name}`, () => {
    let work: string;
    let dev: RunningDev;
    let db: Db;
    let ca: string;
    const token: Record<string, string> = {};
    const files = new Map<string, Buffer>();

    interface Answer { status: number; body: Buffer; code?: string }
    function call(method: string, target: string, who: string, options: { json?: unknown; body?: Buffer; headers?: Record<string, string> } = {}): Promise<Answer> {
      const u = new URL(target, dev.gatewayUrl as string);
      const body = options.json === undefined ? options.body : Buffer.from(JSON.stringify(options.json));
      const headers: Record<string, string> = { authorization: `Bearer ${token[who]}`, ...options.headers };
      if (options.json !== undefined) headers['content-type'] = 'application/json';
      if (body) headers['content-length'] = String(body.length);
      return new Promise((resolve, reject) => {
        const req = httpsRequest(u, { method, headers, ca, agent: false }, (res) => {
          const parts: Buffer[] = [];
          res.on('data', (d: Buffer) => parts.push(d));
          res.on('error', () => undefined);
          res.on('close', () => {
            const b = Buffer.concat(parts);
            let code: string | undefined;
            try {
              code = (JSON.parse(b.toString()) as { error?: { code?: string } }).error?.code;
            } catch {
              code = undefined;
            }
            resolve({ status: res.statusCode ?? 0, body: b, ...(code ? { code } : {}) });
          });
        });
        req.on('error', reject);
        req.end(body);
      });
    }

    /** Refused, and not one byte of any stored file in the answer. */
    async function refused(p: string, who: string, codes: string[] = ['INTEGRITY']): Promise<void> {
      const r = await call('GET', fileUrl(p), who);
      expect(r.status, r.body.toString().slice(0, 200)).toBeGreaterThanOrEqual(400);
      expect(codes, r.body.toString().slice(0, 200)).toContain(r.code);
      for (const bytes of files.values()) expect(r.body.includes(bytes.subarray(0, 64))).toBe(false);
    }

    async function served(p: string, who: string): Promise<void> {
      const r = await call('GET', fileUrl(p), who);
      expect(r.status, r.body.toString().slice(0, 200)).toBe(200);
      expect(sha(r.body)).toBe(sha(files.get(p) as Buffer));
    }

    beforeAll(async () => {
      work = await mkdtemp(path.join(os.tmpdir(), 'coffer-gwmac-'));
      const dataDir = path.join(work, 'data');
      let uri: string | undefined;
      if (store.mongo) {
        const u = new URL(mongoUri as string);
        u.pathname = `/coffer_gwmac_${randomBytes(6).toString('hex')}`;
        uri = u.toString();
      }
      dev = await startDev({
        dataDir, listen: { host: '127.0.0.1', port: 0 }, kmsListen: '127.0.0.1:0', gatewayListen: { host: '127.0.0.1', port: 0 }, defaultRootRole: 'none',
        ...(uri ? { mongoUri: uri } : {}),
      });
      db = uri ? await mongoDb(uri) : sqliteDb(path.join(dataDir, 'metadata.sqlite'));
      const root = await ensureDevRoot(dataDir);
      ca = (await verifyGateway({ server: dev.gatewayUrl as string, expectPcr0: dev.measurement.pcr0, root: root.trustRoot })).certPem;
      for (const u of ['alice', 'bob', 'mallory']) token[u] = await mintDevToken(dataDir, { user: u });
      token.root = await mintDevToken(dataDir, { user: 'root', admin: true });
      // everything through the gateway: the enclave attaches the MACs. No default role on '/': an admin makes
      // /docs and lets alice write there; alice lets bob read.
      expect((await call('POST', '/v1/fs/mkdir', 'root', { json: { path: '/docs' } })).status).toBe(201);
      expect((await call('PUT', '/v1/grants', 'root', { json: { path: '/docs', user: 'alice', role: 'write' } })).status).toBe(200);
      for (const [p, size] of [['/docs/a.bin', 1000], ['/docs/b.bin', 9 * 1024 * 1024]] as const) {
        const bytes = randomBytes(size);
        const put = await call('PUT', fileUrl(p), 'alice', { body: bytes });
        expect(put.status, put.body.toString()).toBe(201);
        files.set(p, bytes);
      }
      expect((await call('PUT', '/v1/grants', 'root', { json: { path: '/docs', user: 'bob', role: 'read' } })).status).toBe(200);
    }, 240_000);

    afterAll(async () => {
      await db?.close();
      await dev?.close();
      if (work) await rm(work, { recursive: true, force: true });
    });

    it('normal use: put, get, mkdir -p, move, grants, and a file sealed by coffer put in KMS mode', async () => {
      await served('/docs/a.bin', 'alice');
      await served('/docs/b.bin', 'alice');
      await served('/docs/a.bin', 'bob');
      expect((await call('GET', fileUrl('/docs/a.bin'), 'mallory')).status).toBe(403);
      expect((await call('PUT', fileUrl('/docs/m.bin'), 'bob', { body: Buffer.from('no') })).status).toBe(403); // read only
      const grants = await call('GET', '/v1/grants?path=/docs', 'alice');
      expect(grants.status).toBe(403); // alice may write in /docs, not administer it
      const rootView = await call('GET', '/v1/grants?path=/docs', 'root');
      expect((JSON.parse(rootView.body.toString()) as { grants: Array<{ user: string }> }).grants.map((g) => g.user)).toEqual(['alice', 'bob']);
      // mkdir -p, a file below, a move of the directory: everything under it is re-endorsed at its new path
      expect((await call('POST', '/v1/fs/mkdir', 'alice', { json: { path: '/docs/x/y', parents: true } })).status).toBe(201);
      const inner = randomBytes(5000);
      expect((await call('PUT', fileUrl('/docs/x/y/f.bin'), 'alice', { body: inner })).status).toBe(201);
      expect((await call('PUT', '/v1/grants', 'alice', { json: { path: '/docs/x', user: 'mallory', role: 'read' } })).status).toBe(200);
      const moved = await call('POST', '/v1/fs/move', 'alice', { json: { from: '/docs/x', to: '/docs/z' } });
      expect(moved.status, moved.body.toString()).toBe(200);
      files.set('/docs/z/y/f.bin', inner);
      await served('/docs/z/y/f.bin', 'alice');
      await served('/docs/z/y/f.bin', 'mallory'); // her grant moved with the directory
      const list = await call('GET', '/v1/fs/list?path=/docs/z/y', 'alice');
      expect(list.status, list.body.toString()).toBe(200);
      expect((await call('GET', fileUrl('/docs/x/y/f.bin'), 'alice')).status).toBe(404);
      // coffer put in KMS mode: sealed on the client, committed at the storage service, endorsed on first read
      const client = new VaultClient({ server: dev.storageUrl, token: token.alice as string });
      const keys = new KmsDataKeys(new AwsKeyService({
        keyId: dev.keyArn, endpoint: dev.kmsUrl, region: dev.region, credentials: { accessKeyId: dev.sealer.accessKeyId, secretAccessKey: dev.sealer.secretAccessKey },
      }));
      const sealed = randomBytes(8 * 1024 * 1024 + 17);
      try {
        await uploadStream(client, [sealed], sealed.length, { path: '/docs/k.bin', keys });
      } finally {
        keys.close();
        client.close();
      }
      files.set('/docs/k.bin', sealed);
      await served('/docs/k.bin', 'bob'); // a reader: verified, served, MACs not stored (bob may not)
      await served('/docs/k.bin', 'alice'); // the owner: endorsed and stored
      expect((await db.getNode('/docs/k.bin')).mac).toMatch(/^cm1\./);
      await served('/docs/k.bin', 'bob');
    }, 240_000);

    it('grant yourself access: a grant row without a MAC, or with another grant\'s MAC, is refused and nothing served', async () => {
      const docs = await db.nodeId('/docs');
      await db.insertGrant(docs, 'mallory', 'read', null);
      await refused('/docs/a.bin', 'mallory');
      const list = await call('GET', '/v1/fs/list?path=/docs', 'mallory');
      expect(list.code).toBe('INTEGRITY');
      // copy bob's valid MAC onto a row for eve: it binds bob, so it does not verify for eve
      token.eve = await mintDevToken(path.join(work, 'data'), { user: 'eve' });
      await db.insertGrant(docs, 'eve', 'read', await db.grantMac(docs, 'bob'));
      await refused('/docs/a.bin', 'eve');
      await served('/docs/a.bin', 'bob'); // the real grant still works
      // each refusal is in the audit chain, under the caller whose request met the record
      const audited = await db.refusals();
      expect(audited).toContainEqual(['mallory', '/docs mallory', 'grant']);
      expect(audited).toContainEqual(['eve', '/docs eve', 'grant']);
    }, 120_000);

    it('point a path at another of the owner\'s blobs: refused, nothing served', async () => {
      const a = await db.getNode('/docs/a.bin');
      const b = await db.getNode('/docs/b.bin');
      await db.setNode('/docs/a.bin', { blobId: b.blobId as string, size: b.size });
      await refused('/docs/a.bin', 'alice');
      await refused('/docs/a.bin', 'bob');
      await db.setNode('/docs/a.bin', { mac: b.mac }); // with the other node's valid MAC: it binds that node's id and path
      await refused('/docs/a.bin', 'alice');
      await db.setNode('/docs/a.bin', { mac: null }); // no MAC at all: not a client's file either (no uploader tag)
      await refused('/docs/a.bin', 'alice');
      await db.setNode('/docs/a.bin', { blobId: a.blobId as string, size: a.size, mac: a.mac });
      await served('/docs/a.bin', 'alice');
    }, 120_000);

    it('roll a blob\'s size back: refused, nothing served', async () => {
      const b = await db.getNode('/docs/b.bin');
      const blob = await db.getBlob(b.blobId as string);
      await db.setBlob(b.blobId as string, { size: blob.size - 1 });
      await refused('/docs/b.bin', 'alice');
      await db.setNode('/docs/b.bin', { size: blob.size - 1 });
      await refused('/docs/b.bin', 'alice');
      await db.setBlob(b.blobId as string, { size: blob.size });
      await db.setNode('/docs/b.bin', { size: blob.size });
      await served('/docs/b.bin', 'alice');
    }, 120_000);

    it('swap two wrapped keys: refused, nothing served', async () => {
      const a = (await db.getNode('/docs/a.bin')).blobId as string;
      const b = (await db.getNode('/docs/b.bin')).blobId as string;
      const [ka, kb] = [(await db.getBlob(a)).keyRecord, (await db.getBlob(b)).keyRecord];
      await db.setBlob(a, { keyRecord: kb });
      await db.setBlob(b, { keyRecord: ka });
      // the KMS refuses a wrapped key under another blob's context; a key that did open would fail the MAC's commitment
      await refused('/docs/a.bin', 'alice', ['INTEGRITY', 'KEY_INVALID', 'KMS_ACCESS_DENIED', 'KMS']);
      await refused('/docs/b.bin', 'bob', ['INTEGRITY', 'KEY_INVALID', 'KMS_ACCESS_DENIED', 'KMS']);
      await db.setBlob(a, { keyRecord: ka });
      await db.setBlob(b, { keyRecord: kb });
      await served('/docs/a.bin', 'alice');
      await served('/docs/b.bin', 'bob');
    }, 120_000);

    it('users\' status: an admin disables a user through the gateway; the database edited back to "enabled" is refused and audited', async () => {
      token.carol = await mintDevToken(path.join(work, 'data'), { user: 'carol' });
      expect((await call('PUT', '/v1/grants', 'root', { json: { path: '/docs', user: 'carol', role: 'read' } })).status).toBe(200);
      await served('/docs/a.bin', 'carol'); // carol is known to the service now, with no status MAC: never disabled
      // only a token admin, and never yourself
      expect((await call('POST', '/v1/users/disabled', 'alice', { json: { user: 'carol', disabled: true } })).status).toBe(403);
      expect((await call('POST', '/v1/users/disabled', 'root', { json: { user: 'root', disabled: true } })).code).toBe('INVALID_ARGUMENT');
      expect((await call('POST', '/v1/users/disabled', 'root', { json: { user: 'carol' } })).code).toBe('INVALID_ARGUMENT');
      const off = await call('POST', '/v1/users/disabled', 'root', { json: { user: 'carol', disabled: true } });
      expect(off.status, off.body.toString()).toBe(200);
      expect(JSON.parse(off.body.toString())).toEqual({ name: 'carol', disabled: true });
      const stored = await db.getUser('carol');
      expect(stored).toMatchObject({ disabled: true, mac: expect.stringMatching(/^cm1\.[0-9a-f]{64}$/) as unknown as string });
      await refused('/docs/a.bin', 'carol', ['PERMISSION_DENIED']);
      // the host flips the flag back and keeps the MAC: the storage service admits carol again, the gateway does not
      await db.setUser('carol', { disabled: false });
      const direct = new VaultClient({ server: dev.storageUrl, token: token.carol as string });
      try {
        expect((await direct.userStatus('carol')).disabled).toBe(false);
      } finally {
        direct.close();
      }
      await refused('/docs/a.bin', 'carol');
      expect((await call('GET', '/v1/fs/list?path=/docs', 'carol')).code).toBe('INTEGRITY');
      expect((await call('PUT', fileUrl('/docs/c.bin'), 'carol', { body: Buffer.from('no') })).code).toBe('INTEGRITY');
      // another user's valid MAC binds that user's name: refused too (mallory's "enabled", MACed by an admin's enable)
      expect((await call('GET', '/v1/whoami', 'mallory')).status).toBe(200);
      expect((await call('POST', '/v1/users/disabled', 'root', { json: { user: 'mallory', disabled: false } })).status).toBe(200);
      await db.setUser('carol', { mac: (await db.getUser('mallory')).mac });
      await refused('/docs/a.bin', 'carol');
      expect(await db.refusals()).toContainEqual(['carol', 'carol', 'user']);
      // an admin enables her through the gateway: a fresh MAC of "enabled", and she is served again
      await db.setUser('carol', { disabled: true, mac: stored.mac });
      const on = await call('POST', '/v1/users/disabled', 'root', { json: { user: 'carol', disabled: false } });
      expect(on.status, on.body.toString()).toBe(200);
      await served('/docs/a.bin', 'carol');
      await served('/docs/a.bin', 'bob'); // nobody else was touched
    }, 120_000);
  });
}
