// BodyFetcher: sealed chunks from the real storage service (plain and through a real TLS terminator) land in the
// caller's buffer; and against raw TCP servers that misbehave on purpose, every failure is a clear CofferError,
// a failed connection is never reused, and nothing is written into the caller's buffer after it failed.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestServer, type TestServer } from '../api/test-server.js';
import { MAX_SEALED_SIZE, generateKeyFile } from '../crypto/index.js';
import { CofferError, ErrorCode } from '../errors.js';
import { BodyFetcher } from './body-fetcher.js';
import { KeyFileDataKeys } from './data-keys.js';
import { uploadStream } from './upload.js';
import { VaultClient } from './vault-client.js';

/** What a raw test server does with each connection. */
type Script = (socket: net.Socket, connection: number) => void;

async function rawServer(script: Script): Promise<{ base: URL; connections: () => number; close(): Promise<void> }> {
  let count = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    script(s, count++);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return {
    base: new URL(`http://127.0.0.1:${port}/`),
    connections: () => count,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** Calls `respond` with the request head each time a whole request head has arrived on the socket. */
function onRequests(socket: net.Socket, respond: (head: string, n: number) => void): void {
  let pending = '';
  let n = 0;
  socket.on('data', (d: Buffer) => {
    pending += d.toString('latin1');
    for (let i = pending.indexOf('\r\n\r\n'); i >= 0; i = pending.indexOf('\r\n\r\n')) {
      const head = pending.slice(0, i);
      pending = pending.slice(i + 4);
      respond(head, n++);
    }
  });
}

const ok = (body: Buffer, extra = ''): Buffer => Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n${extra}\r\n`), body]);

async function failure(p: Promise<unknown>): Promise<CofferError> {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(e).toBeInstanceOf(CofferError);
  return e as CofferError;
}

describe('BodyFetcher against the storage service', () => {
  let srv: TestServer;
  let dir: string;
  let token: string;
  let blobId: string;
  let sealed: Buffer[];

  beforeAll(async () => {
    srv = await startTestServer();
    dir = mkdtempSync(path.join(tmpdir(), 'coffer-fetch-'));
    token = await srv.token('alice');
    await generateKeyFile(path.join(dir, 'k'));
    const keys = await KeyFileDataKeys.open(path.join(dir, 'k'));
    const client = new VaultClient({ server: srv.url, token });
    const data = randomBytes(8 * 1024 * 1024 + 1000);
    const r = await uploadStream(client, [data], data.length, { path: '/f.bin', keys });
    blobId = r.blobId;
    // the chunks as Node's own HTTP client receives them, for comparison
    sealed = [await client.getChunk(blobId, 0), await client.getChunk(blobId, 1)];
    client.close();
  });
  afterAll(async () => {
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads whole sealed chunks into the caller buffer over one keep-alive connection', async () => {
    const fetcher = new BodyFetcher({ base: new URL(srv.url), timeoutMs: 10_000 });
    const into = Buffer.alloc(MAX_SEALED_SIZE);
    for (const index of [0, 1, 0]) {
      const body = await fetcher.getInto(`/v1/blobs/${blobId}/chunks/${index}`, { authorization: `Bearer ${token}` }, into);
      expect(body.buffer).toBe(into.buffer); // a view of the caller's buffer, not a copy
      expect(body.byteOffset).toBe(into.byteOffset);
      expect(body.equals(sealed[index] as Buffer)).toBe(true);
      expect(fetcher.idleCount).toBe(1);
    }
    fetcher.close();
    expect(fetcher.idleCount).toBe(0);
  });

  it('turns the service errors into its CofferErrors and keeps working afterwards', async () => {
    const client = new VaultClient({ server: srv.url, token });
    const into = Buffer.alloc(MAX_SEALED_SIZE);
    expect((await failure(client.getChunkInto(blobId, 7, into))).code).toBe(ErrorCode.NOT_FOUND);
    expect((await failure(client.getChunkInto('00'.repeat(16), 0, into))).code).toBe(ErrorCode.NOT_FOUND);
    const bad = new VaultClient({ server: srv.url, token: 'not-a-token' });
    expect((await failure(bad.getChunkInto(blobId, 0, into))).code).toBe(ErrorCode.UNAUTHENTICATED);
    bad.close();
    const small = Buffer.alloc(1024);
    expect((await failure(client.getChunkInto(blobId, 0, small))).code).toBe(ErrorCode.PAYLOAD_TOO_LARGE);
    expect((await client.getChunkInto(blobId, 1, into)).equals(sealed[1] as Buffer)).toBe(true);
    client.close();
  });

  it('refuses request headers and targets that would split the request', async () => {
    const fetcher = new BodyFetcher({ base: new URL(srv.url), timeoutMs: 10_000 });
    const into = Buffer.alloc(16);
    expect((await failure(fetcher.getInto('/v1/x', { authorization: 'Bearer a\r\nx-evil: 1' }, into))).code).toBe(ErrorCode.INVALID_ARGUMENT);
    expect((await failure(fetcher.getInto('/v1/x HTTP/1.1\r\n', {}, into))).code).toBe(ErrorCode.INVALID_ARGUMENT);
    expect((await failure(fetcher.getInto('v1/x', {}, into))).code).toBe(ErrorCode.INVALID_ARGUMENT);
    fetcher.close();
  });

  describe('over TLS', () => {
    let tlsDir: string;
    let proxy: tls.Server;
    let proxyUrl: URL;
    beforeAll(async () => {
      // a real TLS terminator in front of the service, with a certificate for localhost and 127.0.0.1
      tlsDir = mkdtempSync(path.join(tmpdir(), 'coffer-tls-'));
      execFileSync('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=localhost',
        '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', path.join(tlsDir, 'key.pem'), '-out', path.join(tlsDir, 'cert.pem'),
      ], { stdio: 'ignore' });
      const upstream = new URL(srv.url);
      proxy = tls.createServer({ key: readFileSync(path.join(tlsDir, 'key.pem')), cert: readFileSync(path.join(tlsDir, 'cert.pem')) }, (s) => {
        const back = net.connect(Number(upstream.port), upstream.hostname);
        s.pipe(back).pipe(s);
        s.on('error', () => back.destroy());
        back.on('error', () => s.destroy());
      });
      await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
      proxyUrl = new URL(`https://localhost:${(proxy.address() as net.AddressInfo).port}/`);
    });
    afterAll(async () => {
      await new Promise((r) => proxy.close(r));
      rmSync(tlsDir, { recursive: true, force: true });
    });

    it('reads sealed chunks through TLS when the certificate is trusted', async () => {
      const client = new VaultClient({ server: proxyUrl.href, token, ca: readFileSync(path.join(tlsDir, 'cert.pem')) });
      const into = Buffer.alloc(MAX_SEALED_SIZE);
      expect((await client.getChunkInto(blobId, 0, into)).equals(sealed[0] as Buffer)).toBe(true);
      expect((await client.getChunkInto(blobId, 1, into)).equals(sealed[1] as Buffer)).toBe(true);
      client.close();
    });

    it('refuses a certificate it does not trust', async () => {
      const fetcher = new BodyFetcher({ base: proxyUrl, timeoutMs: 10_000 });
      const e = await failure(fetcher.getInto(`/v1/blobs/${blobId}/chunks/0`, { authorization: `Bearer ${token}` }, Buffer.alloc(MAX_SEALED_SIZE)));
      expect(e.code).toBe(ErrorCode.UNAVAILABLE);
      expect(e.message).toMatch(/certificate/i);
      fetcher.close();
    });
  });
});

