// Minimal HTTP client for the storage service: bearer auth, JSON bodies, the service's JSON error shape turned
// back into CofferError with the same stable code. Keep-alive connections are reused across chunk requests.
import type { Agent as HttpAgent, IncomingMessage } from 'node:http';
import { CofferError, ErrorCode, isCofferError } from '../errors.js';
import { BodyFetcher } from './body-fetcher.js';
import { errorFromResponse } from './http-errors.js';
import { neverSent, withRetry, type RetryOptions } from './retry.js';

// node:http taken without an ESM import: importing it builds a module facade that reads every export, and its lazy
// WebSocket/EventSource getters then load and compile undici, ≈ 40 ms of every command's start (none is used here).
// node:https (and with it node:tls, ≈ 15 ms) only for an https service.
const { Agent, request: httpRequest } = process.getBuiltinModule('node:http');
const https = (): typeof import('node:https') => process.getBuiltinModule('node:https');

export interface ClientOptions {
  server: string;
  token?: string;
  /** Parallel connections (chunk transfers). */
  maxSockets?: number;
  timeoutMs?: number;
  /** Extra trusted CA certificates (PEM) for an https server. */
  ca?: string | Buffer | Array<string | Buffer>;
  /**
   * Reach the server through this Unix socket instead of the URL's host and port (the URL still names the Host
   * header and the scheme): the enclave's host channel (enclave/runtime/host-channel.ts).
   */
  socketPath?: string;
  /** Told of each retry (the CLI reports them with COFFER_DEBUG). */
  onRetry?: RetryOptions['onRetry'];
  /**
   * Keep-alive connections shared by many clients (sharedConnections): a client per request then costs no new
   * connection. The clients' close() leaves them open; their owner closes them. The bearer token is sent on
   * every request, so clients of different users may share them.
   */
  shared?: SharedConnections;
}

/** Keep-alive connections to one server that many HttpClients use (ClientOptions.shared). */
export interface SharedConnections {
  readonly base: string;
  readonly agent: HttpAgent;
  readonly fetcher: BodyFetcher;
  close(): void;
}

/** Connections to `options.server` for many clients; the same options as a client's own. Throws INVALID_ARGUMENT for a bad URL. */
export function sharedConnections(options: Pick<ClientOptions, 'server' | 'maxSockets' | 'timeoutMs' | 'ca' | 'socketPath'>): SharedConnections {
  const base = parseBase(options.server);
  const { agent, fetcher } = makeConnections(base, options);
  return { base: base.href, agent, fetcher, close: () => { agent.destroy(); fetcher.close(); } };
}

function parseBase(server: string): URL {
  let base: URL;
  try {
    base = new URL(server);
  } catch {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `invalid server URL "${server}"`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `server URL must be http(s): "${server}"`);
  }
  return base;
}

function makeConnections(base: URL, options: Pick<ClientOptions, 'maxSockets' | 'timeoutMs' | 'ca' | 'socketPath'>): { agent: HttpAgent; fetcher: BodyFetcher } {
  // `timeout` is what makes Node's agent honour the service's `Keep-Alive: timeout=N` hint: with none, an idle
  // connection is kept until the service closes it, and the next request sent on it is lost (a commit after a
  // long hash, a mkdir after a pause); with one, the agent drops the connection a second before the service does.
  const agentOptions = { keepAlive: true, maxSockets: options.maxSockets ?? 8, timeout: options.timeoutMs ?? 120_000 };
  const agent = base.protocol === 'https:' ? new (https().Agent)({ ...agentOptions, ca: options.ca }) : new Agent(agentOptions);
  const fetcher = new BodyFetcher({ base, maxIdle: options.maxSockets ?? 8, timeoutMs: options.timeoutMs ?? 120_000, ca: options.ca, socketPath: options.socketPath });
  return { agent, fetcher };
}

export interface RequestOptions {
  method?: string;
  query?: Record<string, string | number | boolean | undefined>;
  json?: unknown;
  /** The body, whole or in pieces sent one after another (a batch's head and its payload: no copy joins them). */
  body?: Uint8Array | readonly Uint8Array[];
  headers?: Record<string, string>;
  /** Statuses that are not errors (default: 2xx). */
  okStatuses?: number[];
  /**
   * A POST that is safe to send again (a batch read, or a write the service answers the same when repeated: a
   * commit, a one-request file): retried after transient failures like a GET. Callers add no retry of their own
   * (one inside another multiplies the attempts: a service gone for good then took a minute to report).
   */
  idempotent?: boolean;
  /**
   * A POST that may be sent again when the keep-alive connection it went out on was found closed before any
   * answer came back, though not after other failures (`mkdir -p`: done twice, it answers as once). Others (a
   * move, a remove) are replayed only when they provably never left (a refused connection).
   */
  replaySafe?: boolean;
}


