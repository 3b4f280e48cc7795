// Ctrl-C or a kill during `coffer get`: Node's default for SIGINT/SIGTERM/SIGHUP ends the process at once, so no
// finally block runs and a partial plaintext file stayed behind. While a download writes, these signals remove
// its temporary file first, then end the process with the usual status (128 + signal number).
import { unlinkSync } from 'node:fs';
import { constants } from 'node:os';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Tracks the current temporary file (DownloadOptions.onTempFile) and removes it if a signal ends the process. */
export function removeTempFileOnSignal(): { onTempFile: (path: string | null) => void; dispose: () => void } {
  let current: string | null = null;
  const handler = (signal: (typeof SIGNALS)[number]): void => {
    if (current) {
      try {
        unlinkSync(current);
      } catch {
        // already gone
      }
    }
    process.stderr.write(`coffer: interrupted (${signal}); nothing was left at the destination\n`);
    process.exit(128 + constants.signals[signal]);
  };
  for (const s of SIGNALS) process.on(s, handler);
  return {
    onTempFile: (path) => {
      current = path;
    },
    dispose: () => {
      for (const s of SIGNALS) process.off(s, handler);
    },
  };
}
