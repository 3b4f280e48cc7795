// The write path of the filesystem chunk store: stream the chunk into a temporary file beside its final
// name, hashing (SHA-256) as the bytes arrive, with large buffered writes (two buffers, so the next one fills
// while the previous one is being written and hashed: the hash runs on a worker thread, reading the shared write
// buffer in place, so the main thread only receives and copies); then fsync the file once, optionally re-read and re-hash it,
// rename it over the final name and fsync the directory. Any failure before the rename removes the temp
// file, so a chunk name only ever shows a complete chunk (the old one or the new one, never a mix).
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { availableParallelism } from 'node:os';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { LimitFunction } from 'p-limit';
import { BufferPool, DIRECT_IO_ALIGNMENT, O_DIRECT, alignUp, alignedAllocator } from '../../src/buffer-pool.js';
import { CofferError, ErrorCode } from '../../src/errors.js';
import { HashPool, inlineHash, type StreamingHash } from '../../src/hash-pool.js';
import type { PutResult } from '../types.js';
import { DIRECT_WRITE_BYTES, directWriteBuffers } from './direct-io.js';
import { errnoOf, fsError } from './errors.js';

/** Size of each write(2). Pieces arrive as ~64 KiB from HTTP; 1 MiB writes keep syscalls and fs work low. */
export const WRITE_BUFFER_BYTES = 1024 * 1024;
const FILE_MODE = 0o600;
/**
 * Write buffers shared by every put of the process: no 1 MiB allocation per buffer (src/buffer-pool.ts). In shared
 * memory, so the hashing workers read them in place.
 */
const writeBuffers = new BufferPool(WRITE_BUFFER_BYTES, 32, alignedAllocator(WRITE_BUFFER_BYTES, 16, { shared: true }));
/**
 * SHA-256 of chunk bodies off the main thread: it was the service's largest main-thread cost of a put (≈ 0.75 CPU
 * s/GiB; docs/benchmarks.md). One worker per spare core, at most two; idle workers keep nothing alive.
 */
const chunkHashes = new HashPool(Math.max(1, Math.min(2, availableParallelism() - 1)));
/** Test hook: the process's pool of chunk-hashing workers, so a test can kill one under a put (write-chunk.test.ts). */
export function chunkHashPoolForTests(): HashPool {
  return chunkHashes;
}
/** Chunks announced smaller than this are hashed on the main thread: posting costs more than hashing. */
const WORKER_HASH_MIN_BYTES = 256 * 1024;

export interface WriteChunkJob {
  root: string;
  dir: string;
  finalName: string;
  tempName: string;
  /** Human description for messages, e.g. "chunk <blob>/<index>". */
  what: string;
  data: Readable | AsyncIterable<Uint8Array>;
  maxBytes: number | undefined;
  expectedSize: number | undefined;
  signal: AbortSignal | undefined;
  /** PutOptions.beforeRename: may refuse the write after the data is durable, before it becomes visible. */
  beforeRename: (() => Promise<void>) | undefined;
  /** PutOptions.sha256: the caller's digest of the bytes; when given, they are not hashed again here. */
  knownSha256?: string;
  verifyAfterWrite: boolean;
  /** Write with O_DIRECT through aligned buffers (direct-io.ts); the store probed that the filesystem allows it. */
  direct: boolean;
  /** Bounds concurrent filesystem operations (shared by the whole store). */
  io: LimitFunction;
  /** Where chunk bodies are hashed (tests); default: the process's pool of hashing workers. */
  hashPool?: HashPool;
  onFsync: ((seconds: number, what: 'file' | 'directory') => void) | undefined;
  /** Makes the rename durable: an fsync of the directory begun after it (GroupFsync.sync). */
  dirSync: (dir: string) => Promise<void>;
  /** Skip the file and directory fsyncs: the caller makes everything durable at once with FsChunkStore.flush(). */
  deferSync: boolean;
}

/** Runs an fsync and reports its duration to the observer, if any. */
async function timedSync(job: WriteChunkJob, what: 'file' | 'directory', sync: () => Promise<void>): Promise<void> {
  const t0 = performance.now();
  await sync();
  try {
    job.onFsync?.((performance.now() - t0) / 1000, what);
  } catch {
    /* an observer never breaks a write */
  }
}

