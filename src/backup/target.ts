// Where snapshots are kept: a directory or an S3-compatible bucket (docs/backup.md "Target layout"). A target
// is a chunk store (the same layout as a vault's: `chunks/…`) plus a few small named files: `snapshots/<id>.json`,
// `metadata/<sha256>.jsonl`, `locks/<name>.json` and the marker `coffer-backup.json`. Every file is written
// atomically (temp, fsync, rename, fsync the directory; on S3 one PUT or one completed multipart upload).
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { openChunkStore, type ChunkStore } from '../../storage-backend/index.js';
import { CofferError, ErrorCode } from '../errors.js';

export type TargetDir = 'snapshots' | 'metadata' | 'locks';

export interface BackupTarget {
  /** For messages: the directory or `s3://bucket/prefix`. */
  readonly description: string;
  readonly chunks: ChunkStore;
  /** Writes a whole file atomically; returns its size and SHA-256. Throws NO_SPACE, UNAVAILABLE. */
  writeFile(dir: TargetDir, name: string, data: AsyncIterable<Uint8Array>): Promise<{ size: number; sha256: string }>;
  /** Whole small file (manifests, locks). NOT_FOUND when absent. */
  readFile(dir: TargetDir, name: string): Promise<Buffer>;
  /** A stream of a file (metadata exports). NOT_FOUND when absent. */
  openFile(dir: TargetDir, name: string): Promise<Readable>;
  /** File names in the directory (temporary files excluded). */
  listFiles(dir: TargetDir): Promise<string[]>;
  /** Idempotent. */
  deleteFile(dir: TargetDir, name: string): Promise<void>;
  close(): Promise<void>;
}

export const MARKER = 'coffer-backup.json';
export const MARKER_BODY = `${JSON.stringify({ format: 'coffer-backup', version: 1 })}\n`;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/;

export function assertFileName(name: string): void {
  if (!NAME.test(name)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `invalid backup file name "${name}"`);
}

/** Maps a filesystem error on the target to a clear CofferError naming the target. */
export function targetError(where: string, e: unknown): CofferError {
  if (e instanceof CofferError) {
    // the chunk store reports errnos it has no code for as INTERNAL: name what they mean for a target
    const cause = e.cause as NodeJS.ErrnoException | undefined;
    const mapped = new Set(['ENOSPC', 'EDQUOT', 'EFBIG', 'EACCES', 'EPERM', 'EROFS', 'ENOENT', 'ESTALE', 'ENOTDIR']);
    if (e.code !== ErrorCode.INTERNAL || !mapped.has(cause?.code ?? '')) return e;
    e = cause;
  }
  const code = (e as NodeJS.ErrnoException).code ?? '';
  const msg = (e as Error).message;
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG') {
    return new CofferError(ErrorCode.NO_SPACE, `backup target ${where} is full (${code}); nothing partial was kept, free space and run it again to resume`, { cause: e });
  }
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new CofferError(ErrorCode.UNAVAILABLE, `backup target ${where} is not writable (${code})`, { cause: e });
  }
  if (code === 'ENOENT' || code === 'ESTALE' || code === 'ENOTDIR') {
    return new CofferError(ErrorCode.UNAVAILABLE, `backup target ${where} disappeared (${code}): ${msg}`, { cause: e });
  }
  return new CofferError(ErrorCode.INTERNAL, `backup target ${where}: ${msg}`, { cause: e, retryable: ['EIO', 'EAGAIN', 'EBUSY', 'ETIMEDOUT'].includes(code) });
}

/** A target in a local or shared POSIX directory. */
class DirTarget implements BackupTarget {
  constructor(readonly root: string, readonly chunks: ChunkStore) {}

  get description(): string {
    return this.root;
  }

