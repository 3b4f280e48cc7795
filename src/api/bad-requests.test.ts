// Every bad request over real HTTP gets the right 4xx JSON error, and nothing already stored is lost.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { SignJWT, importJWK } from 'jose';
import { CHUNK_SIZE, MAX_SEALED_SIZE, blobIdFromHex, openChunk } from '../crypto/index.js';
import { newBlobHex, newDek, seal, sealAll } from '../vault/test-env.js';
import { ensureDevSigningKey } from './auth/index.js';
import { call, errorCode, startTestServer, type TestServer } from './test-server.js';

let s: TestServer;
let alice: string;
beforeAll(async () => {
  s = await startTestServer();
  alice = await s.token('alice');
});
afterAll(async () => s.close());

const keyRecord = { scheme: 'test' };

/** Sends raw bytes on a fresh connection and returns what the server answered before closing. */
function raw(url: string, request: string | Buffer, opts: { endAfterWrite?: boolean; waitMs?: number } = {}): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(port), '127.0.0.1');
    let out = '';
    sock.on('data', (d) => (out += d.toString('latin1')));
    sock.on('error', reject);
    sock.on('close', () => resolve(out));
    sock.write(request);
    if (opts.endAfterWrite) sock.end();
    setTimeout(() => sock.destroy(), opts.waitMs ?? 1500);
  });
}

