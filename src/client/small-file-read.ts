// Reading a small file whole before it is sealed (small-file.ts), with the checks that keep a file changed while
// it is read from being committed as a mixture: O_NOFOLLOW, the identity (device, inode, size, mtime, ctime) taken
// before the read (or the caller's lstat) compared with an fstat after it, and a file that shrinks refused.
// Two ways to make the same calls. Through fs/promises each call is a thread-pool round trip and a promise:
// ≈ 65–140 µs of CPU for a 16 KiB file's open, read, fstat and close, most of `put -r`'s per-file cost. Made
// synchronously they cost ≈ 16–30 µs (docs/benchmarks.md "put -r: the client's per-file CPU"), but they hold the
// event loop while the disk answers: fine for the page cache (microseconds), not for a cold disk or a network
// filesystem (milliseconds each, and nothing else overlaps them). So a reader made for a tree starts synchronous
// and, once `slowLimit` reads have each taken longer than `slowMs`, goes back to fs/promises for the rest of its
// run, where many reads overlap.
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, type BigIntStats } from 'node:fs';
import { lstat, open, type FileHandle } from 'node:fs/promises';
import type { BufferPool } from '../buffer-pool.js';
import { CHUNK_SIZE } from '../crypto/index.js';
import { CofferError, ErrorCode } from '../errors.js';
import { identityOf } from './upload.js';

/** A file's bytes and the identity they were read under. */
export interface SmallFileBytes {
  plaintext: Buffer;
  identity: string;
  /** Gives the buffer under `plaintext` back to the reader's pool (call once, after zeroing it, when done). */
  release: () => void;
}

export interface SmallFileReaderOptions {
  /** Start with synchronous reads (default true; false: fs/promises always). */
  sync?: boolean;
  /** A synchronous read slower than this (milliseconds, default 4) counts as slow. */
  slowMs?: number;
  /** After this many slow reads (default 3) the reader uses fs/promises for good. */
  slowLimit?: number;
  /**
   * Buffers to read into (files up to their size; larger ones get their own): put -r reads thousands of files,
   * and a fresh buffer each is off-heap memory that Node 24 frees only at its next full collection
   * (src/gc-tuning.ts), which let the client's RSS grow to 545 MiB over 10,000 files of 16 KiB.
   */
  buffers?: BufferPool;
}

// O_NONBLOCK: a FIFO put where a file was listed must not hang the open (for regular files it changes nothing)
const FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

export class SmallFileReader {
  #sync: boolean;
  #slow = 0;
  readonly #slowMs: number;
  readonly #slowLimit: number;
  readonly #buffers: BufferPool | undefined;

  constructor(options: SmallFileReaderOptions = {}) {
    this.#sync = options.sync ?? true;
    this.#buffers = options.buffers;
    this.#slowMs = options.slowMs ?? 4;
    this.#slowLimit = options.slowLimit ?? 3;
  }

  /** Whether reads are still made synchronously. */
  get sync(): boolean {
    return this.#sync;
  }

  /** The entry's lstat (bigint), synchronously while reads are. Throws as fs.lstat. */
  lstat(p: string): Promise<BigIntStats> {
    if (!this.#sync) return lstat(p, { bigint: true });
    try {
      return Promise.resolve(lstatSync(p, { bigint: true }));
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  /**
   * Reads `source` (at most one chunk) whole. `expected` (the caller's lstat, bigint) stands for the fstat before
   * the read. Throws NOT_FOUND, INVALID_ARGUMENT (cannot be opened, e.g. a symbolic link; larger than one chunk),
   * IS_A_DIRECTORY, INVALID_ARGUMENT (a FIFO, device or socket), CONFLICT (changed, replaced or shrunk while read).
   */
  async read(source: string, expected?: BigIntStats): Promise<SmallFileBytes> {
    if (!this.#sync) return readAsync(source, expected, this.#buffers);
    const t0 = performance.now();
    try {
      return readNow(source, expected, this.#buffers);
    } finally {
      if (performance.now() - t0 > this.#slowMs && ++this.#slow >= this.#slowLimit) this.#sync = false;
    }
  }
}

/** fs/promises only: for a single `coffer put` and other callers that must never hold the event loop. */
export const ASYNC_READER = new SmallFileReader({ sync: false });

function openFailed(source: string, e: NodeJS.ErrnoException): CofferError {
  return new CofferError(e.code === 'ENOENT' ? ErrorCode.NOT_FOUND : ErrorCode.INVALID_ARGUMENT, `cannot read ${source}: ${e.message}`, { cause: e });
}

/** The size to read, after the checks made before reading. */
function checkedSize(source: string, st: BigIntStats): number {
  if (st.isDirectory()) throw new CofferError(ErrorCode.IS_A_DIRECTORY, `${source} is a directory`);
  if (!st.isFile()) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `${source} is not a regular file`);
  if (st.size > BigInt(CHUNK_SIZE)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `${source} is larger than one chunk`);
  return Number(st.size);
}

/** A buffer of `size` bytes (from `pool` when it fits) and how to give it back. */
function bufferFor(size: number, pool: BufferPool | undefined): { plaintext: Buffer; release: () => void } {
  if (pool === undefined || size > pool.size) return { plaintext: Buffer.allocUnsafe(size), release: () => undefined };
  const whole = pool.acquire();
  return { plaintext: whole.subarray(0, size), release: () => pool.release(whole) };
}

const shrank = (): CofferError => new CofferError(ErrorCode.CONFLICT, 'the file shrank while it was read; nothing was committed (run put again)');
const changed = (source: string): CofferError =>
  new CofferError(ErrorCode.CONFLICT, `${source} changed while it was read; nothing was committed (run put again)`);

async function readAsync(source: string, expected: BigIntStats | undefined, pool: BufferPool | undefined): Promise<SmallFileBytes> {
  const fh: FileHandle = await open(source, FLAGS).catch((e: NodeJS.ErrnoException) => {
    throw openFailed(source, e);
  });
  try {
    // a file replaced or changed since `expected` was taken fails the identity check after the read
    const st = expected ?? (await fh.stat({ bigint: true }));
    const size = checkedSize(source, st);
    const identity = identityOf(st);
    const { plaintext, release } = bufferFor(size, pool);
    let n = 0;
    while (n < size) {
      const { bytesRead } = await fh.read(plaintext, n, size - n, n);
      if (bytesRead === 0) throw shrank();
      n += bytesRead;
    }
    // a file written while it was read would be committed as a mixture (upload.ts does the same check)
    if (identityOf(await fh.stat({ bigint: true })) !== identity) throw changed(source);
    return { plaintext, identity, release };
  } finally {
    await fh.close();
  }
}

function readNow(source: string, expected: BigIntStats | undefined, pool: BufferPool | undefined): SmallFileBytes {
  let fd: number;
  try {
    fd = openSync(source, FLAGS);
  } catch (e) {
    throw openFailed(source, e as NodeJS.ErrnoException);
  }
  try {
    const st = expected ?? fstatSync(fd, { bigint: true });
    const size = checkedSize(source, st);
    const identity = identityOf(st);
    const { plaintext, release } = bufferFor(size, pool);
    let n = 0;
    while (n < size) {
      const bytesRead = readSync(fd, plaintext, n, size - n, n);
      if (bytesRead === 0) throw shrank();
      n += bytesRead;
    }
    if (identityOf(fstatSync(fd, { bigint: true })) !== identity) throw changed(source);
    return { plaintext, identity, release };
  } finally {
    closeSync(fd);
  }
}
