// Turning an opened file's range reader into a response body: the one way both the native GET /v1/files route
// (routes.ts) and the S3 GetObject (enclave/s3/objects.ts) send plaintext. The reader hands out pieces of a
// pooled, reused chunk buffer (FileOps.open's read: a piece is valid until the sink's promise settles), so:
// - sendBody writes each piece straight to Node's response and settles only when Node is done with its memory
//   (the write callback): no copy, the pooled buffer goes back to the pool after the socket took it;
// - webBody, for callers with no Node response (the S3 handler called on its own), copies each piece into
//   1 MiB slices of a pull-based web stream (a slow reader holds a few MiB, not the file).
import type { ServerResponse } from 'node:http';
import { CofferError, ErrorCode } from '../../src/errors.js';

/** Reads the body's bytes in order into `sink` (a piece is valid only until the sink's promise settles). */
export type BodyReader = (sink: (piece: Uint8Array) => Promise<void>) => Promise<void>;

/** How a sent body ended: `error` undefined when every byte went out; `started` whether the head was written. */
export type BodyOutcome = { error?: unknown; started: boolean };

/**
 * Writes the status, headers and body straight to `res`. The first piece is read (and so authenticated) before
 * the status line goes out: the promise rejects, with nothing written, when the body fails before its first
 * byte (the caller answers with an error instead), and resolves once the head is out. A failure after that
 * destroys the connection (the client sees a body shorter than its Content-Length, never a wrong byte).
 * `done` is called exactly once, when the body ended either way (close the file there).
 */
export function sendBody(
  res: ServerResponse, read: BodyReader, status: number, headers: Record<string, string>, done: (outcome: BodyOutcome) => void,
): Promise<void> {
  let started = false;
  return new Promise<void>((resolve, reject) => {
    const begin = (): void => {
      if (started) return;
      started = true;
      res.writeHead(status, headers);
      resolve();
    };
    read(async (piece) => {
      begin();
      if (res.destroyed) throw new CofferError(ErrorCode.UNAVAILABLE, 'the client went away');
      await writePiece(res, piece);
    }).then(() => {
      begin(); // an empty body: the head alone
      res.end();
      done({ started: true });
    }, (e: unknown) => {
      done({ error: e, started });
      if (!started) return reject(e);
      res.destroy(); // never a wrong byte: the client sees a short body
    });
  });
}

/** Writes one piece and resolves when Node is done with its memory (so the buffer can be reused). */
function writePiece(res: ServerResponse, piece: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    const onClose = (): void => reject(new CofferError(ErrorCode.UNAVAILABLE, 'the client went away'));
    res.once('close', onClose);
    res.write(piece, (e) => {
      res.off('close', onClose);
      if (e) reject(e);
      else resolve();
    });
  });
}

const SLICE = 1024 * 1024;

/**
 * The body as a pull-based web stream (for a fetch-style Response): nothing is read before the first pull;
 * pieces are copied in 1 MiB slices, one at a time as the reader asks. `done` as for sendBody (after a
 * cancel, with the cancel's error).
 */
export function webBody(read: BodyReader, done: (outcome: BodyOutcome) => void): ReadableStream<Uint8Array> {
  let wake: (() => void) | null = null;
  let cancelled = false;
  let running: Promise<void> | null = null;
  const poke = (): void => {
    const w = wake;
    wake = null;
    w?.();
  };
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (running) return poke();
      running = read(async (piece) => {
        for (let off = 0; off < piece.length; off += SLICE) {
          if (cancelled) throw new CofferError(ErrorCode.UNAVAILABLE, 'the reader went away');
          controller.enqueue(Buffer.from(piece.subarray(off, Math.min(off + SLICE, piece.length))));
          await new Promise<void>((r) => (wake = r)); // until the reader asks for more (or cancels)
        }
      }).then(() => {
        done({ started: true });
        if (!cancelled) controller.close();
      }, (e: unknown) => {
        done({ error: e, started: true });
        if (!cancelled) controller.error(e);
      });
    },
    async cancel() {
      cancelled = true;
      if (!running) return done({ started: false }); // never read: nothing to stop
      poke();
      await running;
    },
  }, { highWaterMark: 0 }); // nothing read before the first pull
}
