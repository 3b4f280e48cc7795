// One-request small files over real HTTP (docs/http-api.md "Small files"): the framed POST creates, stores and
// commits a one-chunk file with every check of the multi-step path (header vs upload, SHA-256 recorded, authz,
// audit, limits), and the framed GET answers node, manifest and sealed chunk in one response.
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHUNK_SIZE, blobIdFromHex, openChunk } from '../crypto/index.js';
import { newBlobHex, newDek, sealAll } from '../vault/test-env.js';
import { FILE_MEDIA_TYPE } from './framed-body.js';
import { call, errorCode, startTestServer, type TestServer } from './test-server.js';

let s: TestServer;
let alice: string;
let bob: string;
beforeAll(async () => {
  s = await startTestServer({ defaultRootRole: 'none' });
  alice = await s.token('alice');
  bob = await s.token('bob');
  const admin = await s.token('root', true);
  await call(s.url, admin, 'POST', '/v1/fs/mkdir', { path: '/a', parents: true });
  await call(s.url, admin, 'PUT', '/v1/grants', { path: '/a', user: 'alice', role: 'write' });
});
afterAll(async () => s.close());

const keyRecord = { scheme: 'test', wrapped: 'AAAA' };

function framed(json: unknown, sealed: Uint8Array = new Uint8Array(0)): Uint8Array {
  const j = Buffer.from(JSON.stringify(json));
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(j.length);
  return Buffer.concat([prefix, j, sealed]);
}

function post(token: string, body: Uint8Array, type = FILE_MEDIA_TYPE): Promise<Response> {
  return call(s.url, token, 'POST', '/v1/files', body, { 'content-type': type });
}

async function sealedFile(size: number): Promise<{ data: Buffer; blobId: string; dek: Uint8Array; sealed: Uint8Array }> {
  const data = randomBytes(size);
  const blobId = newBlobHex();
  const dek = newDek();
  const [sealed] = await sealAll(dek, blobId, data);
  return { data, blobId, dek, sealed: sealed! };
}

function unframe(body: Buffer): { json: { node: { path: string; blobId: string }; manifest: { chunkCount: number; size: number; chunks: Array<{ sha256: string; storedSize: number }> } }; rest: Buffer } {
  const j = body.readUInt32BE(0);
  return { json: JSON.parse(body.subarray(4, 4 + j).toString('utf8')), rest: body.subarray(4 + j) };
}

