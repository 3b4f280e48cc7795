// Bulk GETs whose whole body lands in a buffer the caller owns: the sealed-chunk download path. Node's HTTP
// client hands a response over as a stream of fresh 64 KiB buffers; at 1 GiB that is 16,000 allocations, the
// GCs they drive, and a copy of every byte into the caller's buffer — about half of a download's CPU on the
// client (docs/benchmarks.md). Here each keep-alive connection is a net/tls socket with `onread`: the kernel
// writes the response head into a small reused scratch buffer and the body straight into the caller's buffer,
// so a chunk costs no allocation and no copy in JavaScript.
//
// Deliberately narrow: GET only, one request at a time per connection (no pipelining), and a 2xx body must be a
// 200 with a Content-Length that fits the buffer. Everything else fails closed with the client's usual errors:
// an error status becomes the service's CofferError (errorFromResponse, shared with http.ts); a broken, early
// closed or timed-out connection is UNAVAILABLE / TIMEOUT and retryable; a malformed head, a body longer than
// its Content-Length or bytes nobody asked for are INTEGRITY. A connection that failed is destroyed before the
// caller hears of it, so the kernel can never write into a buffer the caller has reused.
import net from 'node:net';
import type tls from 'node:tls';
import { CofferError, ErrorCode, isCofferError } from '../errors.js';
import { errorFromResponse } from './http-errors.js';
import { HTTP_TOKEN, MAX_HEAD_SIZE, parseResponseHead, type ResponseHead } from './response-head.js';

export interface BodyFetcherOptions {
  /** The service's base URL (http: or https:). */
  base: URL;
  /** Idle keep-alive connections kept for reuse (default 8). */
  maxIdle?: number;
  /** Inactivity timeout of a request, connecting included (ms). */
  timeoutMs: number;
  /** Extra trusted CA certificates (PEM) for https. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Connect to this Unix socket instead of the URL's host and port (http: only). */
  socketPath?: string;
}

/** Error bodies are read when they are at most this long (the service's are a few hundred bytes). */
const MAX_ERROR_BODY = 64 * 1024;

export class BodyFetcher {
  private readonly idle: Connection[] = [];
  private readonly maxIdle: number;
  private closed = false;

  constructor(private readonly options: BodyFetcherOptions) {
    if (options.base.protocol !== 'http:' && options.base.protocol !== 'https:') {
      throw new CofferError(ErrorCode.INVALID_ARGUMENT, `server URL must be http(s): "${options.base.href}"`);
    }
    this.maxIdle = options.maxIdle ?? 8;
  }

  /**
   * GETs `target` (path and query, already encoded) and reads a 200 body into the start of `into`; returns the
   * filled view. Throws CofferError: the service's error for an error status, PAYLOAD_TOO_LARGE when the body
   * does not fit, INTEGRITY for a malformed response, UNAVAILABLE / TIMEOUT (retryable) for transport failures.
   */
  async getInto(target: string, headers: Record<string, string>, into: Buffer): Promise<Buffer> {
    if (this.closed) throw new CofferError(ErrorCode.UNAVAILABLE, 'client is closed');
    const request = requestText(this.options.base, target, headers);
    for (;;) {
      const reused = this.idle.pop();
      const conn = reused ?? new Connection(this.options, (c) => this.forget(c));
      try {
        const out = await conn.send(request, into);
        this.keep(conn);
        return out;
      } catch (e) {
        conn.destroy();
        // A keep-alive connection the service closed while it sat idle fails before a single byte comes back:
        // send again at once on a new connection (a GET is idempotent). Any other failure is the caller's.
        if (reused && conn.nothingReceived && isCofferError(e, ErrorCode.UNAVAILABLE)) continue;
        throw e;
      }
    }
  }

  /** Destroys every idle connection; requests in flight fail. */
  close(): void {
    this.closed = true;
    for (const c of this.idle.splice(0)) c.destroy();
  }