/** Runs the job. Throws CofferError (NO_SPACE, PAYLOAD_TOO_LARGE, CHUNK_MISMATCH, INTEGRITY, INTERNAL) or signal.reason. */
export async function writeChunk(job: WriteChunkJob): Promise<PutResult> {
  const { io, root } = job;
  const tempPath = join(job.dir, job.tempName);
  const finalPath = join(job.dir, job.finalName);
  job.signal?.throwIfAborted();
  let handle: FileHandle | undefined;
  let renamed = false;
  try {
    const flags = constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | (job.direct ? O_DIRECT : 0);
    handle = await io(() => open(tempPath, flags, FILE_MODE));
    const fh = handle;
    const { size, sha256 } = await streamInto(fh, job);
    // direct writes end on a 4 KiB boundary: cut the zero padding of the last block off before the fsync
    if (job.direct && size !== alignUp(size)) await io(() => fh.truncate(size));
    job.signal?.throwIfAborted();
    if (!job.deferSync) await io(() => timedSync(job, 'file', () => fh.sync()));
    // cheap check always; the read-back only when asked (it costs a page-cache read and a second hash)
    const st = await io(() => fh.stat());
    if (st.size !== size) {
      throw new CofferError(ErrorCode.INTEGRITY, `${job.what}: wrote ${size} bytes but the file holds ${st.size}`);
    }
    if (job.verifyAfterWrite) await verifyReadBack(fh, size, sha256, job);
    handle = undefined;
    await io(() => fh.close());
    job.signal?.throwIfAborted();
    // the check and the rename share one I/O slot: no wait in the store's queue between them
    await io(async () => {
      await job.beforeRename?.();
      await rename(tempPath, finalPath);
    });
    renamed = true;
    if (!job.deferSync) await timedSync(job, 'directory', () => job.dirSync(job.dir)); // batched with other puts' (group-fsync.ts)
    return { size, sha256 };
  } catch (e) {
    await handle?.close().catch(() => undefined);
    if (!renamed) {
      // best effort: if even this fails, sweepTemporary removes the file later; the original error matters more
      await unlink(tempPath).catch(() => undefined);
    }
    if (job.signal?.aborted && e === job.signal.reason) throw e;
    throw fsError(e, `writing ${job.what}`, root);
  }
}