/** Connection errors that mean the request was never sent: the service was not listening (yet). */
const NEVER_SENT_ERRNO = new Set(['ECONNREFUSED']);
/**
 * Errors of a request on a reused keep-alive connection, before any answer, that mean the service had closed
 * that connection as the request went out (its idle timeout racing ours): Node's documented case for a replay.
 */
const STALE_CONNECTION_ERRNO = new Set(['ECONNRESET', 'EPIPE']);

/** The request went out on a reused connection the service had closed, and no answer came back. */
export function staleConnection(e: unknown): boolean {
  return isCofferError(e) && e.details?.staleConnection === true;
}

export class HttpClient {
  readonly base: URL;
  private readonly token: string | undefined;
  /** The `sub` of the bearer token (read, not verified: it is this client's own token), or null. */
  readonly tokenSubject: string | null;
  private readonly agent: HttpAgent;
  private readonly timeoutMs: number;
  private readonly fetcher: BodyFetcher;
  private readonly socketPath: string | undefined;
  private readonly onRetry: RetryOptions['onRetry'];
  private readonly ownsConnections: boolean;

  constructor(options: ClientOptions) {
    const base = parseBase(options.server);
    if (options.shared && options.shared.base !== base.href) {
      throw new CofferError(ErrorCode.INVALID_ARGUMENT, `shared connections to ${options.shared.base} cannot serve ${base.href}`);
    }
    this.base = base;
    this.token = options.token;
    this.tokenSubject = subjectOf(options.token);
    this.timeoutMs = options.timeoutMs ?? 120_000;
    this.socketPath = options.socketPath;
    this.onRetry = options.onRetry;
    this.ownsConnections = options.shared === undefined;
    ({ agent: this.agent, fetcher: this.fetcher } = options.shared ?? makeConnections(base, options));
  }

  url(pathname: string, query?: RequestOptions['query']): URL {
    const u = new URL(pathname.replace(/^\//, ''), this.base.href.endsWith('/') ? this.base.href : `${this.base.href}/`);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) u.searchParams.set(k, String(v));
    return u;
  }

  /**
   * Sends a request and returns the raw response (body not consumed). Throws CofferError for error statuses.
   * Idempotent methods (GET, HEAD, PUT — a chunk PUT replaces the same chunk) are retried after transient
   * failures; POST and DELETE only when they never reached the service (a refused connection, as while it
   * restarts), since then nothing was done; a replaySafe POST also when its reused connection was found closed;
   * an `idempotent` POST as a GET.
   */
  raw(pathname: string, options: RequestOptions = {}): Promise<IncomingMessage> {
    const method = options.method ?? 'GET';
    if (method === 'GET' || method === 'HEAD' || method === 'PUT' || options.idempotent === true) return withRetry(() => this.send(pathname, options), { onRetry: this.onRetry });
    const retryIf = options.replaySafe === true ? (e: unknown) => neverSent(e) || staleConnection(e) : neverSent;
    return withRetry(() => this.send(pathname, options), { retryIf, onRetry: this.onRetry });
  }

  private async send(pathname: string, options: RequestOptions): Promise<IncomingMessage> {
    const u = this.url(pathname, options.query);
    const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let body: Uint8Array | readonly Uint8Array[] | undefined = options.body;
    if (options.json !== undefined) {
      body = Buffer.from(JSON.stringify(options.json));
      headers['content-type'] = 'application/json';
    }
    const pieces = body === undefined ? [] : body instanceof Uint8Array ? [body] : body;
    if (body) headers['content-length'] = String(pieces.reduce((n, b) => n + b.byteLength, 0));
    const send = u.protocol === 'https:' ? https().request : httpRequest;
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = send(u, { method: options.method ?? 'GET', headers, agent: this.agent, timeout: this.timeoutMs, ...(this.socketPath ? { socketPath: this.socketPath } : {}) });
      let answered = false;
      req.on('response', (r) => {
        answered = true;
        resolve(r);
      });
      req.on('timeout', () => req.destroy(new CofferError(ErrorCode.TIMEOUT, `request to ${u.host} timed out`, { retryable: true })));
      req.on('error', (e) => {
        if (e instanceof CofferError) return reject(e);
        const code = (e as NodeJS.ErrnoException).code ?? '';
        // refused at connect: not a byte of the request went out
        const details = NEVER_SENT_ERRNO.has(code) ? { neverSent: true }
          : req.reusedSocket && !answered && STALE_CONNECTION_ERRNO.has(code) ? { staleConnection: true } : undefined;
        reject(new CofferError(ErrorCode.UNAVAILABLE, `cannot reach ${u.origin}: ${(e as Error).message}`, { cause: e, retryable: true, ...(details ? { details } : {}) }));
      });
      for (const piece of pieces.slice(0, -1)) req.write(piece);
      req.end(pieces.at(-1));
    });
    const status = res.statusCode ?? 0;
    const ok = options.okStatuses ? options.okStatuses.includes(status) : status >= 200 && status < 300;
    if (!ok) throw await errorFrom(res);
    return res;
  }

