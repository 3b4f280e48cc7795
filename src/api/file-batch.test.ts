// Many small files in one request over real HTTP (docs/http-api.md "Many small files"): one pack, one metadata
// round, answered per file (a bad or conflicting file fails alone), every check of the one-file path, a repeat
// answered as repeated, and the files read back through the ordinary routes (packed chunks read like any other).
import { createHash, randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { blobIdFromHex, openChunk } from '../crypto/index.js';
import { newBlobHex, newDek, sealAll } from '../vault/test-env.js';
import { FILE_BATCH_MEDIA_TYPE } from './framed-body.js';
import { call, errorCode, startTestServer, type TestServer } from './test-server.js';

let s: TestServer;
let alice: string;
let bob: string;
const mongoUri = inject('mongoUri');

const keyRecord = { scheme: 'test', wrapped: 'AAAA' };

interface File { path: string; data: Buffer; blobId: string; dek: Uint8Array; sealed: Buffer }

async function file(p: string, size = 1000): Promise<File> {
  const data = randomBytes(size);
  const blobId = newBlobHex();
  const dek = newDek();
  const [sealed] = await sealAll(dek, blobId, data);
  return { path: p, data, blobId, dek, sealed: Buffer.from(sealed!) };
}

function entry(f: File, over: Record<string, unknown> = {}): Record<string, unknown> {
  return { path: f.path, blobId: f.blobId, keyGeneration: 1, keyRecord, size: f.data.length, sealedLength: f.sealed.length, ...over };
}

function batchBody(entries: Array<Record<string, unknown>>, sealed: Buffer[]): Buffer {
  const j = Buffer.from(JSON.stringify({ files: entries }));
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(j.length);
  return Buffer.concat([prefix, j, ...sealed]);
}

type Answer = { node?: { path: string; blobId: string }; manifest?: { chunks: Array<{ sha256: string }> }; repeated?: boolean; error?: { code: string } };

async function postBatch(token: string, body: Buffer): Promise<{ status: number; results: Answer[] }> {
  const res = await call(s.url, token, 'POST', '/v1/files/batch', body, { 'content-type': FILE_BATCH_MEDIA_TYPE });
  const json = (await res.json()) as { results: Answer[]; error?: { code: string } };
  return { status: res.status, results: json.results ?? [json as Answer] };
}

async function packsOnDisk(): Promise<string[]> {
  const dir = path.join(s.env.dir, 'store', 'packs');
  const out: string[] = [];
  for (const a of await readdir(dir).catch(() => [])) out.push(...(await readdir(path.join(dir, a))).filter((n) => /^[0-9a-f]{32}$/.test(n)));
  return out;
}

describe.each([['sqlite', null], ['mongo', mongoUri]] as Array<[string, string | null]>)('POST /v1/files/batch, metadata on %s', (kind, uri) => {
  if (kind === 'mongo' && !uri) {
    it.skip(`MongoDB-wire server unavailable: ${inject('mongoUnavailableReason')}`, () => undefined);
    return;
  }
  beforeAll(async () => {
    s = await startTestServer({ defaultRootRole: 'none', ...(uri ? { mongoUri: uri } : {}) });
    alice = await s.token('alice');
    bob = await s.token('bob');
    const admin = await s.token('root', true);
    await call(s.url, admin, 'POST', '/v1/fs/mkdir', { path: '/b', parents: true });
    await call(s.url, admin, 'PUT', '/v1/grants', { path: '/b', user: 'alice', role: 'write' });
  });
  afterAll(async () => s.close());

  it('stores many files as one pack, commits them, and they read back through GET /v1/fs/file', async () => {
    const files = await Promise.all(Array.from({ length: 40 }, (_, i) => file(`/b/many/f${i}.bin`, 100 + i * 50)));
    await call(s.url, alice, 'POST', '/v1/fs/mkdir', { path: '/b/many' });
    const before = (await packsOnDisk()).length;
    const { status, results } = await postBatch(alice, batchBody(files.map((f) => entry(f)), files.map((f) => f.sealed)));
    expect(status).toBe(200);
    expect(results.map((r) => r.error ?? null)).toEqual(files.map(() => null));
    results.forEach((r, i) => {
      expect(r.node).toMatchObject({ path: files[i]!.path, blobId: files[i]!.blobId });
      expect(r.manifest!.chunks[0]!.sha256).toBe(createHash('sha256').update(files[i]!.sealed).digest('hex'));
      expect(r.repeated).toBe(false);
    });
    expect((await packsOnDisk()).length).toBe(before + 1);
    for (const f of [files[0]!, files[39]!]) {
      const res = await call(s.url, alice, 'GET', `/v1/fs/file?path=${encodeURIComponent(f.path)}`);
      const body = Buffer.from(await res.arrayBuffer());
      const sealed = body.subarray(4 + body.readUInt32BE(0));
      expect(sealed.equals(f.sealed)).toBe(true);
      const plain = await openChunk(f.dek, sealed, { blobId: blobIdFromHex(f.blobId), index: 0, keyGeneration: 1, final: true });
      expect(Buffer.from(plain).equals(f.data)).toBe(true);
    }
    // the same request again (a lost answer): every file answers as repeated, nothing new is stored
    const again = await postBatch(alice, batchBody(files.map((f) => entry(f)), files.map((f) => f.sealed)));
    expect(again.results.every((r) => r.repeated === true && r.node !== undefined)).toBe(true);
    expect((await packsOnDisk()).length).toBe(before + 1);
    // one audit entry for the batch, in the chain
    expect((await s.env.vault.verifyAudit()).ok).toBe(true);
    // fsck finds the packed files whole
    const report = await s.env.vault.fsck({ readData: true });
    expect(report.errors).toBe(0);
    expect(report.problems).toEqual([]);
    expect(report.chunksChecked).toBeGreaterThanOrEqual(40);
  });

  it('GC removes a pack once every file in it is removed, and not before', async () => {
    await call(s.url, alice, 'POST', '/v1/fs/mkdir', { path: '/b/gc' });
    const files = await Promise.all(Array.from({ length: 5 }, (_, i) => file(`/b/gc/g${i}.bin`)));
    await postBatch(alice, batchBody(files.map((f) => entry(f)), files.map((f) => f.sealed)));
    const packs = await packsOnDisk();
    const remove = (p: string): Promise<Response> => call(s.url, alice, 'POST', '/v1/fs/remove', { path: p });
    for (const f of files.slice(0, 4)) expect((await remove(f.path)).status).toBe(200);
    await s.env.vault.runGc(new Date(Date.now() + 1000));
    expect(await packsOnDisk()).toEqual(packs); // one file of the pack is still there
    const last = await call(s.url, alice, 'GET', `/v1/fs/file?path=${encodeURIComponent(files[4]!.path)}`);
    expect(last.status).toBe(200);
    expect((await remove(files[4]!.path)).status).toBe(200);
    await s.env.vault.runGc(new Date(Date.now() + 1000));
    expect((await packsOnDisk()).length).toBe(packs.length - 1);
  });

  it('answers per file: a bad, conflicting, forbidden or mismatched file fails alone; the rest commit', async () => {
    const taken = await file('/b/taken.bin');
    await postBatch(alice, batchBody([entry(taken)], [taken.sealed]));
    const ok1 = await file('/b/ok1.bin');
    const dup = await file('/b/taken.bin');
    const wrongHeader = await file('/b/wrong.bin');
    const other = await file('/b/other.bin'); // its sealed chunk goes under wrongHeader's entry
    const badPath = await file('/b/x\u0000y');
    const noParent = await file('/b/nope/x.bin');
    const forbidden = await file('/elsewhere.bin');
    const ok2 = await file('/b/ok2.bin', 0);
    const twice = await file('/b/ok1.bin');
    const entries = [
      entry(ok1), entry(dup), entry(wrongHeader, { sealedLength: other.sealed.length }), entry(badPath), entry(noParent), entry(forbidden),
      entry(ok2), entry(twice), { ...entry(ok1, { extra: 1, blobId: newBlobHex() }) },
    ];
    const sealed = [ok1.sealed, dup.sealed, other.sealed, badPath.sealed, noParent.sealed, forbidden.sealed, ok2.sealed, twice.sealed, ok1.sealed];
    const { status, results } = await postBatch(alice, batchBody(entries, sealed));
    expect(status).toBe(200);
    expect(results.map((r) => r.error?.code ?? 'ok')).toEqual([
      'ok', 'ALREADY_EXISTS', 'CHUNK_MISMATCH', 'INVALID_PATH', 'NOT_FOUND', 'PERMISSION_DENIED', 'ok', 'ALREADY_EXISTS', 'INVALID_ARGUMENT',
    ]);
    const res = await call(s.url, alice, 'GET', '/v1/fs/file?path=%2Fb%2Fok2.bin');
    expect(res.status).toBe(200);
    expect((await call(s.url, alice, 'GET', '/v1/fs/file?path=%2Fb%2Fwrong.bin')).status).toBe(404);
  });

  it('refuses a malformed or unauthenticated batch as a whole; a caller without write permission gets it per file', async () => {
    const f = await file('/b/whole.bin');
    const post = (body: Buffer, type = FILE_BATCH_MEDIA_TYPE, token = alice): Promise<Response> => call(s.url, token, 'POST', '/v1/files/batch', body, { 'content-type': type });
    expect(await errorCode(await post(batchBody([entry(f)], [f.sealed]), 'application/octet-stream'))).toBe('INVALID_ARGUMENT');
    expect(await errorCode(await post(batchBody([], [])))).toBe('INVALID_ARGUMENT');
    expect(await errorCode(await post(batchBody([entry(f, { sealedLength: -1 })], [f.sealed])))).toBe('INVALID_ARGUMENT');
    expect(await errorCode(await post(batchBody([entry(f, { sealedLength: f.sealed.length + 1 })], [f.sealed])))).toBe('INVALID_ARGUMENT');
    expect(await errorCode(await post(batchBody([entry(f)], [f.sealed]), FILE_BATCH_MEDIA_TYPE, 'not-a-token'))).toBe('UNAUTHENTICATED');
    const { results } = await postBatch(bob, batchBody([entry(f)], [f.sealed]));
    expect(results.map((r) => r.error?.code)).toEqual(['PERMISSION_DENIED']);
    expect((await call(s.url, alice, 'GET', '/v1/fs/file?path=%2Fb%2Fwhole.bin')).status).toBe(404);
  });

  it('refuses more than 8 MiB of sealed chunks in one batch; many batches at once all commit (at most 4 held at a time)', async () => {
    const big = await Promise.all(Array.from({ length: 9 }, (_, i) => file(`/b/big${i}.bin`, 1024 * 1024)));
    const res = await call(s.url, alice, 'POST', '/v1/files/batch', batchBody(big.map((f) => entry(f)), big.map((f) => f.sealed)), { 'content-type': FILE_BATCH_MEDIA_TYPE });
    expect(await errorCode(res)).toBe('PAYLOAD_TOO_LARGE');
    expect((await call(s.url, alice, 'GET', '/v1/fs/file?path=%2Fb%2Fbig0.bin')).status).toBe(404);
    const batches = await Promise.all(Array.from({ length: 12 }, async (_, b) => Promise.all(Array.from({ length: 5 }, (_, i) => file(`/b/many-${b}-${i}.bin`)))));
    const answers = await Promise.all(batches.map((fs) => postBatch(alice, batchBody(fs.map((f) => entry(f)), fs.map((f) => f.sealed)))));
    for (const a of answers) expect(a.results.map((r) => r.error?.code ?? 'ok')).toEqual(Array(5).fill('ok'));
  });

  it('bodies are read into reused buffers: a small batch after a large one, and batches in parallel, store exactly their own bytes', async () => {
    const readBack = async (f: File): Promise<void> => {
      const res = await call(s.url, alice, 'GET', `/v1/fs/file?path=${encodeURIComponent(f.path)}`);
      const body = Buffer.from(await res.arrayBuffer());
      expect(body.subarray(4 + body.readUInt32BE(0)).equals(f.sealed)).toBe(true);
    };
    const large = await Promise.all(Array.from({ length: 7 }, (_, i) => file(`/b/reuse-large${i}.bin`, 1024 * 1024)));
    expect((await postBatch(alice, batchBody(large.map((f) => entry(f)), large.map((f) => f.sealed)))).results.every((r) => r.node)).toBe(true);
    // a refused body (its framing wrong) between them changes nothing
    expect((await postBatch(alice, batchBody([entry(large[0]!, { sealedLength: 5 })], [large[0]!.sealed]))).status).toBe(400);
    const rounds = await Promise.all(Array.from({ length: 8 }, async (_, b) => Promise.all(Array.from({ length: 3 }, (_, i) => file(`/b/reuse-${b}-${i}.bin`, 200 + b * 100 + i)))));
    const answers = await Promise.all(rounds.map((fs) => postBatch(alice, batchBody(fs.map((f) => entry(f)), fs.map((f) => f.sealed)))));
    answers.forEach((a, b) => a.results.forEach((r, i) => expect(r.manifest!.chunks[0]!.sha256).toBe(createHash('sha256').update(rounds[b]![i]!.sealed).digest('hex'))));
    for (const f of [...rounds.flat(), large[0]!, large[6]!]) await readBack(f);
  });
});