/** Copies the stream into the file through two alternating buffers; returns the total size and SHA-256. */
async function streamInto(fh: FileHandle, job: WriteChunkJob): Promise<PutResult> {
  // a small chunk whose size is announced gets a small buffer; the second buffer is made only when needed
  const bound = Math.min(job.expectedSize ?? Infinity, job.maxBytes ?? Infinity);
  const pool = job.direct ? directWriteBuffers : writeBuffers;
  // direct writes need aligned buffers of the pool's size; buffered ones shrink to a small announced chunk
  const capacity = job.direct ? DIRECT_WRITE_BYTES : Math.max(1, Math.min(WRITE_BUFFER_BYTES, bound));
  const take = (): Buffer => (capacity === pool.size ? pool.acquire() : Buffer.allocUnsafeSlow(capacity));
  // the pool's buffers are shared memory, hashed in place by a worker; small chunks are hashed here
  const onWorker = capacity === pool.size && bound >= WORKER_HASH_MIN_BYTES;
  const hash: StreamingHash | null = job.knownSha256 !== undefined ? null : onWorker ? (job.hashPool ?? chunkHashes).stream() : inlineHash();
  const buffers: Buffer[] = [take()];
  let current = 0;
  let fill = 0;
  let position = 0; // file offset of buffers[current][0]
  let pending: Promise<void> = Promise.resolve();
  let total = 0;
  const flush = async (): Promise<void> => {
    await pending; // the other buffer must be written and hashed before we reuse anything
    const buf = buffers[current] as Buffer;
    const len = fill;
    const at = position;
    // one update per buffer, not per piece; the worker reads [0, len) while the padding below is written
    const hashed = hash?.update(buf.subarray(0, len));
    // only the last flush can be partial; O_DIRECT writes it as whole 4 KiB blocks, zero-padded
    const writeLen = job.direct ? alignUp(len) : len;
    if (writeLen > len) buf.fill(0, len, writeLen);
    pending = settledBoth(job.io(() => writeAll(fh, buf, writeLen, at)), hashed);
    pending.catch(() => undefined); // observed by the next flush or the final await
    position += len;
    current ^= 1;
    buffers[current] ??= take();
    fill = 0;
  };
  const it = job.data[Symbol.asyncIterator]();
  try {
    let finished = false;
    try {
      for (;;) {
        const step = await nextPiece(it, job.signal, job.what);
        if (step.done === true) break;
        const piece: unknown = step.value;
        if (!(piece instanceof Uint8Array)) {
          throw new CofferError(ErrorCode.INVALID_ARGUMENT, `${job.what}: chunk data must be bytes, got ${typeof piece}`);
        }
        total += piece.byteLength;
        if (job.maxBytes !== undefined && total > job.maxBytes) {
          throw new CofferError(ErrorCode.PAYLOAD_TOO_LARGE, `${job.what} is larger than the limit of ${job.maxBytes} bytes`, {
            details: { maxBytes: job.maxBytes },
          });
        }
        if (job.expectedSize !== undefined && total > job.expectedSize) {
          throw sizeMismatch(job, total, 'at least');
        }
        // the whole chunk in one piece (a bulk copy's buffer): written from where it lies, if O_DIRECT takes it
        if (job.direct && total === piece.byteLength && piece.byteLength === job.expectedSize && (await writeInPlace(fh, piece, job.io))) {
          await hash?.update(piece);
          position = piece.byteLength;
          continue;
        }
        let offset = 0;
        while (offset < piece.byteLength) {
          const buf = buffers[current] as Buffer;
          const n = Math.min(piece.byteLength - offset, buf.byteLength - fill);
          copyInto(buf, piece.subarray(offset, offset + n), fill);
          fill += n;
          offset += n;
          if (fill === buf.byteLength) await flush();
        }
      }
      finished = true;
    } finally {
      if (!finished) stopSource(job.data, it);
      await pending.catch(() => undefined);
    }
    if (fill > 0) await flush();
    await pending;
  } catch (e) {
    hash?.drop();
    throw e;
  } finally {
    await pending.catch(() => undefined);
    // every write has completed or failed: nothing reads the buffers any more
    for (const buf of buffers) pool.release(buf);
  }
  if (job.expectedSize !== undefined && total !== job.expectedSize) {
    hash?.drop();
    throw sizeMismatch(job, total, 'only');
  }
  return { size: total, sha256: hash === null ? (job.knownSha256 as string) : await hash.digest() };
}

/**
 * Copies `piece` into `buf` at `at`. Into shared memory, TypedArray.set is V8's relaxed (atomic-safe) copy, about 4×
 * slower than memcpy (512 MiB in 64 KiB pieces: 56–136 ms against 15–18 ms into ordinary memory); Buffer.fill with
 * a buffer of exactly the range's length is one memcpy in Node's binding (37–40 ms).
 */
function copyInto(buf: Buffer, piece: Uint8Array, at: number): void {
  if (buf.buffer instanceof SharedArrayBuffer) buf.fill(piece, at, at + piece.byteLength);
  else buf.set(piece, at);
}

/**
 * Waits for a buffer's write and its hash both to finish, whatever either does, then throws the write's error
 * first: the buffer may be reused only when neither still reads it.
 */
async function settledBoth(write: Promise<void>, hashed: Promise<void> | undefined): Promise<void> {
  const [w, h] = await Promise.allSettled([write, hashed]);
  if (w.status === 'rejected') throw w.reason;
  if (h.status === 'rejected') throw h.reason;
}

function sizeMismatch(job: WriteChunkJob, total: number, how: string): CofferError {
  return new CofferError(ErrorCode.CHUNK_MISMATCH, `${job.what}: the data has ${how} ${total} bytes, expected ${job.expectedSize}`, {
    details: { expectedSize: job.expectedSize, received: total },
  });
}

