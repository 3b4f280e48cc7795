// get -r's writer for a verified small file when nothing is fsynced (its default): the same steps as placeFile
// (small-file.ts) — a temporary name beside the destination, O_EXCL|O_NOFOLLOW, the bytes, the vault file's
// modification time, then link (no overwrite: an existing name is refused) or rename (overwrite) — made with
// synchronous system calls. Each async fs call is a round trip to libuv's pool (a queue, a futex wake-up and a
// completion back on the event loop); with 16 KiB files these hand-offs cost more than the calls themselves
// (docs/benchmarks.md, get -r with synchronous writes: ≈ 19 futex calls per file). Without fsync, every call
// here is a page-cache operation of microseconds, so the event loop is held no longer than a decryption.
// The durable mode (--fsync) keeps placeFile: an fsync must not hold the event loop.
import { closeSync, constants, futimesSync, linkSync, lstatSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { CofferError, ErrorCode } from '../errors.js';
import { partialPath } from './partial-files.js';

export interface PlaceNowOptions {
  /** Replace an existing destination (rename); otherwise link, refusing an existing name (ALREADY_EXISTS). */
  overwrite: boolean;
  /** Set as the file's modification time before it takes its name (what a re-run compares). */
  mtime?: Date;
}

const FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EMLINK']);

/**
 * Writes `plaintext` to `dest` through a temporary file, without fsync, all in one synchronous step (so no
 * signal handler or other task ever sees the temporary name: a SIGKILL between two calls leaves at most a
 * `.coffer-partial-*` file, swept by the next download). Throws NOT_FOUND (no such directory),
 * PERMISSION_DENIED, ALREADY_EXISTS (without overwrite, the name exists); on any failure the temporary file is
 * removed.
 */
export function placeFileNow(dest: string, plaintext: Uint8Array, options: PlaceNowOptions): void {
  const dir = path.dirname(dest);
  const temp = partialPath(dir);
  let fd: number;
  try {
    fd = openSync(temp, FLAGS, 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new CofferError(ErrorCode.NOT_FOUND, `${dir} is not an existing directory`, { cause: e });
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') throw new CofferError(ErrorCode.PERMISSION_DENIED, `cannot write in ${dir} (${code})`, { cause: e });
    throw e;
  }
  let placed = false;
  try {
    try {
      let n = 0;
      while (n < plaintext.length) n += writeSync(fd, plaintext, n, plaintext.length - n, n);
      if (options.mtime) futimesSync(fd, options.mtime, options.mtime);
    } finally {
      closeSync(fd);
    }
    if (options.overwrite) {
      renameSync(temp, dest);
    } else if (link(temp, dest)) {
      unlinkSync(temp);
    } else {
      // a filesystem without hard links: check, then rename (as placeFile)
      if (exists(dest)) throw new CofferError(ErrorCode.ALREADY_EXISTS, `${dest} appeared meanwhile (use --force to replace it)`);
      renameSync(temp, dest);
    }
    placed = true;
  } finally {
    if (!placed) {
      try {
        unlinkSync(temp);
      } catch {
        // gone already
      }
    }
  }
}

/** link(2): true when made, false on a filesystem without hard links; ALREADY_EXISTS when the name exists. */
function link(from: string, to: string): boolean {
  try {
    linkSync(from, to);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    if (code === 'EEXIST') throw new CofferError(ErrorCode.ALREADY_EXISTS, `${to} exists (use --force to replace it)`);
    if (!NO_HARD_LINKS.has(code)) throw e;
    return false;
  }
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}
