// Starts the storage service on Node's http server through @hono/node-server, with bounded headers (431),
// request/header timeouts, JSON answers to malformed requests, and periodic GC.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { CofferError, ErrorCode } from '../errors.js';
import type { AddressInfo, Socket } from 'node:net';
import { getRequestListener, RequestError } from '@hono/node-server';
import { createLogger, createServiceMetrics, type Logger, type ServiceMetrics } from '../telemetry/index.js';
import type { Vault } from '../vault/index.js';
import { createApp, type ApiLimits } from './app.js';
import type { Authenticator } from './auth/index.js';

export interface ServerLimits extends ApiLimits {
  /** Request header bytes (default 16 KiB; more → 431). */
  maxHeaderBytes?: number;
  /** Whole request, headers and body (default 300 s). */
  requestTimeoutMs?: number;
  /** Default 30 s. */
  headersTimeoutMs?: number;
}

export interface StorageServerOptions {
  vault: Vault;
  auth: Authenticator;
  listen: { host: string; port: number };
  limits?: ServerLimits;
  logger?: Logger;
  metrics?: ServiceMetrics;
  /** GC period (default 10 min; 0 disables, also the pass a remove asks for). */
  gcIntervalMs?: number;
  /** Called after each GC pass (the service re-creates its space reserve then). */
  afterGc?: () => void;
}

export interface StorageServer {
  url: string;
  server: Server;
  close(): Promise<void>;
}

/** The JSON error body every answer of the service has (docs/http-api.md), for the answers made outside the routes. */
function errorJson(code: string, message: string): string {
  return JSON.stringify({ error: { code, message } });
}

function jsonResponse(status: number, code: string, message: string): Response {
  return new Response(errorJson(code, message), { status, headers: { 'content-type': 'application/json', connection: 'close' } });
}

/** A listen failure said in the operator's terms (errno codes that need no stack trace to act on). */
function listenError(e: NodeJS.ErrnoException, at: { host: string; port: number }): Error {
  const where = `${at.host.includes(':') ? `[${at.host}]` : at.host}:${at.port}`;
  if (e.code === 'EADDRINUSE') return new CofferError(ErrorCode.UNAVAILABLE, `cannot listen on ${where}: the address is in use (another coffer serve?)`, { cause: e });
  if (e.code === 'EACCES') return new CofferError(ErrorCode.PERMISSION_DENIED, `cannot listen on ${where}: permission denied (ports below 1024 need privileges)`, { cause: e });
  if (e.code === 'EADDRNOTAVAIL') return new CofferError(ErrorCode.INVALID_ARGUMENT, `cannot listen on ${where}: no such address on this machine`, { cause: e });
  return e;
}

function rawJsonResponse(status: number, reason: string, code: string, message: string): string {
  const body = errorJson(code, message);
  return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

/** Starts listening; resolves once bound. Throws the listen error (EADDRINUSE…). */
export async function startStorageServer(options: StorageServerOptions): Promise<StorageServer> {
  const logger = options.logger ?? createLogger();
  const metrics = options.metrics ?? createServiceMetrics();
  const limits = options.limits ?? {};
  let gcSoon: () => void = () => undefined; // set below once GC is scheduled
  const app = createApp({ vault: options.vault, auth: options.auth, logger, metrics, limits, onSpaceReleased: () => gcSoon() });
  // A request @hono/node-server cannot turn into a Request (no Host on HTTP/1.1, a Host that is not one, a
  // backslash in the path) would get its empty 400; this handler gives it the JSON one. HTTP/1.0 needs no Host
  // (load balancers' health checks often send none): a placeholder stands in for it there only.
  const toRequest = getRequestListener(app.fetch, {
    errorHandler: (e) => {
      if (e instanceof RequestError) return jsonResponse(400, ErrorCode.INVALID_ARGUMENT, `malformed request: ${e.message}`);
      logger.error({ err: e }, 'request listener failed');
      return jsonResponse(500, ErrorCode.INTERNAL, 'internal error');
    },
  });
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    // any valid host will do: the routes never look at it (a zoned IPv6 listen address would not be one)
    if (req.headers.host === undefined && req.httpVersion === '1.0') req.headers.host = 'localhost';
    void toRequest(req, res);
  };
  const server = createServer({
    maxHeaderSize: limits.maxHeaderBytes ?? 16 * 1024,
    requestTimeout: limits.requestTimeoutMs ?? 300_000,
    headersTimeout: limits.headersTimeoutMs ?? 30_000,
    requireHostHeader: false, // Node's own check answers an empty 400; the listener's answers the JSON one
  }, listener);
  await new Promise<void>((resolve, reject) => {
    const failed = (e: NodeJS.ErrnoException): void => reject(listenError(e, options.listen));
    server.once('error', failed);
    server.listen(options.listen.port, options.listen.host, () => {
      server.off('error', failed);
      resolve();
    });
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable) return void socket.destroy();
    if (err.code === 'HPE_HEADER_OVERFLOW') socket.end(rawJsonResponse(431, 'Request Header Fields Too Large', 'HEADERS_TOO_LARGE', 'request headers too large'));
    else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') socket.end(rawJsonResponse(408, 'Request Timeout', 'TIMEOUT', 'request timed out'));
    else if (err.code === 'ECONNRESET') socket.destroy();
    else socket.end(rawJsonResponse(400, 'Bad Request', 'INVALID_ARGUMENT', 'malformed HTTP request'));
  });
  server.on('request', (req: IncomingMessage) => req.on('error', () => undefined)); // aborted uploads are handled by the route
  // an Expect other than 100-continue: Node would answer 417 with an empty body; give the JSON error every other 4xx has
  server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => {
    const body = errorJson(ErrorCode.INVALID_ARGUMENT, 'unsupported Expect header (only 100-continue)');
    res.writeHead(417, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), Connection: 'close' });
    res.end(body);
  });

  let gcTimer: NodeJS.Timeout | undefined;
  let gcRunning = false;
  const gcInterval = options.gcIntervalMs ?? 10 * 60 * 1000;
  let gcFirst: NodeJS.Timeout | undefined;
  if (gcInterval > 0) {
    let again = false;
    const pass = (): void => {
      if (gcRunning) {
        again = true; // asked for while one runs: the space released meanwhile needs one more
        return;
      }
      gcRunning = true;
      options.vault.runGc(new Date())
        .then((report) => logger.info({ gc: report }, 'gc pass'))
        .catch((e: unknown) => logger.error({ err: e }, 'gc pass failed'))
        .finally(() => {
          gcRunning = false;
          options.afterGc?.();
          if (again) {
            again = false;
            gcSoon();
          }
        });
    };
    // a remove or abort asks for a pass: one second later, so a burst of removes (rm of many files) shares it
    let soon: NodeJS.Timeout | undefined;
    gcSoon = () => {
      if (soon) return;
      soon = setTimeout(() => {
        soon = undefined;
        pass();
      }, 1_000);
      soon.unref();
    };
    // one pass soon after start, then every interval: space held by abandoned uploads and removed files comes
    // back without waiting a whole interval after a restart (e.g. one made to recover from a full disk)
    gcFirst = setTimeout(pass, Math.min(gcInterval, 1_000));
    gcFirst.unref();
    gcTimer = setInterval(pass, gcInterval);
    gcTimer.unref();
  }

  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}`,
    server,
    close: () =>
      new Promise<void>((resolve, reject) => {
        if (gcTimer) clearInterval(gcTimer);
        if (gcFirst) clearTimeout(gcFirst);
        server.close((e) => (e ? reject(e) : resolve()));
        server.closeAllConnections();
      }),
  };
}