  /** Connections currently kept for reuse (tests). */
  get idleCount(): number {
    return this.idle.length;
  }

  private keep(conn: Connection): void {
    if (this.closed || !conn.reusable || this.idle.length >= this.maxIdle) {
      conn.destroy();
      return;
    }
    conn.setIdle();
    this.idle.push(conn);
  }

  private forget(conn: Connection): void {
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
  }
}

interface Job {
  into: Buffer;
  resolve(body: Buffer): void;
  reject(e: CofferError): void;
  head: ResponseHead | null;
  /** Where the body goes: `into`, or a small buffer for an error response's body. */
  target: Buffer | null;
  /** Body bytes expected and received. */
  length: number;
  n: number;
}

/** One keep-alive connection: at most one request at a time. */
class Connection {
  private readonly socket: net.Socket;
  private readonly scratch = Buffer.allocUnsafe(MAX_HEAD_SIZE);
  private headBytes = 0;
  private job: Job | null = null;
  private gone = false;
  /** No byte of a response arrived during the last request (see BodyFetcher.getInto). */
  nothingReceived = true;
  /** The last response allows another request on this connection. */
  reusable = false;

  constructor(private readonly options: BodyFetcherOptions, private readonly onGone: (c: Connection) => void) {
    const { base } = options;
    const host = base.hostname.replace(/^\[|\]$/g, '');
    const port = Number(base.port) || (base.protocol === 'https:' ? 443 : 80);
    // Node asks for the buffer of the next read right after each read (and once before connecting), so what
    // it returns follows the state the read just left: the head goes into scratch, a body into its target.
    const onread: net.OnReadOpts = { buffer: () => this.nextReadBuffer(), callback: (n) => this.onRead(n) };
    // tls.connect takes onread too (Node ≥ 14.18; @types/node does not list it)
    const tlsOptions: tls.ConnectionOptions & { onread: net.OnReadOpts } = {
      host, port, servername: net.isIP(host) ? undefined : host, ca: options.ca, ALPNProtocols: ['http/1.1'], onread,
    };
    // node:tls loaded only for an https service (not at every command's start)
    this.socket = base.protocol === 'https:'
      ? process.getBuiltinModule('node:tls').connect(options.socketPath ? { ...tlsOptions, path: options.socketPath } : tlsOptions)
      : net.connect(options.socketPath ? { path: options.socketPath, onread } : { host, port, onread });
    this.socket.setNoDelay(true);
    this.socket.setTimeout(options.timeoutMs);
    this.socket.on('timeout', () => this.fail(new CofferError(ErrorCode.TIMEOUT, `request to ${base.host} timed out`, { retryable: true })));
    this.socket.on('error', (e) => this.fail(new CofferError(ErrorCode.UNAVAILABLE, `cannot reach ${base.origin}: ${e.message}`, { cause: e, retryable: true })));
    this.socket.on('close', () => {
      const j = this.job;
      const got = j ? (j.head ? `after ${j.n} of ${j.length} body bytes` : 'before the response was complete') : '';
      this.fail(new CofferError(ErrorCode.UNAVAILABLE, `connection to ${base.host} closed ${got}`.trim(), { retryable: true }));
    });
  }

  send(request: string, into: Buffer): Promise<Buffer> {
    if (this.gone) return Promise.reject(new CofferError(ErrorCode.UNAVAILABLE, `connection to ${this.options.base.host} closed`, { retryable: true }));
    this.nothingReceived = true;
    this.reusable = false;
    this.socket.ref();
    this.socket.setTimeout(this.options.timeoutMs);
    return new Promise<Buffer>((resolve, reject) => {
      this.job = { into, resolve, reject, head: null, target: null, length: 0, n: 0 };
      this.socket.write(request);
    });
  }

  setIdle(): void {
    this.socket.setTimeout(0);
    this.socket.unref();
  }

