// multipart/form-data chunk uploads for browsers (busboy). Each part is a file part whose field name is the
// decimal chunk index; parts are handed one at a time, in order, to `onPart`, which streams them onward.
// Limits: parts, bytes per part (a part over the limit fails with PAYLOAD_TOO_LARGE, never silently
// truncated), total bytes, and no non-file fields.
import type { IncomingMessage } from 'node:http';
import busboy from 'busboy';
import type { Readable } from 'node:stream';
import { CofferError, ErrorCode } from '../errors.js';

export interface MultipartLimits {
  maxParts: number;
  maxPartBytes: number;
}

function tooLarge(m: string): CofferError {
  return new CofferError(ErrorCode.PAYLOAD_TOO_LARGE, m);
}

function malformed(e: unknown): CofferError {
  return e instanceof CofferError ? e : new CofferError(ErrorCode.INVALID_ARGUMENT, `malformed multipart body: ${(e as Error).message}`);
}

/** The part's bytes, failing at the end if busboy cut it at the size limit. */
async function* checked(stream: Readable & { truncated?: boolean }, maxPartBytes: number): AsyncGenerator<Uint8Array> {
  if (stream.errored) throw malformed(stream.errored); // it failed while waiting for its turn
  for await (const chunk of stream) yield chunk as Uint8Array;
  if (stream.truncated) throw tooLarge(`a multipart part is larger than ${maxPartBytes} bytes`);
}

/**
 * Parses the request and calls `onPart(name, bytes)` for each file part, sequentially. Resolves when every part
 * was handled; rejects with the first error (INVALID_ARGUMENT for malformed bodies or field parts,
 * PAYLOAD_TOO_LARGE for limits, or onPart's error) and stops reading the request.
 */
export function readMultipart(
  incoming: IncomingMessage, limits: MultipartLimits, onPart: (name: string, bytes: AsyncIterable<Uint8Array>) => Promise<void>,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({
        headers: incoming.headers,
        // busboy flags a part as truncated when it reaches fileSize exactly, so allow one byte more than the max.
        limits: { files: limits.maxParts, parts: limits.maxParts, fields: 0, fileSize: limits.maxPartBytes + 1, headerPairs: 16 },
      });
    } catch (e) {
      reject(new CofferError(ErrorCode.INVALID_ARGUMENT, `not a multipart/form-data body: ${(e as Error).message}`));
      return;
    }
    let failed = false;
    let chain: Promise<void> = Promise.resolve();
    const maxTotal = limits.maxParts * (limits.maxPartBytes + 16 * 1024);
    let total = 0;
    // Parts not yet finished. On failure each is destroyed with the error, so whoever is streaming it onward
    // (the chunk store's put) fails too and removes its temporary file, instead of waiting forever for bytes
    // that will never come.
    const open = new Set<Readable>();
    const fail = (e: unknown): void => {
      if (failed) return;
      failed = true;
      incoming.unpipe(bb);
      incoming.off('data', count);
      const err = e instanceof Error ? e : new Error(String(e));
      for (const part of open) part.destroy(err);
      open.clear();
      // Answer only once the part being stored has failed and removed its temporary file: the caller's error
      // response then means "nothing of this body is left on disk". `chain` never rejects (onPart's errors
      // are caught below), and the destroyed part makes a running onPart fail promptly.
      void chain.then(() => reject(e));
    };
    const count = (chunk: Buffer): void => {
      total += chunk.length;
      if (total > maxTotal) fail(tooLarge(`multipart body larger than ${maxTotal} bytes`));
    };
    bb.on('file', (name, stream) => {
      // A part can fail (busboy: "Unexpected end of form") before its turn comes: its error is kept by the
      // stream and surfaces in `checked`, or through bb's own 'error' → fail(). Never an unhandled 'error' event.
      stream.on('error', () => undefined);
      if (failed) {
        stream.resume();
        return;
      }
      open.add(stream);
      stream.once('close', () => open.delete(stream));
      chain = chain.then(async () => {
        if (failed) {
          stream.resume();
          return;
        }
        try {
          await onPart(name, checked(stream, limits.maxPartBytes));
        } catch (e) {
          stream.resume();
          fail(e);
        }
      });
    });
    bb.on('field', (name) => fail(new CofferError(ErrorCode.INVALID_ARGUMENT, `multipart: field "${name}" is not a file part`)));
    bb.on('fieldsLimit', () => fail(new CofferError(ErrorCode.INVALID_ARGUMENT, 'multipart: only file parts are allowed')));
    bb.on('filesLimit', () => fail(tooLarge(`multipart: more than ${limits.maxParts} parts`)));
    bb.on('partsLimit', () => fail(tooLarge(`multipart: more than ${limits.maxParts} parts`)));
    bb.on('error', (e) => fail(malformed(e)));
    bb.on('close', () => {
      void chain.then(() => {
        if (!failed) resolve();
      });
    });
    incoming.on('error', (e) => fail(new CofferError(ErrorCode.INVALID_ARGUMENT, 'request body aborted', { cause: e })));
    incoming.on('close', () => {
      if (!incoming.complete) fail(new CofferError(ErrorCode.INVALID_ARGUMENT, 'request body aborted'));
    });
    incoming.on('data', count);
    incoming.pipe(bb);
  });
}