  async writeFile(dir: TargetDir, name: string, data: AsyncIterable<Uint8Array>): Promise<{ size: number; sha256: string }> {
    assertFileName(name);
    const folder = path.join(this.root, dir);
    const final = path.join(folder, name);
    const temp = path.join(folder, `.tmp-${randomBytes(8).toString('hex')}`);
    const hash = createHash('sha256');
    let size = 0;
    try {
      await mkdir(folder, { recursive: true, mode: 0o700 });
      const fh = await open(temp, 'wx', 0o600);
      try {
        for await (const piece of data) {
          hash.update(piece);
          size += piece.byteLength;
          let off = 0;
          while (off < piece.byteLength) off += (await fh.write(piece, off)).bytesWritten;
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(temp, final);
      await fsyncDir(folder);
      return { size, sha256: hash.digest('hex') };
    } catch (e) {
      await unlink(temp).catch(() => undefined);
      throw targetError(this.root, e);
    }
  }

  async readFile(dir: TargetDir, name: string): Promise<Buffer> {
    assertFileName(name);
    try {
      return await readFile(path.join(this.root, dir, name));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new CofferError(ErrorCode.NOT_FOUND, `${dir}/${name} is not in the backup target ${this.root}`);
      throw targetError(this.root, e);
    }
  }

  async openFile(dir: TargetDir, name: string): Promise<Readable> {
    assertFileName(name);
    const file = path.join(this.root, dir, name);
    const fh = await open(file, 'r').catch((e: unknown) => {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new CofferError(ErrorCode.NOT_FOUND, `${dir}/${name} is not in the backup target ${this.root}`);
      throw targetError(this.root, e);
    });
    // the stream owns the handle and closes it once (never the raw fd: a second close could hit a reused fd)
    return fh.createReadStream({ highWaterMark: 1 << 20 });
  }

  async listFiles(dir: TargetDir): Promise<string[]> {
    try {
      return (await readdir(path.join(this.root, dir))).filter((n) => !n.startsWith('.')).sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw targetError(this.root, e);
    }
  }

  async deleteFile(dir: TargetDir, name: string): Promise<void> {
    assertFileName(name);
    await rm(path.join(this.root, dir, name), { force: true }).catch((e: unknown) => {
      throw targetError(this.root, e);
    });
  }

  close(): Promise<void> {
    return this.chunks.close();
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync().catch((e: unknown) => {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EINVAL' && code !== 'ENOTSUP') throw e;
    });
  } finally {
    await fh.close();
  }
}

/**
 * Opens a directory target. With `create`, a missing or empty directory becomes a new target (marker written);
 * otherwise the marker must be there. Refuses a non-empty directory that is not a Coffer backup (INVALID_ARGUMENT),
 * so a typo never scatters files into a vault's data dir or a home directory.
 */
export async function openDirTarget(dir: string, options: { create: boolean }): Promise<BackupTarget> {
  const root = path.resolve(dir);
  let entries: string[] | null;
  try {
    entries = await readdir(root);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw targetError(root, e);
    entries = null;
  }
  if (entries === null || entries.length === 0) {
    if (!options.create) throw new CofferError(ErrorCode.NOT_FOUND, `no backup in ${root}${entries === null ? ' (no such directory)' : ' (empty directory)'}`);
    try {
      await mkdir(root, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw targetError(root, e);
    }
  } else if (!entries.includes(MARKER)) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `${root} is not a Coffer backup (no ${MARKER}) and not empty: choose an empty or new directory`);
  } else {
    const st = await stat(path.join(root, MARKER));
    if (!st.isFile()) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `${root}/${MARKER} is not a file`);
  }
  // chunk files are fsynced in bulk (FsChunkStore.flush) before a manifest lists them: one fsync per small file
  // made backups of many small files several times slower than `cp -r` + `sync`
  const chunks = await openChunkStore({ kind: 'fs', root, deferSync: true }).catch((e: unknown) => {
    throw targetError(root, e);
  });
  const target = new DirTarget(root, chunks);
  if (entries === null || entries.length === 0) {
    try {
      const fh = await open(path.join(root, MARKER), 'w', 0o600);
      await fh.writeFile(MARKER_BODY);
      await fh.sync();
      await fh.close();
      await fsyncDir(root);
    } catch (e) {
      await chunks.close();
      throw targetError(root, e);
    }
  }
  return target;
}

/** Opens the target a command line names: `s3://bucket/prefix` or a directory path. */
export async function openBackupTarget(spec: string, options: { create: boolean }): Promise<BackupTarget> {
  if (spec.startsWith('s3://')) {
    const { openS3Target } = await import('./target-s3.js');
    return openS3Target(spec, options);
  }
  if (spec.includes('://')) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `unsupported backup target "${spec}": use a directory or s3://bucket/prefix`);
  return openDirTarget(spec, options);
}

/** Lock files are named after the host and process that holds them. */
export function lockName(kind: 'create' | 'prune'): string {
  return `${kind}-${os.hostname().replace(/[^A-Za-z0-9-]/g, '_')}-${process.pid}-${randomBytes(4).toString('hex')}.json`;
}

/** Removes create locks left by killed runs on this host (their process is gone). Returns how many. */
export async function clearStaleLocks(target: BackupTarget): Promise<number> {
  const host = os.hostname().replace(/[^A-Za-z0-9-]/g, '_');
  let removed = 0;
  for (const name of await target.listFiles('locks')) {
    const m = /^create-(.+)-(\d+)-[0-9a-f]{8}\.json$/.exec(name);
    if (!m || m[1] !== host || Number(m[2]) === process.pid || pidAlive(Number(m[2]))) continue;
    await target.deleteFile('locks', name);
    removed++;
  }
  return removed;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