  destroy(): void {
    this.socket.destroy();
    this.markGone();
  }

  private nextReadBuffer(): Buffer {
    const j = this.job;
    if (j?.target) return j.target.subarray(j.n, j.length);
    return this.scratch.subarray(this.headBytes);
  }

  /** Returns true: Node pauses the socket when this returns false. */
  private onRead(nread: number): boolean {
    this.read(nread);
    return true;
  }

  private read(nread: number): void {
    this.nothingReceived = false;
    const j = this.job;
    if (!j) return this.fail(integrity('data arrived with no request outstanding'));
    if (j.target) {
      j.n += nread;
    } else {
      this.headBytes += nread;
      let head: ResponseHead | null;
      try {
        head = parseResponseHead(this.scratch.subarray(0, this.headBytes));
      } catch (e) {
        return this.fail(e as CofferError);
      }
      if (!head) return;
      const extra = this.scratch.subarray(head.length, this.headBytes);
      this.headBytes = 0;
      const problem = this.start(j, head);
      if (problem) return this.fail(problem);
      if (!j.target) return this.finish(j, head); // no body to read (error status without a usable body)
      if (extra.length > j.length) return this.fail(integrity('response longer than its Content-Length'));
      extra.copy(j.target, 0);
      j.n = extra.length;
    }
    if (j.n === j.length && j.head) this.finish(j, j.head);
  }

  /** Checks a complete head and sets where the body goes; returns the error to fail with, if any. */
  private start(j: Job, head: ResponseHead): CofferError | null {
    j.head = head;
    if (head.status === 200) {
      if (head.contentLength === null) return integrity('response has no Content-Length');
      if (head.contentLength > j.into.length) return new CofferError(ErrorCode.PAYLOAD_TOO_LARGE, `response larger than ${j.into.length} bytes`);
      j.length = head.contentLength;
      j.target = j.into;
      return null;
    }
    if (head.status < 400) return integrity(`unexpected status ${head.status}`);
    // An error: read its (small) body for the service's error code when it has a length; otherwise the status
    // alone says enough. Either way the connection is closed afterwards (finish).
    if (head.contentLength !== null && head.contentLength <= MAX_ERROR_BODY) {
      j.length = head.contentLength;
      j.target = Buffer.alloc(head.contentLength);
    }
    return null;
  }

  /** A 200 resolves (the connection may be kept); an error status rejects, and the connection goes with it. */
  private finish(j: Job, head: ResponseHead): void {
    if (head.status !== 200) return this.fail(errorFromResponse(head.status, j.target ? j.target.toString('utf8', 0, j.length) : ''));
    this.job = null;
    this.reusable = head.keepAlive;
    j.resolve(j.into.subarray(0, j.length));
  }

  /** Destroys the connection first, then rejects the request in flight (if any). */
  private fail(e: CofferError): void {
    const j = this.job;
    this.job = null;
    this.socket.destroy();
    this.markGone();
    j?.reject(e);
  }

  private markGone(): void {
    if (this.gone) return;
    this.gone = true;
    this.reusable = false;
    this.onGone(this);
  }
}

function integrity(what: string): CofferError {
  return new CofferError(ErrorCode.INTEGRITY, `malformed HTTP response from the service: ${what}`);
}

/** The request bytes; refuses anything that could split the request (CR, LF, or a space in the target). */
function requestText(base: URL, target: string, headers: Record<string, string>): string {
  if (!/^\/[!-~]*$/.test(target)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `bad request target "${target}"`);
  let text = `GET ${target} HTTP/1.1\r\nHost: ${base.host}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (!HTTP_TOKEN.test(name) || /[\r\n\0]/.test(value)) {
      throw new CofferError(ErrorCode.INVALID_ARGUMENT, `bad request header ${JSON.stringify(name)}`);
    }
    text += `${name}: ${value}\r\n`;
  }
  return `${text}\r\n`;
}
