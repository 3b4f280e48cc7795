// Ctrl-C or a kill during a transfer: Node's default for SIGINT/SIGTERM/SIGHUP ends the process at once, so no
// finally block runs. While a transfer runs these signals first do what must not be skipped (remove a partial
// plaintext file, say how to resume an upload), then end the process with the usual status (128 + signal).
import { unlinkSync } from 'node:fs';
import { constants } from 'node:os';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Runs `onSignal` (synchronous; returns the line to print) on a signal, then exits. `dispose` removes the handlers. */
function exitOnSignal(onSignal: () => string): () => void {
  const handler = (signal: (typeof SIGNALS)[number]): void => {
    process.stderr.write(`coffer: interrupted (${signal}); ${onSignal()}\n`);
    process.exit(128 + constants.signals[signal]);
  };
  for (const s of SIGNALS) process.on(s, handler);
  return () => {
    for (const s of SIGNALS) process.off(s, handler);
  };
}

/** `get`: tracks the current temporary file (DownloadOptions.onTempFile) and removes it if a signal ends the process. */
export function removeTempFileOnSignal(): { onTempFile: (path: string | null) => void; dispose: () => void } {
  let current: string | null = null;
  const dispose = exitOnSignal(() => {
    if (current) {
      try {
        unlinkSync(current);
      } catch {
        // already gone, or never created: the name is given before open(2) (download.ts), so a signal can come
        // between the two
      }
    }
    return 'nothing was left at the destination';
  });
  return { onTempFile: (path) => void (current = path), dispose };
}

/** `put`: remembers the upload's blob id (UploadOptions.onUpload) and prints how to resume it if a signal ends the process. */
export function resumeHintOnSignal(resumeCommand: (blobId: string) => string): { onUpload: (blobId: string) => void; dispose: () => void } {
  let blobId: string | null = null;
  const dispose = exitOnSignal(() => (blobId ? `the upload is kept on the service: resume it with ${resumeCommand(blobId)}` : 'nothing was uploaded'));
  return { onUpload: (id) => void (blobId = id), dispose };
}

/** `put -`: standard input cannot be read again, so a signal means the upload is abandoned; says how to free it now. */
export function abandonHintOnSignal(): { onUpload: (blobId: string) => void; dispose: () => void } {
  let blobId: string | null = null;
  const dispose = exitOnSignal(() => (blobId
    ? `nothing was committed; the unfinished upload is freed by the service's GC within 24 h, or now: coffer uploads abort ${blobId}`
    : 'nothing was committed'));
  return { onUpload: (id) => void (blobId = id), dispose };
}
