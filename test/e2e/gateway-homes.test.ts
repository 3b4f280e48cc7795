// The gateway with development homes (what `coffer dev` runs): the storage service makes /home and /home/NAME on a
// user's first request, without an enclave MAC, and the enclave accepts exactly those shapes (enclave run --homes,
// docs/metadata.md "Home directories"). Through the gateway's attested TLS: alice stores and reads in her home, bob
// is refused there; a host edit that makes mallory the owner of /home/alice is refused (INTEGRITY), not obeyed.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintDevToken } from '../../src/api/auth/index.js';
import { verifyGateway } from '../../src/client/gateway-verify.js';
import { VaultClient } from '../../src/client/vault-client.js';
import { startDev, type RunningDev } from '../../src/dev.js';
import { ensureDevRoot } from '../../enclave/attestation/index.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('the gateway with development homes', () => {
  let work: string;
  let dataDir: string;
  let dev: RunningDev;
  let ca: string;
  const token: Record<string, string> = {};

  function call(method: string, target: string, who: string, body?: Buffer): Promise<{ status: number; body: Buffer; code?: string }> {
    const headers: Record<string, string> = { authorization: `Bearer ${token[who]}` };
    if (body) headers['content-length'] = String(body.length);
    return new Promise((resolve, reject) => {
      const req = httpsRequest(new URL(target, dev.gatewayUrl as string), { method, headers, ca, agent: false }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => {
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

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'coffer-gwhomes-'));
    dataDir = path.join(work, 'data');
    dev = await startDev({ dataDir, listen: { host: '127.0.0.1', port: 0 }, kmsListen: '127.0.0.1:0', gatewayListen: { host: '127.0.0.1', port: 0 }, homes: true });
    const root = await ensureDevRoot(dataDir);
    ca = (await verifyGateway({ server: dev.gatewayUrl as string, expectPcr0: dev.measurement.pcr0, root: root.trustRoot })).certPem;
    for (const u of ['alice', 'bob', 'mallory']) token[u] = await mintDevToken(dataDir, { user: u });
  }, 240_000);

  afterAll(async () => {
    await dev?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('a directory made at the storage service inside a home is left out of the gateway\'s listing and audited; the rest is listed', async () => {
    const bytes = randomBytes(1000);
    expect((await call('PUT', '/v1/files/home/bob/b.bin', 'bob', bytes)).status).toBe(201);
    const direct = new VaultClient({ server: dev.storageUrl, token: token.bob as string });
    try {
      await direct.mkdir('/home/bob/raw'); // `coffer mkdir` against the storage URL: no enclave MAC
      expect((await direct.list('/home/bob')).items.map((n) => n.name).sort()).toEqual(['b.bin', 'raw']);
    } finally {
      direct.close();
    }
    const list = await call('GET', '/v1/fs/list?path=/home/bob', 'bob');
    expect(list.status, list.body.toString()).toBe(200);
    expect((JSON.parse(list.body.toString()) as { items: Array<{ path: string }> }).items.map((n) => n.path)).toEqual(['/home/bob/b.bin']);
    expect((await call('GET', '/v1/fs/stat?path=/home/bob/raw', 'bob')).code).toBe('INTEGRITY'); // named directly: refused
    const db = new DatabaseSync(path.join(dataDir, 'metadata.sqlite'));
    try {
      const rows = db.prepare("SELECT actor, target, details FROM audit WHERE action = 'integrity.refused'").all() as unknown as Array<{ actor: string; target: string; details: string }>;
      expect(rows.map((r) => [r.actor, r.target, (JSON.parse(r.details) as { kind: string }).kind])).toContainEqual(['bob', '/home/bob/raw', 'node']);
    } finally {
      db.close();
    }
  }, 120_000);

  it('alice stores and reads in /home/alice; bob is refused there; a host edit of the home owner is refused', async () => {
    const bytes = randomBytes(100_000);
    const put = await call('PUT', '/v1/files/home/alice/a.bin', 'alice', bytes);
    expect(put.status, put.body.toString()).toBe(201);
    const got = await call('GET', '/v1/files/home/alice/a.bin', 'alice');
    expect(got.status, got.body.toString().slice(0, 200)).toBe(200);
    expect(sha(got.body)).toBe(sha(bytes));
    const bob = await call('GET', '/v1/files/home/alice/a.bin', 'bob');
    expect(bob.status).toBe(403);
    expect(bob.body.includes(bytes.subarray(0, 64))).toBe(false);
    // outside her home alice has nothing (no default role on '/')
    expect((await call('PUT', '/v1/files/elsewhere.bin', 'alice', Buffer.from('x'))).status).toBe(403);

    // the host makes mallory the owner of alice's home: not a shape the homes rule accepts, so it needs a MAC
    const db = new DatabaseSync(path.join(dataDir, 'metadata.sqlite'));
    try {
      db.exec('PRAGMA busy_timeout = 5000');
      db.prepare("UPDATE nodes SET owner = 'mallory' WHERE name = 'alice' AND parent_id = (SELECT id FROM nodes WHERE name = 'home' AND parent_id = 'root')").run();
    } finally {
      db.close();
    }
    for (const who of ['mallory', 'alice']) {
      const r = await call('GET', '/v1/files/home/alice/a.bin', who);
      expect(r.status, `${who}: ${r.body.toString().slice(0, 200)}`).toBeGreaterThanOrEqual(400);
      expect(r.body.includes(bytes.subarray(0, 64))).toBe(false);
    }
    expect((await call('GET', '/v1/files/home/alice/a.bin', 'mallory')).code).toBe('INTEGRITY');
  }, 120_000);
});