describe('authentication', () => {
  it('refuses missing, malformed, expired, unsigned, foreign and wrong-issuer tokens', async () => {
    const jwk = await ensureDevSigningKey(s.env.dir);
    const key = await importJWK(jwk, 'EdDSA');
    const now = Math.floor(Date.now() / 1000);
    const sign = (iss: string, aud: string, exp: number): Promise<string> =>
      new SignJWT({}).setProtectedHeader({ alg: 'EdDSA', kid: jwk.kid }).setIssuer(iss).setAudience(aud).setSubject('alice').setExpirationTime(exp).sign(key);
    const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: 'coffer-dev', aud: 'coffer', sub: 'alice', exp: now + 3600, admin: true })}.`;
    const other = await startTestServer();
    const foreign = await other.token('alice', true);
    await other.close();
    const bad: Array<[string, Record<string, string>]> = [
      ['missing', {}],
      ['not bearer', { authorization: `Basic ${alice}` }],
      ['garbage', { authorization: 'Bearer abc.def.ghi' }],
      ['expired', { authorization: `Bearer ${await sign('coffer-dev', 'coffer', now - 3600)}` }],
      ['wrong issuer', { authorization: `Bearer ${await sign('evil', 'coffer', now + 3600)}` }],
      ['wrong audience', { authorization: `Bearer ${await sign('coffer-dev', 'other', now + 3600)}` }],
      ['alg none', { authorization: `Bearer ${unsigned}` }],
      ['another key', { authorization: `Bearer ${foreign}` }],
      ['tampered', { authorization: `Bearer ${alice.slice(0, -4)}AAAA` }],
    ];
    for (const [name, headers] of bad) {
      const res = await fetch(`${s.url}/v1/whoami`, { headers });
      expect(res.status, name).toBe(401);
      expect(await errorCode(res), name).toBe('UNAUTHENTICATED');
    }
    const ok = await call(s.url, alice, 'GET', '/v1/whoami');
    expect(await ok.json()).toEqual({ user: 'alice', admin: false, defaultRootRole: 'write', home: null });
  });
});

describe('chunk uploads', () => {
  it('refuses bad chunks with the right error and keeps the good one', async () => {
    const blobId = newBlobHex();
    const dek = newDek();
    const data = randomBytes(500);
    const [good] = await sealAll(dek, blobId, data);
    await call(s.url, alice, 'POST', '/v1/uploads', { path: '/keep.bin', blobId, keyGeneration: 1, keyRecord });
    expect((await call(s.url, alice, 'PUT', `/v1/uploads/${blobId}/chunks/0`, good)).status).toBe(200);
    const before = await (await call(s.url, alice, 'GET', `/v1/uploads/${blobId}`)).json();

    const garbage = new Uint8Array(good!.length);
    const otherBlob = await seal(dek, newBlobHex(), 0, data, true);
    const wrongIndex = await seal(dek, blobId, 1, data, true);
    const extra = Buffer.concat([good!, Buffer.alloc(10)]);
    const cases: Array<[string, string, Uint8Array, number, string]> = [
      ['malformed header', '0', garbage, 400, 'CHUNK_FORMAT'],
      ['header of another blob', '0', otherBlob, 422, 'CHUNK_MISMATCH'],
      ['header of another index', '0', wrongIndex, 422, 'CHUNK_MISMATCH'],
      ['body longer than header says', '0', extra, 422, 'CHUNK_MISMATCH'],
      ['shorter than a header', '0', good!.subarray(0, 10), 422, 'CHUNK_MISMATCH'],
      ['bad index', 'x1', good!, 400, 'INVALID_ARGUMENT'],
      ['index too big', '4294967296', good!, 400, 'INVALID_ARGUMENT'],
    ];
    for (const [name, index, body, status, code] of cases) {
      const res = await call(s.url, alice, 'PUT', `/v1/uploads/${blobId}/chunks/${index}`, body);
      expect(res.status, name).toBe(status);
      expect(await errorCode(res), name).toBe(code);
    }
    let res = await call(s.url, alice, 'PUT', `/v1/uploads/${'zz'.repeat(16)}/chunks/0`, good);
    expect(await errorCode(res)).toBe('INVALID_ARGUMENT');
    res = await call(s.url, alice, 'PUT', `/v1/uploads/..%2F..%2Fetc/chunks/0`, good);
    expect(res.status).toBe(400);
    const bob = await s.token('bob');
    res = await call(s.url, bob, 'PUT', `/v1/uploads/${blobId}/chunks/0`, good);
    expect(await errorCode(res)).toBe('PERMISSION_DENIED');

    expect(await (await call(s.url, alice, 'GET', `/v1/uploads/${blobId}`)).json()).toEqual(before);
    res = await call(s.url, alice, 'POST', `/v1/uploads/${blobId}/commit`, { chunkCount: 1, size: 500 });
    expect(res.status).toBe(200);
    const bytes = new Uint8Array(await (await call(s.url, alice, 'GET', `/v1/blobs/${blobId}/chunks/0`)).arrayBuffer());
    expect(Buffer.from(await openChunk(dek, bytes, { blobId: blobIdFromHex(blobId), index: 0, keyGeneration: 1 })).equals(data)).toBe(true);
    res = await call(s.url, alice, 'PUT', `/v1/uploads/${blobId}/chunks/0`, good);
    expect(await errorCode(res)).toBe('UPLOAD_STATE');
  });

  it('answers 413 to an oversized Content-Length before reading the body, and refuses chunked bodies', async () => {
    const blobId = newBlobHex();
    await call(s.url, alice, 'POST', '/v1/uploads', { path: '/big.bin', blobId, keyGeneration: 1, keyRecord });
    const head = (len: string): string =>
      `PUT /v1/uploads/${blobId}/chunks/0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\nContent-Type: application/octet-stream\r\n${len}\r\n`;
    const answer = await raw(s.url, head(`Content-Length: ${MAX_SEALED_SIZE + 1}\r\n`)); // no body sent at all
    expect(answer).toMatch(/^HTTP\/1\.1 413/);
    expect(answer).toContain('"PAYLOAD_TOO_LARGE"');
    const absurd = await raw(s.url, head('Content-Length: 10000000000000000\r\n')); // 17 digits: still "too large"
    expect(absurd).toMatch(/^HTTP\/1\.1 413/);
    const chunked = await raw(s.url, head('Transfer-Encoding: chunked\r\n') + '5\r\nhello\r\n0\r\n\r\n');
    expect(chunked).toMatch(/^HTTP\/1\.1 400/);
    expect(chunked).toContain('"INVALID_ARGUMENT"');
    expect(await s.env.chunks.list(blobId)).toEqual([]);
  });

  it('keeps nothing of a chunk whose client disconnects mid-body; the upload resumes', async () => {
    const blobId = newBlobHex();
    const dek = newDek();
    const data = randomBytes(CHUNK_SIZE);
    const [c0] = await sealAll(dek, blobId, data);
    await call(s.url, alice, 'POST', '/v1/uploads', { path: '/cut.bin', blobId, keyGeneration: 1, keyRecord });
    const head = `PUT /v1/uploads/${blobId}/chunks/0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\nContent-Length: ${c0!.length}\r\n\r\n`;
    await raw(s.url, Buffer.concat([Buffer.from(head), c0!.subarray(0, 3 * 1024 * 1024)]), { waitMs: 300 });
    // the service notices the hang-up and cleans up on its own time (slower on a loaded machine)
    await vi.waitFor(async () => expect(await s.env.chunks.list(blobId)).toEqual([]), { timeout: 10_000, interval: 50 });
    expect(((await (await call(s.url, alice, 'GET', `/v1/uploads/${blobId}`)).json()) as { chunks: unknown[] }).chunks).toEqual([]);
    expect(((await (await call(s.url, alice, 'GET', '/v1/fs/list?path=/')).json()) as { items: Array<{ name: string }> }).items.map((i) => i.name)).not.toContain('cut.bin');
    expect((await call(s.url, alice, 'PUT', `/v1/uploads/${blobId}/chunks/0`, c0)).status).toBe(200);
    expect((await call(s.url, alice, 'POST', `/v1/uploads/${blobId}/commit`, { chunkCount: 1, size: CHUNK_SIZE })).status).toBe(200);
    expect((await s.env.chunks.sweepTemporary(0))).toBe(0);
    // the hang-up is the client's doing: counted as a 4xx, never as a 500 that would page someone
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    const puts = metrics.split('\n').filter((l) => l.includes('http_requests_total{') && l.includes('method="PUT"'));
    expect(puts.filter((l) => /status="5\d\d"/.test(l))).toEqual([]);
    expect(puts.some((l) => l.includes('status="400"'))).toBe(true);
  });

  it('answers 431 to oversized request headers', async () => {
    const res = await raw(s.url, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\n\r\n`);
    expect(res).toMatch(/^HTTP\/1\.1 431/);
    expect(res).toContain('"HEADERS_TOO_LARGE"');
    // an Expect the server does not support: 417 with the JSON error, not an empty body
    const expect417 = await raw(s.url, `GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: foo\r\n\r\n`);
    expect(expect417).toMatch(/^HTTP\/1\.1 417/);
    expect(expect417).toContain('"code":"INVALID_ARGUMENT"');
  });

  it('answers requests the router never sees (no Host, a bad Host, a backslash path) with the JSON error', async () => {
    for (const req of [
      'GET /healthz HTTP/1.1\r\n\r\n', // HTTP/1.1 requires Host
      'GET /healthz HTTP/1.1\r\nHost: a/b\r\n\r\n',
      'GET /v1\\fs\\stat HTTP/1.1\r\nHost: x\r\n\r\n',
    ]) {
      const res = await raw(s.url, req);
      expect(res, req).toMatch(/^HTTP\/1\.1 400/);
      expect(res, req).toContain('"code":"INVALID_ARGUMENT"');
    }
    // HTTP/1.0 needs no Host: still served
    expect(await raw(s.url, 'GET /healthz HTTP/1.0\r\n\r\n')).toMatch(/^HTTP\/1\.1 200/);
  });

  it('commit refuses a missing chunk, no FINAL, and a count/size mismatch', async () => {
    const dek = newDek();
    const full = new Uint8Array(CHUNK_SIZE);
    const b = newBlobHex();
    await call(s.url, alice, 'POST', '/v1/uploads', { path: '/c.bin', blobId: b, keyGeneration: 1, keyRecord });
    await call(s.url, alice, 'PUT', `/v1/uploads/${b}/chunks/0`, await seal(dek, b, 0, full, false));
    let res = await call(s.url, alice, 'POST', `/v1/uploads/${b}/commit`, { chunkCount: 2, size: CHUNK_SIZE + 1 });
    expect([res.status, await errorCode(res)]).toEqual([409, 'UPLOAD_INCOMPLETE']);
    res = await call(s.url, alice, 'POST', `/v1/uploads/${b}/commit`, { chunkCount: 1, size: CHUNK_SIZE });
    expect([res.status, await errorCode(res)]).toEqual([422, 'CHUNK_MISMATCH']);
    res = await call(s.url, alice, 'POST', `/v1/uploads/${b}/commit`, { chunkCount: 3, size: 5 });
    expect(await errorCode(res)).toBe('CHUNK_MISMATCH');
    res = await call(s.url, alice, 'PUT', `/v1/uploads/${b}/chunks/1`, await seal(dek, b, 1, new Uint8Array(1), true));
    expect(res.status).toBe(200);
    res = await call(s.url, alice, 'PUT', `/v1/uploads/${b}/chunks/2`, await seal(dek, b, 2, new Uint8Array(1), true));
    expect([res.status, await errorCode(res)]).toEqual([422, 'CHUNK_MISMATCH']); // a second FINAL
    res = await call(s.url, alice, 'POST', `/v1/uploads/${b}/commit`, { chunkCount: 2, size: CHUNK_SIZE + 1, extra: 1 });
    expect(await errorCode(res)).toBe('INVALID_ARGUMENT');
    res = await call(s.url, alice, 'POST', `/v1/uploads/${b}/commit`, { chunkCount: 2, size: CHUNK_SIZE + 1 });
    expect(res.status).toBe(200);
  });
});

