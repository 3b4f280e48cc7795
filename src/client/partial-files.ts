// The temporary files a download writes beside its destination, and the sweep of those whose writer died.
// SIGINT/SIGTERM/SIGHUP remove the current one (src/cli/interrupt.ts), but SIGKILL, the OOM killer or a power
// loss cannot be caught, and such a file holds decrypted data. So a name says which machine, boot and PID
// namespace (processTag) and which process wrote it, and the next download into the same directory removes
// every one whose process is gone under this same tag, and any one nobody has written for an hour (a live
// download writes all the time; this covers a reboot, whose files carry the old boot's tag). A file of another
// machine on a shared filesystem, or of a live process, is left alone.
import { randomBytes } from 'node:crypto';
import { lstat, readdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { processIsGone, processTag } from './local-process.js';

const PREFIX = '.coffer-partial-';
const PARTIAL = /^\.coffer-partial-([0-9a-f]{8})-([1-9][0-9]{0,9})-[0-9a-f]{8}$/;

/** A fresh temporary name for a download into `dir`: `.coffer-partial-<tag>-<pid>-<random>`. */
export function partialPath(dir: string): string {
  return path.join(dir, `${PREFIX}${processTag()}-${pid}-${randomHex8()}`);
}

// get -r names one temporary file per file: the pid read once (process.pid is a getpid(2) each time) and the
// random part cut from a block of random bytes instead of one randomBytes call per name
const pid = process.pid;
let randomBlock = Buffer.alloc(0);
let randomAt = 0;
function randomHex8(): string {
  if (randomAt + 4 > randomBlock.length) {
    randomBlock = randomBytes(4096);
    randomAt = 0;
  }
  randomAt += 4;
  return randomBlock.toString('hex', randomAt - 4, randomAt);
}

/** A partial file nobody wrote to for this long belongs to no live download. */
const ABANDONED_MS = 60 * 60 * 1000;

/**
 * Removes the partial downloads in `dir` whose writer is gone: under this tag, a process that no longer runs;
 * under another, no write for an hour (regular files owned by this user only). `names`: the directory's entries
 * when the caller has just read them (get -r reads each directory once). Best effort: returns how many went,
 * never throws.
 */
export async function sweepDeadPartials(dir: string, names?: readonly string[]): Promise<number> {
  if (!names) {
    try {
      names = await readdir(dir);
    } catch {
      return 0;
    }
  }
  const tag = processTag();
  const uid = process.getuid?.();
  let removed = 0;
  for (const name of names) {
    const m = PARTIAL.exec(name);
    if (!m) continue;
    const file = path.join(dir, name);
    try {
      const st = await lstat(file);
      if (!st.isFile() || (uid !== undefined && st.uid !== uid)) continue;
      // under this tag the pid says it; under another (another machine or boot) only a long silence does (a
      // download of this machine stopped with Ctrl-Z keeps its file however long it waits)
      const gone = m[1] === tag ? processIsGone(Number(m[2])) : Date.now() - st.mtimeMs > ABANDONED_MS;
      if (!gone) continue;
      await unlink(file);
      removed++;
    } catch {
      // gone meanwhile, or not ours to remove
    }
  }
  return removed;
}
