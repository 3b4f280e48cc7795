// Keep-alive connections the service closes (http.ts): the client drops an idle connection before the service's
// `Keep-Alive: timeout=N` runs out, and a replay-safe POST lost on a reused connection before any answer is sent
// again on a fresh one, while a move or a remove is not. The server here speaks raw HTTP/1.1 over a real socket
// so that it can do what a real service does at its idle timeout: drop a connection a request is arriving on.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { isCofferError } from '../errors.js';
import { HttpClient, staleConnection } from './http.js';

interface RawServer {
  url: string;
  /** Requests seen, as "METHOD path #connection". */
  seen: string[];
  connections: number;
  close(): Promise<void>;
}

/**
 * Answers each request 200 `{}` (with `hint` as its Keep-Alive header, if any), and drops without an answer any
 * request that arrives on a connection which has already served one: a service closing an idle connection.
 */
async function rawServer(hint?: string): Promise<RawServer> {
  const seen: string[] = [];
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((s) => {
    const id = ++connections;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    let served = 0;
    let pending = '';
    s.on('data', (d: Buffer) => {
      pending += d.toString('latin1');
      for (;;) {
        const end = pending.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = pending.slice(0, end);
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (pending.length < end + 4 + length) return;
        pending = pending.slice(end + 4 + length);
        const [method, path] = head.split(' ');
        seen.push(`${method} ${path} #${id}`);
        if (served++ > 0) return void s.resetAndDestroy();
        s.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: keep-alive\r\n${hint ? `keep-alive: ${hint}\r\n` : ''}\r\n{}`);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    seen,
    get connections() {
      return connections;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

let server: RawServer | undefined;
let client: HttpClient | undefined;
afterEach(async () => {
  client?.close();
  await server?.close();
  server = client = undefined;
});

describe('keep-alive connections the service closes', () => {
  it('drops an idle connection before the service\'s Keep-Alive timeout runs out: the next request goes on a new one', async () => {
    server = await rawServer('timeout=2');
    client = new HttpClient({ server: server.url });
    await client.json('/v1/fs/mkdir', { method: 'POST', json: {} });
    await new Promise((r) => setTimeout(r, 1_300)); // past the hint less a second
    // a move is never replayed: it succeeds only if it went out on a fresh connection
    await client.json('/v1/fs/move', { method: 'POST', json: {} });
    expect(server.seen).toEqual(['POST /v1/fs/mkdir #1', 'POST /v1/fs/move #2']);
  });

  it('sends a replay-safe POST again on a fresh connection when the reused one was closed before any answer', async () => {
    server = await rawServer(); // no hint: the client cannot know when the service closes
    const retries: unknown[] = [];
    client = new HttpClient({ server: server.url, onRetry: (_n, e) => retries.push(e) });
    await client.json('/v1/fs/mkdir', { method: 'POST', json: {} });
    await client.json('/v1/fs/mkdir', { method: 'POST', json: {}, replaySafe: true });
    expect(server.seen).toEqual(['POST /v1/fs/mkdir #1', 'POST /v1/fs/mkdir #1', 'POST /v1/fs/mkdir #2']);
    expect(retries).toHaveLength(1);
    expect(staleConnection(retries[0])).toBe(true);
  });

  it('does not replay a move lost the same way: the caller gets a retryable UNAVAILABLE and the service saw it once', async () => {
    server = await rawServer();
    client = new HttpClient({ server: server.url });
    await client.json('/v1/fs/mkdir', { method: 'POST', json: {} });
    const failed = await client.json('/v1/fs/move', { method: 'POST', json: {} }).catch((e: unknown) => e);
    expect(isCofferError(failed, 'UNAVAILABLE')).toBe(true);
    expect(staleConnection(failed)).toBe(true);
    expect(server.seen).toEqual(['POST /v1/fs/mkdir #1', 'POST /v1/fs/move #1']);
  });

  it('does not call a failure on a fresh connection stale: only a reused connection can have been closed while idle', async () => {
    // a server that drops every request, the first of its connection too
    const dropAll = net.createServer((s) => s.on('data', () => s.resetAndDestroy()).on('error', () => undefined));
    await new Promise<void>((r) => dropAll.listen(0, '127.0.0.1', r));
    const other = new HttpClient({ server: `http://127.0.0.1:${(dropAll.address() as net.AddressInfo).port}` });
    try {
      const failed = await other.json('/v1/fs/move', { method: 'POST', json: {}, replaySafe: true }).catch((e: unknown) => e);
      expect(isCofferError(failed, 'UNAVAILABLE')).toBe(true);
      expect(staleConnection(failed)).toBe(false);
    } finally {
      other.close();
      await new Promise<void>((r) => dropAll.close(() => r()));
    }
  });
});
