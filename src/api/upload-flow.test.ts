// End-to-end over real HTTP: seal → create upload → PUT chunks (raw and multipart) → resume → commit →
// manifest → download (full, Range, ETag) → open with the DEK, byte-identical.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { CHUNK_SIZE, blobIdFromHex, openChunk } from '../crypto/index.js';
import { newBlobHex, newDek, sealAll } from '../vault/test-env.js';
import { call, errorCode, startTestServer, type TestServer } from './test-server.js';

let s: TestServer;
let alice: string;
beforeAll(async () => {
  s = await startTestServer();
  alice = await s.token('alice');
});
afterAll(async () => s.close());

const keyRecord = { scheme: 'test', wrapped: 'AAAA' };

describe('upload and download over HTTP', () => {
  it('round-trips a two-chunk file, resuming after a partial upload', async () => {
    const data = randomBytes(CHUNK_SIZE + 12345);
    const blobId = newBlobHex();
    const dek = newDek();
    const sealed = await sealAll(dek, blobId, data);
    let res = await call(s.url, alice, 'POST', '/v1/uploads', { path: '/data.bin', blobId, keyGeneration: 1, keyRecord, size: data.length });
    expect(res.status).toBe(201);
    res = await call(s.url, alice, 'PUT', `/v1/uploads/${blobId}/chunks/1`, sealed[1]);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ index: 1, final: true, plaintextLength: 12345, storedSize: 12345 + 64 });
    // "crash": the client asks what is durable and uploads the rest
    res = await call(s.url, alice, 'GET', `/v1/uploads/${blobId}`);
    const state = (await res.json()) as { state: string; chunks: Array<{ index: number }> };
    expect(state.state).toBe('uploading');
    expect(state.chunks.map((c) => c.index)).toEqual([1]);
    // not visible yet
    res = await call(s.url, alice, 'GET', '/v1/fs/list?path=/');
    expect(((await res.json()) as { items: unknown[] }).items).toEqual([]);
    res = await call(s.url, alice, 'PUT', `/v1/uploads/${blobId}/chunks/0`, sealed[0]);
    expect(res.status).toBe(200);
    res = await call(s.url, alice, 'POST', `/v1/uploads/${blobId}/commit`, { chunkCount: 2, size: data.length });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { node: { path: string } }).node.path).toBe('/data.bin');

    res = await call(s.url, alice, 'GET', `/v1/fs/manifest?path=${encodeURIComponent('/data.bin')}`);
    const { manifest } = (await res.json()) as { manifest: { chunkCount: number; keyRecord: unknown; chunks: Array<{ sha256: string; storedSize: number }> } };
    expect(manifest.chunkCount).toBe(2);
    expect(manifest.keyRecord).toEqual(keyRecord);
    const parts: Uint8Array[] = [];
    for (let i = 0; i < manifest.chunkCount; i++) {
      res = await call(s.url, alice, 'GET', `/v1/blobs/${blobId}/chunks/${i}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('etag')).toBe(`"${manifest.chunks[i]!.sha256}"`);
      expect(Number(res.headers.get('content-length'))).toBe(manifest.chunks[i]!.storedSize);
      const bytes = new Uint8Array(await res.arrayBuffer());
      parts.push(await openChunk(dek, bytes, { blobId: blobIdFromHex(blobId), index: i, keyGeneration: 1, final: i === 1 }));
    }
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    const m2 = await (await call(s.url, alice, 'GET', `/v1/blobs/${blobId}`)).json();
    expect(m2).toEqual(manifest);
  });

  it('serves Range requests and conditional GETs', async () => {
    const blobId = newBlobHex();
    const [c0] = await sealAll(newDek(), blobId, randomBytes(1000));
    await call(s.url, alice, 'POST', '/v1/uploads', { path: '/r.bin', blobId, keyGeneration: 1, keyRecord });
    await call(s.url, alice, 'PUT', `/v1/uploads/${blobId}/chunks/0`, c0);
    await call(s.url, alice, 'POST', `/v1/uploads/${blobId}/commit`, { chunkCount: 1, size: 1000 });
    const size = c0!.length; // 1064
    const get = (range: string, extra: Record<string, string> = {}): Promise<Response> =>
      call(s.url, alice, 'GET', `/v1/blobs/${blobId}/chunks/0`, undefined, { range, ...extra });
    const cases: Array<[string, number, number, number]> = [
      ['bytes=0-47', 206, 0, 47],
      ['bytes=1000-', 206, 1000, size - 1],
      ['bytes=-16', 206, size - 16, size - 1],
      ['bytes=-5000', 206, 0, size - 1],
      ['bytes=10-99999', 206, 10, size - 1],
      [`bytes=${size - 1}-${size - 1}`, 206, size - 1, size - 1],
    ];
    for (const [range, status, a, b] of cases) {
      const res = await get(range);
      expect(res.status, range).toBe(status);
      expect(res.headers.get('content-range')).toBe(`bytes ${a}-${b}/${size}`);
      const body = new Uint8Array(await res.arrayBuffer());
      expect(Buffer.from(body).equals(Buffer.from(c0!.subarray(a, b + 1))), range).toBe(true);
    }
    for (const range of [`bytes=${size}-`, `bytes=${size + 5}-${size + 10}`, 'bytes=-0']) {
      const res = await get(range);
      expect(res.status, range).toBe(416);
      expect(res.headers.get('content-range')).toBe(`bytes */${size}`);
      expect(await errorCode(res)).toBe('RANGE_NOT_SATISFIABLE');
    }
    for (const range of ['bytes=5-2', 'items=0-1', 'bytes=0-1,5-6', 'bytes=abc']) {
      const res = await get(range);
      expect(res.status, range).toBe(200);
      expect((await res.arrayBuffer()).byteLength).toBe(size);
    }
    const etag = (await get('bytes=0-0')).headers.get('etag')!;
    expect((await get('', { 'if-none-match': etag })).status).toBe(304);
    expect((await call(s.url, alice, 'GET', `/v1/blobs/${blobId}/chunks/1`)).status).toBe(404);
  });

  it('accepts chunks as multipart/form-data (browsers)', async () => {
    const blobId = newBlobHex();
    const dek = newDek();
    const data = randomBytes(CHUNK_SIZE + 10);
    const sealed = await sealAll(dek, blobId, data);
    await call(s.url, alice, 'POST', '/v1/uploads', { path: '/mp.bin', blobId, keyGeneration: 1, keyRecord });
    const form = new FormData();
    sealed.forEach((c, i) => form.append(String(i), new Blob([c]), `chunk${i}`));
    let res = await fetch(`${s.url}/v1/uploads/${blobId}/chunks`, { method: 'POST', headers: { authorization: `Bearer ${alice}` }, body: form });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { chunks: Array<{ index: number }> }).chunks.map((c) => c.index)).toEqual([0, 1]);
    res = await call(s.url, alice, 'POST', `/v1/uploads/${blobId}/commit`, { chunkCount: 2, size: data.length });
    expect(res.status).toBe(200);

    // a bad part fails the request with its own error; a field part is refused
    const b2 = newBlobHex();
    await call(s.url, alice, 'POST', '/v1/uploads', { path: '/mp2.bin', blobId: b2, keyGeneration: 1, keyRecord });
    const bad = new FormData();
    bad.append('0', new Blob([sealed[1]!]), 'x'); // header names another blob
    res = await fetch(`${s.url}/v1/uploads/${b2}/chunks`, { method: 'POST', headers: { authorization: `Bearer ${alice}` }, body: bad });
    expect(res.status).toBe(422);
    expect(await errorCode(res)).toBe('CHUNK_MISMATCH');
    const field = new FormData();
    field.append('note', 'hello');
    res = await fetch(`${s.url}/v1/uploads/${b2}/chunks`, { method: 'POST', headers: { authorization: `Bearer ${alice}` }, body: field });
    expect(await errorCode(res)).toBe('INVALID_ARGUMENT');
    const named = new FormData();
    named.append('zero', new Blob([new Uint8Array(64)]), 'x');
    res = await fetch(`${s.url}/v1/uploads/${b2}/chunks`, { method: 'POST', headers: { authorization: `Bearer ${alice}` }, body: named });
    expect(await errorCode(res)).toBe('INVALID_ARGUMENT');
    expect(await s.env.chunks.list(b2)).toEqual([]);
  });

  it('enforces multipart limits: part count and part size (never silently truncated)', async () => {
    const b = newBlobHex();
    const dek = newDek();
    await call(s.url, alice, 'POST', '/v1/uploads', { path: '/lim.bin', blobId: b, keyGeneration: 1, keyRecord });
    const tiny = (await sealAll(dek, b, new Uint8Array(3)))[0]!;
    const many = new FormData();
    for (let i = 0; i < 17; i++) many.append('0', new Blob([tiny]), 'c'); // idempotent re-PUTs of index 0
    let res = await fetch(`${s.url}/v1/uploads/${b}/chunks`, { method: 'POST', headers: { authorization: `Bearer ${alice}` }, body: many });
    expect([res.status, await errorCode(res)]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
    const b3 = newBlobHex();
    await call(s.url, alice, 'POST', '/v1/uploads', { path: '/lim3.bin', blobId: b3, keyGeneration: 1, keyRecord });
    const full = (await sealAll(dek, b3, randomBytes(CHUNK_SIZE)))[0]!;
    const big = new FormData();
    big.append('0', new Blob([full, new Uint8Array(1)]), 'c');
    res = await fetch(`${s.url}/v1/uploads/${b3}/chunks`, { method: 'POST', headers: { authorization: `Bearer ${alice}` }, body: big });
    expect([res.status, await errorCode(res)]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
    expect(await s.env.chunks.list(b3)).toEqual([]);
    expect(((await (await call(s.url, alice, 'GET', `/v1/uploads/${b3}`)).json()) as { chunks: unknown[] }).chunks).toEqual([]);
  });
});

describe('chunk GETs through reused buffers', () => {
  it('a stalled reader and clients that hang up mid-chunk do not disturb the bytes anyone receives', async () => {
    const data = randomBytes(3 * CHUNK_SIZE + 999);
    const blobId = newBlobHex();
    const sealed = await sealAll(newDek(), blobId, data);
    const res = await call(s.url, alice, 'POST', '/v1/uploads', { path: '/reuse.bin', blobId, keyGeneration: 1, keyRecord, size: data.length });
    expect(res.status).toBe(201);
    for (const [i, chunk] of sealed.entries()) expect((await call(s.url, alice, 'PUT', `/v1/uploads/${blobId}/chunks/${i}`, chunk)).status).toBe(200);
    expect((await call(s.url, alice, 'POST', `/v1/uploads/${blobId}/commit`, { chunkCount: sealed.length, size: data.length })).status).toBe(200);
    const url = new URL(s.url);
    const hangUp = (index: number): Promise<void> =>
      new Promise((resolve) => {
        const req = request({ host: url.hostname, port: url.port, path: `/v1/blobs/${blobId}/chunks/${index}`, headers: { authorization: `Bearer ${alice}` } }, (r) => {
          r.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', () => resolve());
        req.end();
      });
    const fetchChunk = async (i: number): Promise<void> => {
      const r = await call(s.url, alice, 'GET', `/v1/blobs/${blobId}/chunks/${i}`);
      expect(Buffer.from(await r.arrayBuffer()).equals(Buffer.from(sealed[i] as Uint8Array))).toBe(true);
    };
    // A reader that stalls after the first bytes keeps most of its chunk waiting in the service's buffer; the
    // GETs running meanwhile must not be handed that buffer (they would overwrite what the slow reader gets).
    const slowReader = (index: number, others: () => Promise<unknown>): Promise<Buffer> =>
      new Promise((resolve, reject) => {
        const req = request({ host: url.hostname, port: url.port, path: `/v1/blobs/${blobId}/chunks/${index}`, headers: { authorization: `Bearer ${alice}` } }, (r) => {
          const parts: Buffer[] = [];
          r.once('data', () => {
            r.pause();
            others().then(() => r.resume(), reject);
          });
          r.on('data', (d: Buffer) => parts.push(d));
          r.on('end', () => resolve(Buffer.concat(parts)));
        });
        req.on('error', reject);
        req.end();
      });
    for (let round = 0; round < 3; round++) {
      const slow = await slowReader(0, () => Promise.all([fetchChunk(1), fetchChunk(2), fetchChunk(3), fetchChunk(1), fetchChunk(2)]));
      expect(slow.equals(Buffer.from(sealed[0] as Uint8Array))).toBe(true);
      await Promise.all([...sealed.map((_, i) => fetchChunk(i)), ...sealed.map((_, i) => hangUp(i)), ...sealed.map((_, i) => hangUp(i))]);
    }
  });
});