describe('BodyFetcher against servers that misbehave', () => {
  const get = (base: URL, into: Buffer, timeoutMs = 5_000): Promise<Buffer> => {
    const f = new BodyFetcher({ base, timeoutMs });
    return f.getInto('/x', {}, into).finally(() => f.close());
  };

  it('a body cut short by a closed connection is a retryable UNAVAILABLE naming the bytes received', async () => {
    const s = await rawServer((sock) => onRequests(sock, () => sock.end(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n'), Buffer.alloc(300)]))));
    const e = await failure(get(s.base, Buffer.alloc(2000)));
    expect([e.code, e.retryable]).toEqual([ErrorCode.UNAVAILABLE, true]);
    expect(e.message).toContain('300 of 1000');
    await s.close();
  });

  it('malformed responses are INTEGRITY errors: bad head, no Content-Length, more bytes than declared, chunked, 206', async () => {
    const cases: Array<[string, Buffer]> = [
      ['bad status line', Buffer.from('HTTP/1.1 2OO OK\r\n\r\n')],
      ['obs-fold', Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 1\r\n x\r\n\r\na')],
      ['no length', Buffer.from('HTTP/1.1 200 OK\r\n\r\nabc')],
      ['too long', Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nabc')],
      ['chunked', Buffer.from('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n')],
      ['partial content', Buffer.from('HTTP/1.1 206 Partial Content\r\ncontent-length: 3\r\n\r\nabc')],
      ['informational', Buffer.from('HTTP/1.1 100 Continue\r\n\r\n')],
    ];
    for (const [what, reply] of cases) {
      const s = await rawServer((sock) => onRequests(sock, () => sock.write(reply)));
      const e = await failure(get(s.base, Buffer.alloc(64)));
      expect(`${what}: ${e.code}`).toBe(`${what}: ${ErrorCode.INTEGRITY}`);
      await s.close();
    }
  });

  it('a head larger than 16 KiB is HEADERS_TOO_LARGE', async () => {
    const s = await rawServer((sock) => onRequests(sock, () => sock.write(`HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(20_000)}\r\ncontent-length: 1\r\n\r\na`)));
    expect((await failure(get(s.base, Buffer.alloc(64)))).code).toBe(ErrorCode.HEADERS_TOO_LARGE);
    await s.close();
  });

  it('a body larger than the buffer is PAYLOAD_TOO_LARGE before any of it is read', async () => {
    const s = await rawServer((sock) => onRequests(sock, () => sock.write('HTTP/1.1 200 OK\r\ncontent-length: 65\r\n\r\n')));
    expect((await failure(get(s.base, Buffer.alloc(64)))).code).toBe(ErrorCode.PAYLOAD_TOO_LARGE);
    await s.close();
  });

  it('heads and bodies split into many small writes are put back together', async () => {
    const body = randomBytes(100_000);
    const s = await rawServer((sock) => {
      sock.setNoDelay(true);
      onRequests(sock, () => {
        const all = ok(body, 'x-pad: 1\r\n');
        let off = 0;
        const step = (): void => {
          if (off >= all.length) return;
          const n = off < 80 ? 1 : 7_919; // the head a byte at a time, then the body in odd pieces
          sock.write(all.subarray(off, off + n));
          off += n;
          setImmediate(step);
        };
        step();
      });
    });
    const into = Buffer.alloc(200_000, 0xee);
    const got = await get(s.base, into);
    expect(got.equals(body)).toBe(true);
    expect(into[body.length]).toBe(0xee); // nothing written past the body
    await s.close();
  });

  it('error statuses become CofferErrors: the service JSON keeps its code, other bodies map from the status', async () => {
    const json = '{"error":{"code":"CHUNK_MISSING","message":"gone away"}}';
    const replies = [
      `HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: ${json.length}\r\n\r\n${json}`,
      'HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nbusy',
      'HTTP/1.1 403 Forbidden\r\nconnection: close\r\n\r\n',
    ];
    let answered = 0; // across connections: a connection that carried an error is not reused
    const s = await rawServer((sock) => onRequests(sock, () => sock.write(replies[answered++] as string)));
    const f = new BodyFetcher({ base: s.base, timeoutMs: 5_000 });
    const into = Buffer.alloc(64);
    const a = await failure(f.getInto('/x', {}, into));
    expect([a.code, a.message]).toEqual([ErrorCode.CHUNK_MISSING, 'gone away']);
    const b = await failure(f.getInto('/x', {}, into));
    expect([b.code, b.retryable]).toEqual([ErrorCode.UNAVAILABLE, true]);
    const c = await failure(f.getInto('/x', {}, into));
    expect(c.code).toBe(ErrorCode.PERMISSION_DENIED);
    f.close();
    await s.close();
  });

  it('an idle connection the server closed is replaced at once; Connection: close is honoured', async () => {
    const s = await rawServer((sock, conn) => onRequests(sock, (_h, n) => {
      // connection 0 answers once and closes a moment later (as a keep-alive timeout would);
      // connection 1 answers with Connection: close; connection 2 keeps going
      if (conn === 0) {
        sock.write(ok(Buffer.from('first')));
        setTimeout(() => sock.end(), 50);
      } else if (conn === 1) {
        sock.end(ok(Buffer.from(`second ${n}`), 'connection: close\r\n'));
      } else {
        sock.write(ok(Buffer.from(`more ${n}`)));
      }
    }));
    const f = new BodyFetcher({ base: s.base, timeoutMs: 5_000 });
    const into = Buffer.alloc(64);
    expect((await f.getInto('/x', {}, into)).toString()).toBe('first');
    await vi.waitFor(() => expect(f.idleCount).toBe(0), { timeout: 5_000, interval: 20 }); // the closed connection left the pool when it closed
    expect((await f.getInto('/x', {}, into)).toString()).toBe('second 0');
    expect(f.idleCount).toBe(0); // Connection: close is not kept
    expect((await f.getInto('/x', {}, into)).toString()).toBe('more 0');
    expect((await f.getInto('/x', {}, into)).toString()).toBe('more 1');
    expect(s.connections()).toBe(3);
    f.close();
    await s.close();
  });

  it('a keep-alive connection closed as the next request goes out is retried once on a new connection', async () => {
    // connection 0 answers the first request, then closes without answering the second
    const s = await rawServer((sock, conn) => onRequests(sock, (_h, n) => {
      if (conn === 0 && n === 1) sock.destroy();
      else sock.write(ok(Buffer.from(`c${conn} r${n}`)));
    }));
    const f = new BodyFetcher({ base: s.base, timeoutMs: 5_000 });
    const into = Buffer.alloc(64);
    expect((await f.getInto('/x', {}, into)).toString()).toBe('c0 r0');
    expect((await f.getInto('/x', {}, into)).toString()).toBe('c1 r0');
    f.close();
    await s.close();
  });

  it('data nobody asked for drops the connection from the pool', async () => {
    const s = await rawServer((sock) => onRequests(sock, () => {
      sock.write(ok(Buffer.from('x')));
      setTimeout(() => sock.write('HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\ny'), 30);
    }));
    const f = new BodyFetcher({ base: s.base, timeoutMs: 5_000 });
    const into = Buffer.alloc(64);
    expect((await f.getInto('/x', {}, into)).toString()).toBe('x');
    expect(f.idleCount).toBe(1);
    await vi.waitFor(() => expect(f.idleCount).toBe(0), { timeout: 5_000, interval: 20 });
    f.close();
    await s.close();
  });

  it('a silent server is a retryable TIMEOUT, and a failed connection never writes into the buffer again', async () => {
    let late: (() => void) | undefined;
    const s = await rawServer((sock) => onRequests(sock, () => {
      sock.write(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 2000\r\n\r\n'), Buffer.alloc(500, 1)]));
      late = () => sock.write(Buffer.alloc(1500, 2));
    }));
    const into = Buffer.alloc(4096);
    const e = await failure(get(s.base, into, 300));
    expect([e.code, e.retryable]).toEqual([ErrorCode.TIMEOUT, true]);
    into.fill(0xaa); // the caller reuses its buffer at once
    late?.();
    await new Promise((r) => setTimeout(r, 200));
    expect(into.every((b) => b === 0xaa)).toBe(true);
    await s.close();
  });

  it('an unreachable server is a retryable UNAVAILABLE', async () => {
    const s = await rawServer(() => undefined);
    const base = s.base;
    await s.close();
    const e = await failure(get(base, Buffer.alloc(8)));
    expect([e.code, e.retryable]).toEqual([ErrorCode.UNAVAILABLE, true]);
  });
});
