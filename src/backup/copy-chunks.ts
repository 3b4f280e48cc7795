// Copies sealed chunk files from one chunk store to another (vault → target for create, target → vault for
// restore), checking each one on the way, all in one step (`copyOne` below, the only place that reads, checks,
// hashes and puts a chunk): size and header as read, then SHA-256 on a worker thread (src/hash-pool.ts) while other
// chunks are read and written; only a chunk whose digest is the recorded one is put, and the put is given that
// digest so the destination does not hash the bytes a second time. Bounded concurrency (a Gate: tasks are made
// one by one as room frees, never one promise per chunk up front), a few reused 4 KiB-aligned 8 MiB buffers in
// shared memory (O_DIRECT reads; the hash workers read them in place), an optional rate limit. A chunk that
// the source does not have or that fails a check is reported, not thrown, so the caller can say which files
// it affects.
import os from 'node:os';
import type { ChunkRef, ChunkStore } from '../../storage-backend/index.js';
import { alignUp, alignedAllocator, BufferPool } from '../buffer-pool.js';
import { MAX_SEALED_SIZE } from '../crypto/index.js';
import { CofferError, ErrorCode } from '../errors.js';
import { Gate } from '../gate.js';
import { HashPool } from '../hash-pool.js';
import type { RateLimiter } from './rate-limit.js';

export interface ChunkJob {
  ref: ChunkRef;
  size: number;
  sha256: string;
  /** Throws a CofferError (CHUNK_FORMAT/CHUNK_MISMATCH) when the sealed bytes' header disagrees with the metadata. */
  checkHeader?: (sealed: Buffer) => void;
}

export interface ChunkProblem {
  job: ChunkJob;
  kind: 'missing' | 'size' | 'sha256' | 'header' | 'unreadable';
  message: string;
}

export interface CopyResult {
  copied: number;
  copiedBytes: number;
  /** Already at the destination (put atomically by an earlier, interrupted run). */
  present: number;
  problems: ChunkProblem[];
}

export interface CopyOptions {
  concurrency: number;
  rate?: RateLimiter;
  onBytes?: (n: number) => void;
  /** Check the destination first and skip chunks it already has at the expected size (resume). */
  skipPresent: boolean;
  /**
   * With skipPresent: the blob ids the destination had any chunk of when the run began (one listing,
   * `presentBlobs`). A chunk of another blob is not looked up one by one: a fresh target costs no stat per chunk.
   * A blob missed by the listing is only copied again (puts are atomic), never skipped.
   */
  presentBlobs?: ReadonlySet<string>;
  signal?: AbortSignal;
  /** Turns an error of the destination store into one that names it (e.g. the backup target's errno meaning). */
  destinationError?: (e: unknown) => unknown;
}

/**
 * Reads one chunk into `buf` and checks it: size, header, and SHA-256 (on `hasher`'s workers) unless `hasher` is
 * null. Returns the bytes, or the problem. Store errors other than NOT_FOUND throw.
 */
export async function readChecked(from: ChunkStore, job: ChunkJob, buf: Buffer, hasher: HashPool | null): Promise<Buffer | ChunkProblem> {
  let data: Buffer;
  try {
    data = await from.readInto(job.ref, buf);
  } catch (e) {
    if (e instanceof CofferError && e.code === ErrorCode.NOT_FOUND) return { job, kind: 'missing', message: 'chunk file missing' };
    if (e instanceof CofferError && e.code === ErrorCode.PAYLOAD_TOO_LARGE) return { job, kind: 'size', message: `chunk file larger than ${buf.byteLength} bytes` };
    throw e;
  }
  if (data.byteLength !== job.size) return { job, kind: 'size', message: `chunk file is ${data.byteLength} bytes, expected ${job.size}` };
  try {
    job.checkHeader?.(data);
  } catch (e) {
    return { job, kind: 'header', message: (e as Error).message };
  }
  if (hasher) {
    const sha = await hasher.digest(data);
    if (sha !== job.sha256) return shaProblem(job, sha);
  }
  return data;
}