  /**
   * GET whose 200 body is read straight into the start of `into` (body-fetcher.ts: no allocation or copy per
   * piece, for bulk chunk downloads); returns the filled view. Errors as raw(), plus PAYLOAD_TOO_LARGE when the
   * body does not fit; retried after transient failures.
   */
  getInto(pathname: string, into: Buffer, headers: Record<string, string> = {}): Promise<Buffer> {
    const u = this.url(pathname);
    const all: Record<string, string> = { accept: 'application/octet-stream', ...headers };
    if (this.token) all.authorization = `Bearer ${this.token}`;
    return withRetry(() => this.fetcher.getInto(`${u.pathname}${u.search}`, all, into), { onRetry: this.onRetry });
  }

  async json<T>(pathname: string, options: RequestOptions = {}): Promise<T> {
    const res = await this.raw(pathname, options);
    const text = (await readAll(res)).toString('utf8');
    try {
      return (text ? JSON.parse(text) : null) as T;
    } catch {
      throw new CofferError(ErrorCode.INTERNAL, `server sent invalid JSON for ${pathname}`);
    }
  }

  /** Closes the client's own connections (shared ones stay open for their owner to close). */
  close(): void {
    if (!this.ownsConnections) return;
    this.agent.destroy();
    this.fetcher.close();
  }
}

/**
 * Reads a whole response body (at most `limit` bytes) into one buffer, preallocated from Content-Length, or
 * into the start of `into` (which then requires a Content-Length no larger than it); returns the filled view.
 */
export async function readAll(res: IncomingMessage, limit = 64 * 1024 * 1024, into?: Buffer): Promise<Buffer> {
  const declared = Number(res.headers['content-length']);
  const room = into ? Math.min(limit, into.length) : limit;
  if (Number.isSafeInteger(declared) && declared > room) {
    res.destroy();
    throw new CofferError(ErrorCode.PAYLOAD_TOO_LARGE, `response larger than ${room} bytes`);
  }
  if (into && !(Number.isSafeInteger(declared) && declared >= 0)) {
    res.destroy();
    throw new CofferError(ErrorCode.INTEGRITY, 'response has no Content-Length');
  }
  if (Number.isSafeInteger(declared) && declared >= 0) {
    const out = into ? into.subarray(0, declared) : Buffer.allocUnsafe(declared);
    // 'data' events rather than async iteration: a chunk arrives as ~128 pieces of 64 KiB, and a promise per
    // piece cost more than copying it
    return new Promise<Buffer>((resolve, reject) => {
      let n = 0;
      let settled = false;
      const fail = (e: CofferError): void => {
        if (settled) return;
        settled = true;
        res.destroy();
        reject(e);
      };
      res.on('data', (part: Buffer) => {
        if (n + part.length > declared) return fail(new CofferError(ErrorCode.INTEGRITY, 'response longer than its Content-Length'));
        part.copy(out, n);
        n += part.length;
      });
      res.once('end', () => {
        if (n !== declared) return fail(new CofferError(ErrorCode.UNAVAILABLE, `response ended after ${n} of ${declared} bytes`, { retryable: true }));
        settled = true;
        resolve(out);
      });
      res.once('error', (e) => fail(new CofferError(ErrorCode.UNAVAILABLE, `response broke off after ${n} of ${declared} bytes: ${e.message}`, { cause: e, retryable: true })));
      // 'close' follows every response, 'end' too: the error (its stack trace is not cheap) only when it ends one
      res.once('close', () => {
        if (!settled) fail(new CofferError(ErrorCode.UNAVAILABLE, `response ended after ${n} of ${declared} bytes`, { retryable: true }));
      });
    });
  }
  const parts: Buffer[] = [];
  let n = 0;
  for await (const part of res as AsyncIterable<Buffer>) {
    n += part.length;
    if (n > limit) {
      res.destroy();
      throw new CofferError(ErrorCode.PAYLOAD_TOO_LARGE, `response larger than ${limit} bytes`);
    }
    parts.push(part);
  }
  return Buffer.concat(parts, n);
}

async function errorFrom(res: IncomingMessage): Promise<CofferError> {
  let text = '';
  try {
    text = (await readAll(res, 1024 * 1024)).toString('utf8');
  } catch {
    /* keep the status */
  }
  return errorFromResponse(res.statusCode ?? 0, text);
}

/** The `sub` claim of a JWT's payload, without verifying it (the caller's own token), or null. */
function subjectOf(token: string | undefined): string | null {
  const payload = token?.split('.')[1];
  if (!payload) return null;
  try {
    const sub = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { sub?: unknown }).sub;
    return typeof sub === 'string' ? sub : null;
  } catch {
    return null;
  }
}
