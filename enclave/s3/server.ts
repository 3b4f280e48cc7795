// The S3 listener: its own port, path-style addressing, https when given a certificate (the gateway's
// attested one in the enclave; a pinned development certificate otherwise). hono routes every request to the
// S3 handler; bodies are read straight from Node's request stream and answers streamed (memory stays flat).
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import { Hono } from 'hono';
import { sendBody } from '../gateway/send-body.js';
import { takeDirectBody } from './context.js';
import type { S3Handler } from './handler.js';

export interface S3ServerOptions {
  handler: S3Handler;
  /** A TCP address, or a Unix socket path (the enclave's channel socket). */
  listen: { host: string; port: number } | { path: string };
  tls?: { cert: string; key: string };
}

export interface S3Server {
  url: string;
  server: Server;
  close(): Promise<void>;
}

type NodeEnv = { Bindings: { incoming: IncomingMessage; outgoing?: ServerResponse } };

// @hono/node-server's marker for a response the route wrote itself (its utils/response RESPONSE_ALREADY_SENT)
const ALREADY_SENT = 'x-hono-already-sent';

/** A hono app answering every request with the S3 handler (mountable in the gateway's app too). */
export function createS3App(handler: S3Handler): Hono<NodeEnv> {
  const app = new Hono<NodeEnv>();
  app.all('*', async (c) => {
    const incoming = c.env.incoming;
    const raw = incoming.url ?? '/';
    const q = raw.indexOf('?');
    const hasBody = c.req.method !== 'GET' && c.req.method !== 'HEAD';
    const res = await handler({
      method: c.req.method,
      rawPath: q < 0 ? raw : raw.slice(0, q),
      rawQuery: q < 0 ? '' : raw.slice(q + 1),
      headers: c.req.raw.headers,
      body: hasBody ? incoming : null,
    });
    // a GET's plaintext goes straight from the pooled chunk buffers to the socket (send-body.ts), not through
    // the Response's web stream (which copies each piece)
    const direct = takeDirectBody(res);
    const outgoing = c.env.outgoing;
    if (direct === undefined || outgoing === undefined) return res;
    try {
      await sendBody(outgoing, direct.read, res.status, Object.fromEntries(res.headers), direct.done);
    } catch (e) {
      return direct.failed(e); // failed before its first byte: nothing was written
    }
    return new Response(null, { status: res.status, headers: { [ALREADY_SENT]: 'true' } });
  });
  return app;
}

export async function startS3Server(options: S3ServerOptions): Promise<S3Server> {
  const app = createS3App(options.handler);
  const listener = getRequestListener(app.fetch);
  const server: Server = options.tls
    ? (createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, listener) as unknown as Server)
    : createHttpServer(listener);
  // large parts take long on slow links; headers must come quickly
  server.requestTimeout = 3600_000;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const done = (): void => {
      server.off('error', reject);
      resolve();
    };
    if ('path' in options.listen) server.listen(options.listen.path, done);
    else server.listen(options.listen.port, options.listen.host, done);
  });
  const addr = server.address();
  const url = typeof addr === 'string' || addr === null
    ? `unix:${addr ?? ''}`
    : `${options.tls ? 'https' : 'http'}://${(addr as AddressInfo).family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
  return {
    url,
    server,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