/**
 * What a bulk chunk pass holds: `concurrency` aligned 8 MiB buffers in shared memory and a pool of hash
 * workers (one per core, at most one per buffer). close() stops the workers and zeroes the buffers.
 */
export class ChunkWorkspace {
  readonly buffers: BufferPool;
  readonly hasher: HashPool;

  constructor(readonly concurrency: number, hashWorkers = Math.min(concurrency, os.availableParallelism())) {
    const size = alignUp(MAX_SEALED_SIZE);
    this.buffers = new BufferPool(size, concurrency, alignedAllocator(size, concurrency, { shared: true }));
    this.hasher = new HashPool(hashWorkers);
  }

  async close(): Promise<void> {
    this.buffers.clear();
    await this.hasher.close();
  }
}

function shaProblem(job: ChunkJob, sha: string): ChunkProblem {
  return { job, kind: 'sha256', message: `SHA-256 ${sha.slice(0, 16)}… differs from the recorded ${job.sha256.slice(0, 16)}…` };
}

/** Every blob id the store has a chunk of, as a set (one listing instead of a stat per chunk). */
export async function presentBlobs(store: ChunkStore): Promise<Set<string>> {
  const ids = new Set<string>();
  for await (const id of store.listBlobs()) ids.add(id);
  return ids;
}

/** Makes a bulk copy durable: stores opened with deferred fsyncs (the fs store's deferSync) have flush(). */
export async function flushChunks(store: ChunkStore): Promise<void> {
  const flush = (store as Partial<{ flush(): Promise<void> }>).flush;
  if (typeof flush === 'function') await flush.call(store);
}

export function isProblem(r: Buffer | ChunkProblem): r is ChunkProblem {
  return !Buffer.isBuffer(r);
}

async function* single(data: Buffer): AsyncGenerator<Uint8Array> {
  yield data;
}

export async function copyChunks(from: ChunkStore, to: ChunkStore, jobs: Iterable<ChunkJob>, options: CopyOptions): Promise<CopyResult> {
  const result: CopyResult = { copied: 0, copiedBytes: 0, present: 0, problems: [] };
  const gate = new Gate(Math.max(1, options.concurrency));
  const work = new ChunkWorkspace(gate.limit);
  const dest = <T>(p: Promise<T>): Promise<T> => p.catch((e: unknown) => {
    throw options.destinationError ? options.destinationError(e) : e;
  });
  const copyOne = async (job: ChunkJob): Promise<void> => {
    if (options.skipPresent && (options.presentBlobs === undefined || options.presentBlobs.has(job.ref.blobId))) {
      const st = await dest(to.stat(job.ref));
      if (st && st.size === job.size) {
        result.present++;
        options.onBytes?.(job.size);
        return;
      }
    }
    const buf = work.buffers.acquire();
    // SHA-256 once, on a worker, before the put: a chunk whose bytes are not the recorded ones never reaches
    // the destination, and the put is handed the digest instead of hashing again on this thread
    const data = await readChecked(from, job, buf, work.hasher);
    if (isProblem(data)) {
      work.buffers.release(buf);
      result.problems.push(data);
      return;
    }
    await options.rate?.take(data.byteLength, options.signal);
    const put = await dest(to.put(job.ref, single(data), { expectedSize: job.size, signal: options.signal, sha256: job.sha256 }));
    work.buffers.release(buf);
    if (put.sha256 !== job.sha256) {
      // a store that hashes anyway saw other bytes than we did: take them out of the destination again
      await dest(to.delete(job.ref));
      result.problems.push(shaProblem(job, put.sha256));
      return;
    }
    result.copied++;
    result.copiedBytes += data.byteLength;
    options.onBytes?.(data.byteLength);
  };
  try {
    for (const job of jobs) {
      if (options.signal?.aborted) throw options.signal.reason;
      await gate.submit(() => copyOne(job));
      if (gate.error !== undefined) break;
    }
  } finally {
    await gate.drain();
    await work.close();
  }
  if (gate.error !== undefined) throw gate.error;
  return result;
}
