// The on-disk layout of the filesystem chunk store and the checks that keep every path under its root:
//   <root>/chunks/<hex[0:2]>/<hex[2:4]>/<blob hex>/<index as 8 lowercase hex digits>   (DESIGN.md)
// plus temporary files `.tmp-<index>-<random>` beside the chunk they will become.
// Paths are built only from validated blob ids and indices (storage-backend/ref.ts), and every directory is
// checked on disk before use: a symbolic link anywhere below the root is refused (PATH_OUTSIDE_ROOT), so a
// planted link can neither redirect writes outside the root nor alias one blob's directory onto another's.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, open, realpath } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { CofferError, ErrorCode } from '../../src/errors.js';
import { chunkName } from '../ref.js';
import { errnoOf, fsError } from './errors.js';
import { GroupFsync } from './group-fsync.js';

const TEMP_PREFIX = '.tmp-';
const DIR_MODE = 0o700;

/** How many blob directories to remember as durable before forgetting them all (memory bound). */
const DURABLE_MEMO_MAX = 65_536;

export class FsLayout {
  /**
   * Directories (every level: `chunks`, fan-out, blob) whose entry in their parent this process has fsynced. Another put (or another process
   * on a shared filesystem) may have created a directory and not yet fsynced its parent when we find it, so
   * the first put of a blob in this process fsyncs the chain itself rather than trust that it is durable.
   */
  readonly #durable = new Set<string>();

  /** `chunks` and fan-out directories known to exist as real directories (the chain resolved to itself). */
  readonly #realDirs = new Set<string>();

  /** Directory fsyncs of concurrent puts, batched (group-fsync.ts). */
  readonly dirSyncs: GroupFsync;

  /** `root` must already be the canonical (realpath) root. */
  constructor(readonly root: string) {
    this.dirSyncs = new GroupFsync((dir) => fsyncDir(dir, root));
  }

  get chunksDir(): string {
    return join(this.root, 'chunks');
  }

  blobDir(blobId: string): string {
    return join(this.chunksDir, blobId.slice(0, 2), blobId.slice(2, 4), blobId);
  }

  chunkPath(blobId: string, index: number): string {
    return join(this.blobDir(blobId), chunkName(index));
  }

  static tempName(index: number): string {
    return `${TEMP_PREFIX}${chunkName(index)}-${randomBytes(8).toString('hex')}`;
  }

  static isTempName(name: string): boolean {
    return name.startsWith(TEMP_PREFIX);
  }

  /** Lexical containment: `path` is strictly below the root. */
  contains(path: string): boolean {
    return path.startsWith(this.root + sep);
  }

  private refuse(path: string, why: string): CofferError {
    return new CofferError(ErrorCode.PATH_OUTSIDE_ROOT, `chunk store path ${path} ${why}; refusing to use it`, {
      details: { root: this.root, path },
    });
  }

  /**
   * The blob's directory if it exists, null if it does not. Throws PATH_OUTSIDE_ROOT if it (or any directory
   * between it and the root) is a symbolic link, wherever it points.
   */
  async existingBlobDir(blobId: string): Promise<string | null> {
    const dir = this.blobDir(blobId);
    if (!this.contains(dir)) throw this.refuse(dir, 'is not under the root');
    let real: string;
    try {
      real = await realpath(dir);
    } catch (e) {
      const errno = errnoOf(e);
      if (errno === 'ENOENT' || errno === 'ENOTDIR') return null;
      throw fsError(e, `resolving ${dir}`, this.root);
    }
    if (real !== dir) throw this.refuse(dir, `resolves to ${real} (a symbolic link)`);
    return dir;
  }

