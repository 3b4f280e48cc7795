// The temporary files a download writes beside its destination, and the sweep of those whose writer died.
// SIGINT/SIGTERM/SIGHUP remove the current one (src/cli/interrupt.ts), but SIGKILL, the OOM killer or a power
// loss cannot be caught, and such a file holds decrypted data. So a name says which host and process wrote it,
// and the next download into the same directory removes every one of this host's whose process is gone (one
// of another host on a shared filesystem, or of a live process, is left alone).
import { createHash, randomBytes } from 'node:crypto';
import { lstat, readdir, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

const PREFIX = '.coffer-partial-';
const PARTIAL = /^\.coffer-partial-([0-9a-f]{8})-([1-9][0-9]{0,9})-[0-9a-f]{8}$/;

/** Eight hex digits naming this host (short: a destination name near the 255-byte limit must leave room). */
function hostTag(): string {
  return createHash('sha256').update(os.hostname()).digest('hex').slice(0, 8);
}

/** A fresh temporary name for a download into `dir`: `.coffer-partial-<host>-<pid>-<random>`. */
export function partialPath(dir: string): string {
  return path.join(dir, `${PREFIX}${hostTag()}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

function processIsGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH'; // EPERM: alive, someone else's
  }
}

/**
 * Removes the partial downloads in `dir` left by processes of this host that no longer run (regular files owned
 * by this user only). Best effort: returns how many went, never throws.
 */
export async function sweepDeadPartials(dir: string): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  const host = hostTag();
  const uid = process.getuid?.();
  let removed = 0;
  for (const name of names) {
    const m = PARTIAL.exec(name);
    if (!m || m[1] !== host || !processIsGone(Number(m[2]))) continue;
    const file = path.join(dir, name);
    try {
      const st = await lstat(file);
      if (!st.isFile() || (uid !== undefined && st.uid !== uid)) continue;
      await unlink(file);
      removed++;
    } catch {
      // gone meanwhile, or not ours to remove
    }
  }
  return removed;
}
