// `coffer get PATH -`: a verified download streamed to a writable (standard output) in file order. Every chunk
// is authenticated before a byte of it is written, but a pipe cannot take back what it has already passed on:
// when a later chunk fails, the bytes before it are out, and only the failure (the exit status) says the
// output is incomplete. Memory stays flat: chunks are fetched `concurrency` at a time and each waits for those
// before it to be written.
import type { Writable } from 'node:stream';
import { CofferError, ErrorCode } from '../errors.js';
import { checkManifest, openChunks, type DownloadOptions, type DownloadResult } from './download.js';
import type { VaultClient } from './vault-client.js';

/** Throws as downloadFile (NOT_FOUND, IS_A_DIRECTORY, CHUNK_AUTH_FAILED…), and UNAVAILABLE when `out` closes early. */
export async function streamFile(
  client: VaultClient, vaultPath: string, out: Writable, options: Omit<DownloadOptions, 'overwrite' | 'onTempFile' | 'sweepPartials'>,
): Promise<DownloadResult> {
  const { node, manifest } = await client.manifestByPath(vaultPath);
  options.onStart?.(node);
  checkManifest(manifest);
  const dek = await options.keys.openDataKey(manifest.keyRecord, manifest.blobId);
  let next = 0; // the offset to write next
  const waiting = new Map<number, (e?: unknown) => void>();
  let broken: Error | undefined;
  let failed: unknown;
  const onError = (e: Error): void => {
    broken ??= e;
  };
  out.on('error', onError);
  try {
    await openChunks(client, manifest, dek, Math.max(1, options.concurrency ?? 4), async (offset, plaintext) => {
      if (failed !== undefined) throw failed;
      if (offset !== next) await new Promise<void>((resolve, reject) => waiting.set(offset, (e?: unknown) => (e === undefined ? resolve() : reject(e))));
      // the buffer is reused once this settles: wait until the stream has taken the bytes (written or copied)
      await new Promise<void>((resolve, reject) => {
        if (broken) return reject(closed(broken));
        out.write(plaintext, (e) => (e ? reject(closed(e)) : resolve()));
      });
      next = offset + plaintext.length;
      options.onProgress?.(plaintext.length);
      const wake = waiting.get(next);
      waiting.delete(next);
      wake?.();
    }, (e) => {
      failed ??= e;
      // a chunk failed: the ones waiting for it to be written never will be
      for (const wake of waiting.values()) wake(e);
      waiting.clear();
    });
  } finally {
    dek.fill(0);
    out.off('error', onError);
  }
  return { node, destination: '-', size: manifest.size, chunkCount: manifest.chunkCount };
}

function closed(e: Error): CofferError {
  const code = (e as NodeJS.ErrnoException).code;
  return new CofferError(ErrorCode.UNAVAILABLE, code === 'EPIPE' ? 'standard output was closed before the end of the file' : `cannot write the output: ${e.message}`, { cause: e });
}
