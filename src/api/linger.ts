// Lingering close for requests refused in the middle of their body (a multipart part over the limit, a chunk
// that fails its checks): before the service answers, it reads and discards the rest of that body (bounded in
// bytes and time), as nginx's lingering_close does. Otherwise the socket is closed with unread bytes in its receive buffer, the kernel answers the client's
// next write with a reset, and a client still sending its body sees EPIPE/ECONNRESET instead of the 413 or 403
// it was sent (a race the client loses more often on Node 24, whose fetch writes faster; measured in issue 15).
import type { IncomingMessage } from 'node:http';

export interface LingerLimits {
  /** Stop after discarding this many bytes (default 128 MiB + 1 MiB: the largest body the API takes). */
  maxBytes?: number;
  /** Stop after this long (default 2 s): a slow client does not hold the answer back longer. */
  maxMs?: number;
  /**
   * Discard a body of which nothing was read yet too (default false). For an answer the client must see to
   * act on it, such as a 503 with Retry-After to an authenticated caller whose body was refused before its
   * first byte was read.
   */
  unreadToo?: boolean;
}

const DEFAULT_MAX_BYTES = 129 * 2 ** 20;
const DEFAULT_MAX_MS = 2_000;

/**
 * Resolves once `incoming` ended, closed or failed, or a limit was reached; never rejects. A body of which
 * nothing was read yet (refused up front: authentication, a declared length over the limit) is left alone and
 * answered at once, as is one that declares more than maxBytes. The caller answers with `Connection: close`.
 */
export function discardUnreadBody(incoming: IncomingMessage, limits: LingerLimits = {}): Promise<void> {
  const maxBytes = limits.maxBytes ?? DEFAULT_MAX_BYTES;
  const maxMs = limits.maxMs ?? DEFAULT_MAX_MS;
  if (incoming.readableEnded || incoming.destroyed) return Promise.resolve();
  if (!incoming.readableDidRead && limits.unreadToo !== true) return Promise.resolve();
  const declared = Number(incoming.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) return Promise.resolve();
  return new Promise<void>((resolve) => {
    let seen = 0;
    const done = (): void => {
      clearTimeout(timer);
      incoming.off('data', onData);
      incoming.off('end', done);
      incoming.off('close', done);
      incoming.off('error', done);
      incoming.pause();
      resolve();
    };
    const onData = (chunk: Buffer): void => {
      seen += chunk.length;
      if (seen > maxBytes) done();
    };
    const timer = setTimeout(done, maxMs);
    incoming.on('data', onData);
    incoming.once('end', done);
    incoming.once('close', done);
    incoming.once('error', done);
    incoming.resume();
  });
}
