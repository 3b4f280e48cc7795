// get -r's writer for a verified small file when nothing is fsynced (its default): the same steps as placeFile
// (small-file.ts) — a temporary name beside the destination, O_EXCL|O_NOFOLLOW, the bytes, the vault file's
// modification time, then link (no overwrite: an existing name is refused) or rename (overwrite) — made with
// synchronous system calls. Each async fs call is a round trip to libuv's pool (a queue, a futex wake-up and a
// completion back on the event loop); with 16 KiB files these hand-offs cost more than the calls themselves
// (docs/benchmarks.md, get -r with synchronous writes: ≈ 19 futex calls per file). get -r makes these calls on
// a few worker threads (place-workers.ts), where a file creation that waits on the filesystem holds no event
// loop; placeFileNow makes them on the calling thread. Both run placeSteps, the one implementation.
// The durable mode (--fsync) keeps placeFile: an fsync must not hold the event loop.
import * as fs from 'node:fs';
import path from 'node:path';
import { CofferError, ErrorCode } from '../errors.js';
import { partialPath } from './partial-files.js';

export interface PlaceNowOptions {
  /** Replace an existing destination (rename); otherwise link, refusing an existing name (ALREADY_EXISTS). */
  overwrite: boolean;
  /** Set as the file's modification time before it takes its name (what a re-run compares). */
  mtime?: Date;
}

/** How placeSteps ended without an error: placed, or not placed because the name exists / appeared meanwhile. */
export type PlaceOutcome = 'placed' | 'exists' | 'appeared';

/**
 * The system calls of one placement: `bytes` into `temp` (created O_EXCL|O_NOFOLLOW, mode 0600), `mtimeMs` set
 * on the open file, then `temp` linked (or, without overwrite on a filesystem without hard links, renamed after
 * an lstat) or renamed (overwrite) to `dest`. On any failure `temp` is removed. Throws the system call's error,
 * marked `stage: 'open'` when the temporary file could not be made. Uses no import and no outer name: its source
 * is also a worker's (place-workers.ts), so it must stay self-contained.
 */
export function placeSteps(nodeFs: typeof fs, temp: string, dest: string, bytes: Uint8Array, overwrite: boolean, mtimeMs: number | null): PlaceOutcome {
  const c = nodeFs.constants;
  let fd: number;
  try {
    fd = nodeFs.openSync(temp, c.O_WRONLY | c.O_CREAT | c.O_EXCL | c.O_NOFOLLOW, 0o600);
  } catch (e) {
    (e as { stage?: string }).stage = 'open';
    throw e;
  }
  let placed = false;
  try {
    try {
      let n = 0;
      while (n < bytes.length) n += nodeFs.writeSync(fd, bytes, n, bytes.length - n, n);
      if (mtimeMs !== null) nodeFs.futimesSync(fd, mtimeMs / 1000, mtimeMs / 1000);
    } finally {
      nodeFs.closeSync(fd);
    }
    if (overwrite) {
      nodeFs.renameSync(temp, dest);
    } else {
      let linked = true;
      try {
        nodeFs.linkSync(temp, dest);
      } catch (e) {
        const code = (e as { code?: string }).code ?? '';
        if (code === 'EEXIST') return 'exists';
        // a filesystem without hard links: check, then rename (as placeFile)
        if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EMLINK'].includes(code)) throw e;
        linked = false;
      }
      if (linked) {
        nodeFs.unlinkSync(temp);
      } else {
        try {
          nodeFs.lstatSync(dest);
          return 'appeared';
        } catch {
          // absent: take the name
        }
        nodeFs.renameSync(temp, dest);
      }
    }
    placed = true;
    return 'placed';
  } finally {
    if (!placed) {
      try {
        nodeFs.unlinkSync(temp);
      } catch {
        // gone already
      }
    }
  }
}

/**
 * What placeSteps' outcome or error means to a caller: nothing for 'placed'; ALREADY_EXISTS (the name exists, or
 * appeared meanwhile), NOT_FOUND (no such directory), PERMISSION_DENIED; any other error as it came.
 */
export function placeFailure(dest: string, outcome: PlaceOutcome | null, error?: unknown): unknown {
  if (outcome === 'exists') return new CofferError(ErrorCode.ALREADY_EXISTS, `${dest} exists (use --force to replace it)`);
  if (outcome === 'appeared') return new CofferError(ErrorCode.ALREADY_EXISTS, `${dest} appeared meanwhile (use --force to replace it)`);
  if (outcome === 'placed') return null;
  const e = error as NodeJS.ErrnoException & { stage?: string };
  if (e?.stage === 'open') {
    const dir = path.dirname(dest);
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return new CofferError(ErrorCode.NOT_FOUND, `${dir} is not an existing directory`, { cause: e });
    if (e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'EROFS') return new CofferError(ErrorCode.PERMISSION_DENIED, `cannot write in ${dir} (${e.code})`, { cause: e });
  }
  return e;
}

/**
 * Writes `plaintext` to `dest` through a temporary file, without fsync, all in one synchronous step (so no
 * signal handler or other task ever sees the temporary name: a SIGKILL between two calls leaves at most a
 * `.coffer-partial-*` file, swept by the next download). Throws NOT_FOUND (no such directory),
 * PERMISSION_DENIED, ALREADY_EXISTS (without overwrite, the name exists); on any failure the temporary file is
 * removed.
 */
export function placeFileNow(dest: string, plaintext: Uint8Array, options: PlaceNowOptions): void {
  let outcome: PlaceOutcome;
  try {
    outcome = placeSteps(fs, partialPath(path.dirname(dest)), dest, plaintext, options.overwrite, options.mtime?.getTime() ?? null);
  } catch (e) {
    throw placeFailure(dest, null, e);
  }
  const failure = placeFailure(dest, outcome);
  if (failure !== null) throw failure;
}
