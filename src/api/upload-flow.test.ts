// End-to-end over real HTTP: seal → create upload → PUT chunks (raw and multipart) → resume → commit →
// manifest → download (full, Range, ETag) → open with the DEK, byte-identical.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { request } from 'node:http';
import net from 'node:net';
import path from 'node:path';
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
    for (const range of [`bytes=${size}-`, `bytes=${size + 5}-${size + 10}`, 'bytes=-0', 'bytes=1000000000000000000-']) {
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

describe('broken multipart uploads', () => {
  /** Sends raw bytes on a fresh connection and returns the raw response ('' if the server closed it first). */
  function raw(bytes: Buffer, { hangUpAfterMs }: { hangUpAfterMs?: number } = {}): Promise<string> {
    const url = new URL(s.url);
    return new Promise((resolve) => {
      const sock = net.connect(Number(url.port), url.hostname, () => sock.write(bytes));
      let got = '';
      sock.on('data', (d: Buffer) => (got += d.toString('latin1')));
      sock.on('close', () => resolve(got));
      sock.on('error', () => resolve(got));
      if (hangUpAfterMs !== undefined) setTimeout(() => sock.destroy(), hangUpAfterMs);
    });
  }
  function multipartRequest(blobId: string, body: Buffer, contentLength = body.length): Buffer {
    return Buffer.concat([Buffer.from(
      `POST /v1/uploads/${blobId}/chunks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\n` +
      `Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: ${contentLength}\r\nConnection: close\r\n\r\n`,
    ), body]);
  }
  async function tempFiles(): Promise<string[]> {
    const found: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
        if (e.isDirectory()) await walk(path.join(dir, e.name));
        else if (e.name.startsWith('.')) found.push(e.name);
      }
    };
    await walk(path.join(s.env.dir, 'store', 'chunks'));
    return found;
  }

  it('a body that ends inside a part is a 400, and the service keeps serving', async () => {
    const blobId = newBlobHex();
    await call(s.url, alice, 'POST', '/v1/uploads', { path: '/trunc.bin', blobId, keyGeneration: 1, keyRecord });
    const sealed = (await sealAll(newDek(), blobId, randomBytes(1000)))[0]!;
    // the form's closing boundary never comes (busboy: "Unexpected end of form")
    const body = Buffer.concat([Buffer.from('--XyZ\r\nContent-Disposition: form-data; name="0"; filename="c"\r\nContent-Type: application/octet-stream\r\n\r\n'), sealed.subarray(0, 500), Buffer.from('\r\n')]);
    const res = await raw(multipartRequest(blobId, body));
    expect(res).toMatch(/^HTTP\/1\.1 400 /);
    expect(res).toContain('"code":"INVALID_ARGUMENT"');
    // the same for a blob that does not exist, before any permission or state is known
    expect(await raw(multipartRequest('0'.repeat(32), body))).toMatch(/^HTTP\/1\.1 4\d\d /);
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    expect(await s.env.chunks.list(blobId)).toEqual([]);
    expect(await tempFiles()).toEqual([]);
    // a well-formed body with no usable part (no Content-Disposition) did nothing: a 400, not 200 with no chunks
    const empty = await raw(multipartRequest(blobId, Buffer.from('--XyZ\r\nContent-Type: application/octet-stream\r\n\r\nabc\r\n--XyZ--\r\n')));
    expect(empty).toMatch(/^HTTP\/1\.1 400 /);
  });

  it('a client that hangs up inside a part leaves no open file and no temporary file behind', async () => {
    const blobId = newBlobHex();
    await call(s.url, alice, 'POST', '/v1/uploads', { path: '/hangup.bin', blobId, keyGeneration: 1, keyRecord });
    const sealed = (await sealAll(newDek(), blobId, randomBytes(100_000)))[0]!;
    const head = Buffer.concat([Buffer.from('--XyZ\r\nContent-Disposition: form-data; name="0"; filename="c"\r\n\r\n'), sealed.subarray(0, 50_000)]);
    const fds = async (): Promise<number> => (await readdir('/proc/self/fd')).length;
    const before = await fds();
    for (let i = 0; i < 8; i++) await raw(multipartRequest(blobId, head, 200_000), { hangUpAfterMs: 150 });
    for (let i = 0; i < 50 && ((await fds()) > before + 2 || (await tempFiles()).length > 0); i++) await new Promise((r) => setTimeout(r, 20));
    expect(await tempFiles()).toEqual([]);
    expect(await fds()).toBeLessThanOrEqual(before + 2);
    expect(await s.env.chunks.list(blobId)).toEqual([]);
    // and the upload still works
    const whole = new FormData();
    whole.append('0', new Blob([sealed]), 'c');
    const res = await fetch(`${s.url}/v1/uploads/${blobId}/chunks`, { method: 'POST', headers: { authorization: `Bearer ${alice}` }, body: whole });
    expect(res.status).toBe(200);
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