describe('POST /v1/files and GET /v1/fs/file', () => {
  it('create + store + commit in one request, answered again on a repeat; read back in one request', async () => {
    const f = await sealedFile(16 * 1024);
    const req = { path: '/a/one.bin', blobId: f.blobId, keyGeneration: 1, keyRecord, size: f.data.length };
    let res = await post(alice, framed(req, f.sealed));
    expect(res.status).toBe(201);
    const first = (await res.json()) as { node: { path: string; blobId: string }; manifest: { chunks: Array<{ sha256: string }> } };
    expect(first.node).toMatchObject({ path: '/a/one.bin', blobId: f.blobId, size: f.data.length });
    expect(first.manifest.chunks[0]!.sha256).toBe(createHash('sha256').update(f.sealed).digest('hex'));
    // the same request again (a lost answer): the committed file, not a second one
    res = await post(alice, framed(req, f.sealed));
    expect(res.status).toBe(200);
    expect(((await res.json()) as { node: unknown }).node).toEqual(first.node);

    res = await call(s.url, alice, 'GET', '/v1/fs/file?path=%2Fa%2Fone.bin');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(FILE_MEDIA_TYPE);
    const { json, rest } = unframe(Buffer.from(await res.arrayBuffer()));
    expect(json.node.blobId).toBe(f.blobId);
    expect(json.manifest).toMatchObject({ chunkCount: 1, size: f.data.length });
    expect(rest.equals(Buffer.from(f.sealed))).toBe(true);
    const plain = await openChunk(f.dek, rest, { blobId: blobIdFromHex(f.blobId), index: 0, keyGeneration: 1, final: true });
    expect(Buffer.from(plain).equals(f.data)).toBe(true);

    // audited exactly as the multi-step path: upload.create then upload.commit, chained
    const audit = await s.env.vault.verifyAudit();
    expect(audit.ok).toBe(true);
    const entries = await s.env.store.listAudit(0, 1000);
    const mine = entries.filter((e) => (e.details as { blobId?: string }).blobId === f.blobId).map((e) => e.action);
    expect(mine).toEqual(['upload.create', 'upload.commit']); // the repeat changed nothing, so it adds nothing
  });

  it('an empty file and a file of exactly one chunk; a larger one answers the manifest without a chunk', async () => {
    for (const size of [0, CHUNK_SIZE]) {
      const f = await sealedFile(size);
      const res = await post(alice, framed({ path: `/a/s${size}`, blobId: f.blobId, keyGeneration: 1, keyRecord, size }, f.sealed));
      expect(res.status, String(size)).toBe(201);
    }
    const tooBig = await post(alice, framed({ path: '/a/big', blobId: newBlobHex(), keyGeneration: 1, keyRecord, size: CHUNK_SIZE + 1 }));
    expect([tooBig.status, await errorCode(tooBig)]).toEqual([400, 'INVALID_ARGUMENT']);
    const data = randomBytes(CHUNK_SIZE + 5);
    const blobId = newBlobHex();
    const sealed = await sealAll(newDek(), blobId, data);
    await call(s.url, alice, 'POST', '/v1/uploads', { path: '/a/two.bin', blobId, keyGeneration: 1, keyRecord, size: data.length });
    for (const [i, c] of sealed.entries()) await call(s.url, alice, 'PUT', `/v1/uploads/${blobId}/chunks/${i}`, c);
    expect((await call(s.url, alice, 'POST', `/v1/uploads/${blobId}/commit`, { chunkCount: 2, size: data.length })).status).toBe(200);
    const res = await call(s.url, alice, 'GET', '/v1/fs/file?path=%2Fa%2Ftwo.bin');
    const { json, rest } = unframe(Buffer.from(await res.arrayBuffer()));
    expect(json.manifest.chunkCount).toBe(2);
    expect(rest.length).toBe(0);
  });

  it('refuses what the multi-step path refuses, and leaves no file behind', async () => {
    const f = await sealedFile(1000);
    const other = await sealedFile(1000);
    const base = { blobId: f.blobId, keyGeneration: 1, keyRecord, size: 1000 };
    // the header names another blob / the size disagrees / the length disagrees with the header
    let res = await post(alice, framed({ ...base, path: '/a/x' }, other.sealed));
    expect([res.status, await errorCode(res)]).toEqual([422, 'CHUNK_MISMATCH']);
    const g = await sealedFile(1000);
    res = await post(alice, framed({ path: '/a/x', blobId: g.blobId, keyGeneration: 1, keyRecord, size: 999 }, g.sealed));
    expect([res.status, await errorCode(res)]).toEqual([422, 'CHUNK_MISMATCH']);
    const h = await sealedFile(1000);
    res = await post(alice, framed({ path: '/a/x', blobId: h.blobId, keyGeneration: 1, keyRecord, size: 1000 }, h.sealed.subarray(0, 500)));
    expect(res.status).toBeGreaterThanOrEqual(400);
    // no permission (bob has none on /a); a missing parent; an existing file without overwrite; a bad path
    const i = await sealedFile(10);
    res = await post(bob, framed({ path: '/a/b.bin', blobId: i.blobId, keyGeneration: 1, keyRecord, size: 10 }, i.sealed));
    expect([res.status, await errorCode(res)]).toEqual([403, 'PERMISSION_DENIED']);
    res = await post(alice, framed({ path: '/a/no/such', blobId: i.blobId, keyGeneration: 1, keyRecord, size: 10 }, i.sealed));
    expect([res.status, await errorCode(res)]).toEqual([404, 'NOT_FOUND']);
    const j = await sealedFile(10);
    expect((await post(alice, framed({ path: '/a/j', blobId: j.blobId, keyGeneration: 1, keyRecord, size: 10 }, j.sealed))).status).toBe(201);
    const k = await sealedFile(10);
    res = await post(alice, framed({ path: '/a/j', blobId: k.blobId, keyGeneration: 1, keyRecord, size: 10 }, k.sealed));
    expect([res.status, await errorCode(res)]).toEqual([409, 'ALREADY_EXISTS']);
    res = await post(alice, framed({ path: '/a/j', blobId: k.blobId, keyGeneration: 1, keyRecord, size: 10, overwrite: true }, k.sealed));
    expect(res.status).toBe(201);
    res = await post(alice, framed({ path: '/a/bad\nname', blobId: newBlobHex(), keyGeneration: 1, keyRecord, size: 10 }, k.sealed));
    expect([res.status, await errorCode(res)]).toEqual([400, 'INVALID_PATH']);
    // malformed frames: wrong type, unknown field, JSON part longer than the body, not JSON
    res = await post(alice, framed({ ...base, path: '/a/y' }, f.sealed), 'application/octet-stream');
    expect(await errorCode(res)).toBe('INVALID_ARGUMENT');
    res = await post(alice, framed({ ...base, path: '/a/y', extra: 1 }, f.sealed));
    expect(await errorCode(res)).toBe('INVALID_ARGUMENT');
    const short = Buffer.alloc(8);
    short.writeUInt32BE(100);
    res = await post(alice, short);
    expect(await errorCode(res)).toBe('INVALID_ARGUMENT');
    res = await post(alice, Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from('{{{')]));
    expect(await errorCode(res)).toBe('INVALID_ARGUMENT');
    const huge = Buffer.alloc(4);
    huge.writeUInt32BE(10 * 1024 * 1024);
    res = await post(alice, huge);
    expect(await errorCode(res)).toBe('PAYLOAD_TOO_LARGE');
    // none of the refused requests left a file
    const list = (await (await call(s.url, alice, 'GET', '/v1/fs/list?path=%2Fa')).json()) as { items: Array<{ name: string }> };
    expect(list.items.map((n) => n.name).filter((n) => ['x', 'b.bin', 'y'].includes(n))).toEqual([]);
    // the refused uploads were abandoned, not left 'uploading' for a day
    for (const id of [f.blobId, g.blobId]) expect((await s.env.store.getBlob(id))?.state).toBe('deleting');
  });

  it('GET /v1/fs/file needs read permission, and names a directory as such', async () => {
    let res = await call(s.url, bob, 'GET', '/v1/fs/file?path=%2Fa%2Fone.bin');
    expect([res.status, await errorCode(res)]).toEqual([403, 'PERMISSION_DENIED']);
    res = await call(s.url, alice, 'GET', '/v1/fs/file?path=%2Fa');
    expect([res.status, await errorCode(res)]).toEqual([409, 'IS_A_DIRECTORY']);
    res = await call(s.url, alice, 'GET', '/v1/fs/file?path=%2Fa%2Fnone');
    expect([res.status, await errorCode(res)]).toEqual([404, 'NOT_FOUND']);
  });
});