  /**
   * Creates the blob's directory (and the two fan-out levels) if needed, checking each existing level is a
   * real directory before creating anything inside it, and (once per blob per process) fsyncs the parent of
   * every level so the entries survive a crash. `durable` settles when those fsyncs have: the caller writes its
   * chunk meanwhile (the fsyncs run in parallel with the chunk's own) and must await it before it reports the
   * chunk durable. Throws PATH_OUTSIDE_ROOT on a symbolic link, NO_SPACE when full; `durable` rejects with the
   * fsync's error.
   */
  async ensureBlobDir(blobId: string): Promise<{ dir: string; durable: Promise<void> }> {
    const dir = this.blobDir(blobId);
    const levels = [this.chunksDir, dirname(dirname(dir)), dirname(dir), dir];
    const existing = await this.existingBlobDir(blobId);
    if (existing !== null) {
      return { dir: existing, durable: this.#durable.has(dir) ? Promise.resolve() : this.#fsyncChain(levels) };
    }
    // fan-out levels this process made or checked are not made again (a mkdir that fails EEXIST and an lstat
    // each, per new blob); the realpath below still checks the whole chain
    for (const level of levels) {
      if (level !== dir && this.#realDirs.has(level)) continue;
      try {
        await mkdir(level, { mode: DIR_MODE });
      } catch (e) {
        if (errnoOf(e) === 'ENOENT' && this.#realDirs.size > 0) {
          // a remembered level was removed behind our back (e.g. by hand): forget them all, make the chain anew
          this.#realDirs.clear();
          return this.ensureBlobDir(blobId);
        }
        if (errnoOf(e) !== 'EEXIST') throw fsError(e, `creating directory ${level}`, this.root);
        const st = await lstat(level).catch((err: unknown) => {
          throw fsError(err, `inspecting ${level}`, this.root);
        });
        if (!st.isDirectory()) throw this.refuse(level, st.isSymbolicLink() ? 'is a symbolic link' : 'is not a directory');
      }
    }
    // belt and braces: the whole chain must resolve to itself
    const real = await realpath(dir).catch((e: unknown) => {
      throw fsError(e, `resolving ${dir}`, this.root);
    });
    if (real !== dir) {
      this.#realDirs.clear();
      throw this.refuse(dir, `resolves to ${real} (a symbolic link)`);
    }
    if (this.#realDirs.size + 3 > DURABLE_MEMO_MAX) this.#realDirs.clear();
    for (const level of levels.slice(0, 3)) this.#realDirs.add(level);
    return { dir, durable: this.#fsyncChain(levels) };
  }

  /** Forgets that a blob's directory chain is durable (call before removing the directory). */
  forgetDurable(blobId: string): void {
    this.#durable.delete(this.blobDir(blobId));
  }

  /** With deferSync (bulk writers that call FsChunkStore.flush() at the end), directory fsyncs are skipped. */
  deferSync = false;

  /**
   * fsyncs the parent of every level (whoever created it) not yet known durable, all at once and batched with
   * the other puts' (a level's entry is durable once its parent was fsynced after the level existed; only
   * blob directories are ever removed, and forgetDurable drops those), then remembers each level as durable.
   */
  async #fsyncChain(levels: string[]): Promise<void> {
    if (this.deferSync) return;
    const todo = levels.filter((level) => !this.#durable.has(level));
    await Promise.all(todo.map((level) => this.dirSyncs.sync(dirname(level))));
    if (this.#durable.size + todo.length > DURABLE_MEMO_MAX) this.#durable.clear();
    for (const level of todo) this.#durable.add(level);
  }
}

/**
 * Makes `root` (creating it if missing), resolves it to its canonical path (a root that is itself a symbolic
 * link is the operator's choice and is followed once, here), and makes `<root>/chunks`, which must be a real
 * directory. Throws PATH_OUTSIDE_ROOT if `chunks` is a symbolic link, INVALID_ARGUMENT if root is not a directory.
 */
export async function prepareRoot(root: string): Promise<FsLayout> {
  const absolute = resolve(root);
  try {
    await mkdir(absolute, { recursive: true, mode: DIR_MODE });
  } catch (e) {
    if (errnoOf(e) === 'EEXIST' || errnoOf(e) === 'ENOTDIR') {
      throw new CofferError(ErrorCode.INVALID_ARGUMENT, `chunk store root ${absolute} is not a directory`, { cause: e });
    }
    throw fsError(e, `creating the root ${absolute}`, absolute);
  }
  const real = await realpath(absolute).catch((e: unknown) => {
    throw fsError(e, `resolving the root ${absolute}`, absolute);
  });
  const layout = new FsLayout(real);
  try {
    await mkdir(layout.chunksDir, { mode: DIR_MODE });
    await fsyncDir(real, real);
  } catch (e) {
    if (errnoOf(e) !== 'EEXIST') throw fsError(e, `creating ${layout.chunksDir}`, real);
  }
  const st = await lstat(layout.chunksDir);
  if (!st.isDirectory()) {
    throw new CofferError(ErrorCode.PATH_OUTSIDE_ROOT, `${layout.chunksDir} is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a directory'}; refusing to use it`, {
      details: { root: real },
    });
  }
  return layout;
}

/** errnos with which some filesystems refuse fsync on a directory; durability there is the filesystem's own. */
const DIR_FSYNC_UNSUPPORTED = new Set(['EINVAL', 'ENOTSUP', 'EOPNOTSUPP', 'EISDIR', 'EBADF']);

/** fsyncs a directory so that entries created, renamed or removed in it are durable. Throws CofferError. */
export async function fsyncDir(dir: string, root: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    await handle.sync();
  } catch (e) {
    const errno = errnoOf(e);
    if (errno === undefined || !DIR_FSYNC_UNSUPPORTED.has(errno)) throw fsError(e, `fsyncing directory ${dir}`, root);
  } finally {
    await handle?.close().catch(() => undefined);
  }
}