describe('requests', () => {
  it('refuses path tricks; a backslash is a plain character', async () => {
    for (const p of ['/a/%2e%2e/b', '/a/..', '..', 'a', '/a%00b', '/a//b', '/a/./b', '/a/']) {
      const res = await call(s.url, alice, 'GET', `/v1/fs/stat?path=${p}`);
      expect(res.status, p).toBe(400);
      expect(await errorCode(res), p).toBe('INVALID_PATH');
    }
    let res = await call(s.url, alice, 'POST', '/v1/fs/mkdir', { path: '/a\\..\\b' });
    expect(res.status).toBe(201);
    res = await call(s.url, alice, 'GET', `/v1/fs/stat?path=${encodeURIComponent('/a\\..\\b')}`);
    expect(((await res.json()) as { name: string }).name).toBe('a\\..\\b');
    res = await call(s.url, alice, 'POST', '/v1/fs/mkdir', { path: '/x/../y' });
    expect(await errorCode(res)).toBe('INVALID_PATH');
    res = await call(s.url, alice, 'POST', '/v1/uploads', { path: '/../etc/passwd', blobId: newBlobHex(), keyGeneration: 1, keyRecord });
    expect(await errorCode(res)).toBe('INVALID_PATH');
  });

  it('refuses bad JSON bodies', async () => {
    const cases: Array<[unknown, Record<string, string>, string]> = [
      [{ path: '/q', bogus: true }, {}, 'INVALID_ARGUMENT'],
      [{ path: 5 }, {}, 'INVALID_ARGUMENT'],
      [{ path: '/q' }, { 'content-type': 'text/plain' }, 'INVALID_ARGUMENT'],
      [{ path: '/q', pad: 'x'.repeat(70 * 1024) }, {}, 'PAYLOAD_TOO_LARGE'],
    ];
    for (const [body, headers, code] of cases) expect(await errorCode(await call(s.url, alice, 'POST', '/v1/fs/mkdir', body, headers))).toBe(code);
    let res = await fetch(`${s.url}/v1/fs/mkdir`, { method: 'POST', headers: { authorization: `Bearer ${alice}`, 'content-type': 'application/json' }, body: '{"path":' });
    expect(await errorCode(res)).toBe('INVALID_ARGUMENT');
    const keyTooBig = { scheme: 'x', blob: 'y'.repeat(17 * 1024) };
    expect(await errorCode(await call(s.url, alice, 'POST', '/v1/uploads', { path: '/k', blobId: newBlobHex(), keyGeneration: 1, keyRecord: keyTooBig }))).toBe('INVALID_ARGUMENT');
    expect(await errorCode(await call(s.url, alice, 'POST', '/v1/uploads', { path: '/k', blobId: newBlobHex(), keyGeneration: 1, keyRecord: { noscheme: 1 } }))).toBe('INVALID_ARGUMENT');
    expect(await errorCode(await call(s.url, alice, 'GET', '/v1/nope'))).toBe('NOT_FOUND');
    // a key record nested deep enough to overflow a recursive walk: 400, not 500
    const deep = `{"scheme":"x","n":${'['.repeat(5000)}${']'.repeat(5000)}}`;
    res = await fetch(`${s.url}/v1/uploads`, {
      method: 'POST', headers: { authorization: `Bearer ${alice}`, 'content-type': 'application/json' },
      body: `{"path":"/deep","blobId":"${newBlobHex()}","keyGeneration":1,"keyRecord":${deep}}`,
    });
    expect([res.status, await errorCode(res)]).toEqual([400, 'INVALID_ARGUMENT']);
  });

  it('refuses names that are not well-formed Unicode instead of storing them altered', async () => {
    const post = (body: string): Promise<Response> =>
      fetch(`${s.url}/v1/fs/mkdir`, { method: 'POST', headers: { authorization: `Bearer ${alice}`, 'content-type': 'application/json' }, body });
    // lone surrogates (JSON escapes): they have no UTF-8 form, and two of them would list as the same name
    for (const body of ['{"path":"/s\\ud800x"}', '{"path":"/s\\udfffx"}', '{"path":"/\\udc00\\ud800"}']) {
      const res = await post(body);
      expect([res.status, await errorCode(res)], body).toEqual([400, 'INVALID_PATH']);
    }
    // a field given twice: refused, not "the last one wins"
    const dup = await post('{"path":"/dup-a","\\u0070ath":"/dup-b"}');
    expect([dup.status, await errorCode(dup)]).toEqual([400, 'INVALID_ARGUMENT']);
    expect((await call(s.url, alice, 'GET', '/v1/fs/stat?path=/dup-b')).status).toBe(404);
    // bytes that are not UTF-8 at all: refused, not replaced by U+FFFD
    const bytes = Buffer.concat([Buffer.from('{"path":"/'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
    const res = await fetch(`${s.url}/v1/fs/mkdir`, { method: 'POST', headers: { authorization: `Bearer ${alice}`, 'content-type': 'application/json' }, body: bytes });
    expect([res.status, await errorCode(res)]).toEqual([400, 'INVALID_ARGUMENT']);
    // the same in a query string: an encoded surrogate or a stray byte is a 400, never a lookup of something else
    for (const q of ['/%ED%A0%80', '/%FF', '/a%C3']) {
      const got = await call(s.url, alice, 'GET', `/v1/fs/stat?path=${q}`);
      expect(got.status, q).toBe(400);
    }
    // a parameter given twice is ambiguous: refused, not "the first one wins"
    const twice = await call(s.url, alice, 'GET', '/v1/fs/stat?path=/a&path=/b');
    expect([twice.status, await errorCode(twice)]).toEqual([400, 'INVALID_ARGUMENT']);
    // chunk indices and limits are canonical decimals
    for (const q of ['/v1/blobs/' + '0'.repeat(32) + '/chunks/01', '/v1/fs/list?path=/&limit=01', '/v1/fs/list?path=/&limit=0']) {
      expect((await call(s.url, alice, 'GET', q)).status, q).toBe(400);
    }
    // a surrogate pair (an emoji) is fine
    expect((await post('{"path":"/ok-\\ud83d\\ude00"}')).status).toBe(201);
    const grant = await call(s.url, alice, 'PUT', '/v1/grants', { path: '/ok-\u{1F600}', user: 'b\ud800', role: 'read' });
    expect([grant.status, await errorCode(grant)]).toEqual([400, 'INVALID_ARGUMENT']);
    const listed = (await (await call(s.url, alice, 'GET', '/v1/fs/list?path=/')).json()) as { items: Array<{ name: string }> };
    expect(listed.items.map((n) => n.name).filter((n) => n.includes('\uFFFD'))).toEqual([]);
  });
});
