// linger.ts against a real HTTP server on loopback: with unreadToo, a body refused before its first byte was read
// is read and discarded too, within the byte and time bounds.
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { discardUnreadBody, type LingerLimits } from './linger.js';

const MiB = 1024 * 1024;
let server: Server | undefined;

afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

/** A server that refuses every body before reading it: 503, Connection: close, after lingering with `limits`. */
async function refusingServer(limits: LingerLimits): Promise<number> {
  server = createServer((req: IncomingMessage, res) => {
    void discardUnreadBody(req, limits).then(() => {
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1', connection: 'close' });
      res.end('{"error":{"code":"UNAVAILABLE"}}');
    });
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  return (server?.address() as AddressInfo).port;
}

/** PUTs `size` bytes in 64 KiB writes (announcing `announced`); resolves with the status, or the error's code. */
function put(port: number, size: number, announced = size): Promise<number | string> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, method: 'PUT', path: '/x', headers: { 'content-length': String(announced) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    const piece = Buffer.alloc(64 * 1024, 1);
    let sent = 0;
    const pump = (): void => {
      while (sent < size) {
        sent += piece.length;
        if (!req.write(piece)) return void req.once('drain', pump);
      }
      if (announced === size) req.end();
    };
    pump();
  });
}

describe('discardUnreadBody', () => {
  it('with unreadToo, reads a body of which nothing was read yet, and stops after maxMs when it never ends', async () => {
    const port = await refusingServer({ unreadToo: true, maxMs: 300 });
    const t0 = Date.now();
    const answer = await put(port, 256 * 1024, 512 * 1024); // announces more than it sends, never ends
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(answer === 503 || typeof answer === 'string').toBe(true);
  });

  it('does not read a body that declares more than maxBytes', async () => {
    let lingered = -1;
    server = createServer((req, res) => {
      const t0 = Date.now();
      void discardUnreadBody(req, { unreadToo: true, maxBytes: MiB, maxMs: 3_000 }).then(() => {
        lingered = Date.now() - t0;
        res.writeHead(413, { connection: 'close' });
        res.end();
      });
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    await put(port, 64 * 1024, 8 * MiB);
    expect(lingered).toBeGreaterThanOrEqual(0);
    expect(lingered).toBeLessThan(1_000);
  });
});
