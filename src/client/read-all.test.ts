// readAll (http.ts): a body cut short fails (UNAVAILABLE, retryable), a whole one resolves — the 'close' after a
// whole body must not turn it into a failure (it no longer builds an error for it either).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAll } from './http.js';

let server: http.Server;
let base: string;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    if (req.url === '/whole') {
      res.writeHead(200, { 'content-length': '5' });
      res.end('hello');
    } else {
      res.writeHead(200, { 'content-length': '100' });
      res.write(Buffer.alloc(40, 1), () => res.socket?.destroy());
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));

const get = (path: string): Promise<http.IncomingMessage> => new Promise((resolve, reject) => {
  http.get(`${base}${path}`, { agent: false }, resolve).on('error', reject);
});

describe('readAll with a Content-Length', () => {
  it('resolves a whole body, also once the response closed after it', async () => {
    const res = await get('/whole');
    expect((await readAll(res)).toString()).toBe('hello');
    await new Promise((r) => setTimeout(r, 20)); // 'close' comes after 'end': nothing more happens
  });

  it('fails a body cut short: UNAVAILABLE, retryable, with the count', async () => {
    const res = await get('/short');
    await expect(readAll(res)).rejects.toMatchObject({ code: 'UNAVAILABLE', retryable: true, message: expect.stringMatching(/after 40 of 100 bytes/) });
  });

  it('into a given buffer too', async () => {
    const res = await get('/short');
    await expect(readAll(res, 1024, Buffer.alloc(200))).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });
});