/**
 * O_DIRECT write of a whole chunk straight from the caller's memory: its 4 KiB-aligned part in one write(2),
 * without copying 8 MiB through the write buffers, then the last partial block copied into an aligned buffer and
 * zero-padded (the caller's bytes after the chunk are never touched; the padding is cut off as usual). O_DIRECT
 * needs the memory aligned, which only a bulk copier's buffers are (alignedAllocator): the kernel refuses any
 * other with EINVAL before writing anything, and false sends the caller to the buffered copy, which rewrites from
 * offset 0. Other errors throw.
 */
async function writeInPlace(fh: FileHandle, piece: Uint8Array, io: LimitFunction): Promise<boolean> {
  const head = piece.byteLength - (piece.byteLength % DIRECT_IO_ALIGNMENT);
  if (head > 0) {
    try {
      await io(() => writeAll(fh, Buffer.from(piece.buffer, piece.byteOffset, head), head, 0));
    } catch (e) {
      if (errnoOf(e) === 'EINVAL') return false;
      throw e;
    }
  }
  if (head < piece.byteLength) {
    const buf = directWriteBuffers.acquire();
    try {
      buf.set(piece.subarray(head), 0);
      const tail = piece.byteLength - head;
      buf.fill(0, tail, DIRECT_IO_ALIGNMENT);
      await io(() => writeAll(fh, buf, DIRECT_IO_ALIGNMENT, head));
    } finally {
      directWriteBuffers.release(buf);
    }
  }
  return true;
}

/** write(2) until every byte is written: a short write (e.g. at RLIMIT_FSIZE) is continued, so its error surfaces. */
async function writeAll(fh: FileHandle, buf: Buffer, len: number, position: number): Promise<void> {
  let done = 0;
  while (done < len) {
    const { bytesWritten } = await fh.write(buf, done, len - done, position + done);
    if (bytesWritten <= 0) throw new CofferError(ErrorCode.INTERNAL, 'write(2) made no progress', { retryable: true });
    done += bytesWritten;
  }
}

/** The next piece of the source, or signal.reason as soon as the signal fires (even if the source stalls). */
export function nextPiece(it: AsyncIterator<unknown>, signal: AbortSignal | undefined, what: string): Promise<IteratorResult<unknown>> {
  const wrap = (e: unknown): never => {
    if (e instanceof CofferError) throw e;
    throw new CofferError(ErrorCode.INTERNAL, `${what}: reading the chunk data failed: ${e instanceof Error ? e.message : String(e)}`, {
      cause: e,
    });
  };
  if (signal === undefined) return it.next().catch(wrap);
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolveStep, rejectStep) => {
    const onAbort = (): void => rejectStep(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    it.next().then(
      (step) => {
        signal.removeEventListener('abort', onAbort);
        resolveStep(step);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        try {
          wrap(e);
        } catch (wrapped) {
          rejectStep(wrapped);
        }
      },
    );
  });
}

/** We stopped early: release the source without waiting for it (it may be stalled). */
export function stopSource(data: Readable | AsyncIterable<Uint8Array>, it: AsyncIterator<unknown>): void {
  if (data instanceof Readable) {
    data.destroy();
    return;
  }
  void Promise.resolve()
    .then(() => it.return?.())
    .catch(() => undefined);
}

async function verifyReadBack(fh: FileHandle, size: number, sha256: string, job: WriteChunkJob): Promise<void> {
  const hash = createHash('sha256');
  // an O_DIRECT handle reads whole aligned blocks into an aligned buffer; a short read marks the end of the file
  const buf = job.direct ? directWriteBuffers.acquire() : Buffer.allocUnsafeSlow(Math.min(WRITE_BUFFER_BYTES, Math.max(size, 1)));
  let position = 0;
  try {
    while (position < size) {
      const want = job.direct ? buf.byteLength : Math.min(buf.byteLength, size - position);
      const { bytesRead } = await job.io(() => fh.read(buf, 0, want, position));
      if (bytesRead === 0) break;
      const n = Math.min(bytesRead, size - position);
      hash.update(buf.subarray(0, n));
      position += n;
    }
  } finally {
    if (job.direct) directWriteBuffers.release(buf);
  }
  const again = hash.digest('hex');
  if (position !== size || again !== sha256) {
    throw new CofferError(ErrorCode.INTEGRITY, `${job.what}: the bytes read back after writing differ from those written`, {
      details: { written: sha256, readBack: again },
    });
  }
}
