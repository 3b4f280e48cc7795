// Copies sealed chunk files from one chunk store to another (vault → target for create, target → vault for
// restore), checking each one on the way, all in one step (`copyOne` below, the only place that reads, checks,
// hashes and puts a chunk): size and header as read, then SHA-256 on a worker thread (src/hash-pool.ts) while other
// chunks are read and written; only a chunk whose digest is the recorded one is put, and the put is given that
// digest so the destination does not hash the bytes a second time. Bounded concurrency (a Gate: tasks are made
// one by one as room frees, never one promise per chunk up front), a few reused 4 KiB-aligned 8 MiB buffers in
// shared memory (O_DIRECT reads; the hash workers read them in place), an optional rate limit. Small chunks go
// to a destination with packs (the fs store) many to a pack file, not one file each (PACK_CHUNK_MAX). A chunk that
// the source does not have or that fails a check is reported, not thrown, so the caller can say which files
// it affects.
import os from 'node:os';
import type { ChunkRef, ChunkStore } from '../../storage-backend/index.js';
import { alignUp, alignedAllocator, BufferPool } from '../buffer-pool.js';
import { MAX_SEALED_SIZE } from '../crypto/index.js';
import { CofferError, ErrorCode } from '../errors.js';
import { Gate } from '../gate.js';
import { HashPool } from '../hash-pool.js';
import { PackReader, type PackRun as PackRunOf } from '../pack-runs.js';
import type { RateLimiter } from './rate-limit.js';

type PackRun = PackRunOf<ChunkJob>;

/**
 * Chunk files copied at once by create and restore unless told otherwise. Each chunk is read and then written with
 * O_DIRECT, so more of them in flight keep the disk's queue fuller. Measured on this machine's disk (quiet, cold
 * cache, 2 GiB + 10,000 files, 4 rounds alternating with `cp -r` + `sync`, session 17): create 2.59–3.11 s at 8,
 * 2.39–2.97 s at 16, 2.26–2.53 s at 24 (medians 2.80, 2.42, 2.45; `cp -r` + `sync` 2.10); restore 3.06–3.78 s at 8
 * against 2.48–2.91 s at 16 (docs/benchmarks.md, "Backup"). Memory: one 8 MiB buffer each.
 */
export const COPY_CONCURRENCY = 16;

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
  /** Where chunks are hashed (tests kill its workers); default: a pool of the run's own, closed at its end. */
  hasher?: HashPool;
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
  const problem = checkRead(job, data);
  if (problem) return problem;
  if (hasher) {
    const sha = await hasher.digest(data);
    if (sha !== job.sha256) return shaProblem(job, sha);
  }
  return data;
}

/** The checks of a chunk's bytes before its digest: size, then header. */
function checkRead(job: ChunkJob, data: Buffer): ChunkProblem | null {
  if (data.byteLength !== job.size) return { job, kind: 'size', message: `chunk file is ${data.byteLength} bytes, expected ${job.size}` };
  try {
    job.checkHeader?.(data);
  } catch (e) {
    return { job, kind: 'header', message: (e as Error).message };
  }
  return null;
}

/**
 * What a bulk chunk pass holds: `concurrency` aligned 8 MiB buffers in shared memory and a pool of hash
 * workers (one per core, at most one per buffer). close() stops the workers and zeroes the buffers.
 */
export class ChunkWorkspace {
  readonly buffers: BufferPool;
  readonly hasher: HashPool;
  readonly #ownHasher: boolean;

  /** `hasher`: a pool of the caller's (left open by close()) instead of one of `hashWorkers` threads. */
  constructor(readonly concurrency: number, hashWorkers = Math.min(concurrency, os.availableParallelism()), hasher?: HashPool) {
    const size = alignUp(MAX_SEALED_SIZE);
    this.buffers = new BufferPool(size, concurrency, alignedAllocator(size, concurrency, { shared: true }));
    this.hasher = hasher ?? new HashPool(hashWorkers);
    this.#ownHasher = hasher === undefined;
  }

  async close(): Promise<void> {
    this.buffers.clear();
    if (this.#ownHasher) await this.hasher.close();
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

/**
 * Small chunks go to a destination that has packs (the fs store's putPack, docs/format.md "Pack file v2") many to
 * a pack file instead of one chunk file each: sealed chunks up to PACK_CHUNK_MAX bytes (`put -r`'s small files
 * are up to 1 MiB), gathered until a pack holds PACK_MAX_BYTES or PACK_MAX_CHUNKS.
 */
export const PACK_CHUNK_MAX = 1024 * 1024 + 64;
export const PACK_MAX_BYTES = 8 * 1024 * 1024;
export const PACK_MAX_CHUNKS = 4096;
/**
 * A pack is also written once its first chunk has waited this long, when the next chunk arrives: a slow (rate-
 * limited) or killed run keeps what it copied up to about a second ago, and its progress shows at the target.
 */
export const PACK_MAX_AGE_MS = 1000;

/** Checked small chunks waiting for their pack (copies: the workspace buffer they were read into is reused). */
interface PackBatch {
  chunks: Array<{ ref: ChunkRef; data: Buffer; sha256: string; job: ChunkJob }>;
  bytes: number;
  /** When its first chunk arrived (Date.now()). */
  since: number;
}

export async function copyChunks(from: ChunkStore, to: ChunkStore, jobs: Iterable<ChunkJob>, options: CopyOptions): Promise<CopyResult> {
  const result: CopyResult = { copied: 0, copiedBytes: 0, present: 0, problems: [] };
  const gate = new Gate(Math.max(1, options.concurrency));
  const work = new ChunkWorkspace(gate.limit, undefined, options.hasher);
  const dest = <T>(p: Promise<T>): Promise<T> => p.catch((e: unknown) => {
    throw options.destinationError ? options.destinationError(e) : e;
  });
  const putPack = to.putPack?.bind(to);
  let batch: PackBatch = { chunks: [], bytes: 0, since: 0 };
  /** Writes the chunks gathered so far as one pack; each counts as copied once the pack is in place. */
  const flushPack = async (): Promise<void> => {
    const full = batch;
    batch = { chunks: [], bytes: 0, since: 0 };
    if (full.chunks.length === 0 || !putPack) return;
    const stored = await dest(putPack(full.chunks.map((c) => ({ ref: c.ref, data: c.data, sha256: c.sha256 }))));
    for (const [i, c] of full.chunks.entries()) {
      const sha = stored.chunks[i]?.sha256;
      if (sha !== c.sha256) {
        await dest(to.delete(c.ref));
        result.problems.push(shaProblem(c.job, sha ?? 'none'));
        continue;
      }
      result.copied++;
      result.copiedBytes += c.data.byteLength;
      options.onBytes?.(c.data.byteLength);
    }
  };
  // "Already there?" is asked mostly of absent chunks (an incremental run stats every new one). The fs store's
  // stat rescans its packs on each miss, at most once per 250 ms, so misses one after another cost that much
  // each; statKnown answers from what the store knows (it was opened for this run: every pack there is known,
  // and those this run writes). A pack another process wrote meanwhile is missed: that chunk is copied again,
  // which is harmless. Stores without it (S3) stat.
  const statPresent = to.statKnown ? to.statKnown.bind(to) : to.stat.bind(to);
  /** Skips a chunk the destination already has at the expected size (resume); true when skipped. */
  const present = async (job: ChunkJob): Promise<boolean> => {
    if (!options.skipPresent || (options.presentBlobs !== undefined && !options.presentBlobs.has(job.ref.blobId))) return false;
    const st = await dest(statPresent(job.ref));
    if (!st || st.size !== job.size) return false;
    result.present++;
    options.onBytes?.(job.size);
    return true;
  };
  /** A checked small chunk (`data` may be a workspace buffer's view: copied out here) joins the next pack. */
  const addToPack = async (job: ChunkJob, data: Buffer): Promise<void> => {
    await options.rate?.take(data.byteLength, options.signal);
    if (batch.chunks.length === 0) batch.since = Date.now();
    batch.chunks.push({ ref: job.ref, data: Buffer.from(data), sha256: job.sha256, job });
    batch.bytes += data.byteLength;
    if (batch.bytes >= PACK_MAX_BYTES || batch.chunks.length >= PACK_MAX_CHUNKS || Date.now() - batch.since >= PACK_MAX_AGE_MS) await flushPack();
  };
  const copyOne = async (job: ChunkJob): Promise<void> => {
    if (await present(job)) return;
    const buf = work.buffers.acquire();
    if (putPack && job.size <= PACK_CHUNK_MAX) {
      // checked and hashed like any other; copied out of the workspace buffer into the next pack
      const data = await readChecked(from, job, buf, work.hasher);
      if (isProblem(data)) result.problems.push(data);
      else await addToPack(job, data);
      work.buffers.release(buf);
      return;
    }
    // size and header now; SHA-256 on a worker *while* the put writes the bytes to a temporary name: the put's
    // beforeRename waits for the digest and refuses a chunk whose bytes are not the recorded ones, so such a
    // chunk never appears at the destination (its temporary file is removed), as when it was hashed first
    const data = await readChecked(from, job, buf, null);
    if (isProblem(data)) {
      work.buffers.release(buf);
      result.problems.push(data);
      return;
    }
    const digest = work.hasher.digest(data);
    digest.catch(() => undefined); // awaited below
    const seen: { sha: string | null } = { sha: null };
    try {
      await options.rate?.take(data.byteLength, options.signal);
      const put = await to.put(job.ref, single(data), {
        expectedSize: job.size, signal: options.signal, sha256: job.sha256,
        beforeRename: async () => {
          const sha = await digest;
          if (sha !== job.sha256) {
            seen.sha = sha;
            throw new CofferError(ErrorCode.INTEGRITY, 'SHA-256 differs from the recorded one');
          }
        },
      }).catch((e: unknown) => {
        if (seen.sha !== null) return null;
        throw options.destinationError ? options.destinationError(e) : e;
      });
      if (put === null) result.problems.push(shaProblem(job, seen.sha as string));
      else await landed(job, put.sha256, data.byteLength);
    } finally {
      // the worker reads the buffer in place: it goes back to the pool only once the digest is done
      await digest.catch(() => undefined);
      work.buffers.release(buf);
    }
  };
  /**
   * Small chunks that sit in the source's packs, read many at a time (PackReader): one pread per run of
   * neighbouring chunks instead of one per chunk; each chunk sliced out is checked (size, header, SHA-256) as
   * copyOne checks it. A run whose pack is gone meanwhile (GC removed it) falls back to copyOne per chunk.
   */
  const copyRun = async (run: PackRun): Promise<void> => {
    const todo: PackRun['chunks'] = [];
    for (const c of run.chunks) if (!(await present(c.job))) todo.push(c);
    if (todo.length === 0) return;
    const start = (todo[0] as PackRun['chunks'][number]).loc.offset;
    const last = todo.at(-1) as PackRun['chunks'][number];
    const buf = work.buffers.acquire();
    let packGone = false;
    try {
      const span = await (from.readPackRange as NonNullable<ChunkStore['readPackRange']>)(run.packId, start, last.loc.offset + last.loc.length - start, buf).catch((e: unknown) => {
        if (!(e instanceof CofferError && e.code === ErrorCode.NOT_FOUND)) throw e;
        return null;
      });
      if (span === null) packGone = true;
      else await copySpan(todo, span, start);
    } finally {
      // released once, here: a buffer given back earlier may be another copy's by now
      work.buffers.release(buf);
    }
    // the pack is gone meanwhile (GC removed it): each chunk on its own, reported as copyOne reports it
    if (packGone) for (const c of todo) await copyOne(c.job);
  };
  /** A run's chunks, sliced out of `span` (read from the pack at `start`), each checked and hashed, then stored. */
  const copySpan = async (todo: PackRun['chunks'], span: Buffer, start: number): Promise<void> => {
    const checked: Array<{ job: ChunkJob; data: Buffer }> = [];
    for (const c of todo) {
      const data = span.subarray(c.loc.offset - start, c.loc.offset - start + c.loc.length);
      const problem = checkRead(c.job, data);
      if (problem) result.problems.push(problem);
      else checked.push({ job: c.job, data });
    }
    // every digest settled before the buffer goes back (a worker may still read it after another one failed)
    const digests = await Promise.allSettled(checked.map((c) => work.hasher.digest(c.data)));
    const failed = digests.find((d) => d.status === 'rejected');
    if (failed) throw failed.reason;
    for (const [i, c] of checked.entries()) {
      const sha = (digests[i] as PromiseFulfilledResult<string>).value;
      if (sha !== c.job.sha256) result.problems.push(shaProblem(c.job, sha));
      else if (putPack) await addToPack(c.job, c.data);
      else await putWhole(c.job, c.data);
    }
  };
  /** A checked, hashed chunk to a destination without packs (one put, handed the digest). */
  const putWhole = async (job: ChunkJob, data: Buffer): Promise<void> => {
    await options.rate?.take(data.byteLength, options.signal);
    const put = await dest(to.put(job.ref, single(data), { expectedSize: job.size, signal: options.signal, sha256: job.sha256 }));
    await landed(job, put.sha256, data.byteLength);
  };
  /** What a whole chunk's put came to: counted, or taken out of the destination again and reported. */
  const landed = async (job: ChunkJob, storedSha256: string, bytes: number): Promise<void> => {
    if (storedSha256 !== job.sha256) {
      // a store that hashes anyway saw other bytes than we did: take them out of the destination again
      await dest(to.delete(job.ref));
      result.problems.push(shaProblem(job, storedSha256));
      return;
    }
    result.copied++;
    result.copiedBytes += bytes;
    options.onBytes?.(bytes);
  };
  const reader = from.packedLocation && from.readPackRange ? new PackReader<ChunkJob>(from.packedLocation.bind(from), work.buffers.size) : null;
  const submitRuns = async (runs: PackRun[]): Promise<void> => {
    for (const run of runs) {
      await gate.submit(() => copyRun(run));
      if (gate.error !== undefined) return;
    }
  };
  try {
    for (const job of jobs) {
      if (options.signal?.aborted) throw options.signal.reason;
      if (reader && job.size <= PACK_CHUNK_MAX && reader.add(job)) {
        if (reader.full) await submitRuns(reader.take());
      } else {
        await gate.submit(() => copyOne(job));
      }
      if (gate.error !== undefined) break;
    }
    if (reader && gate.error === undefined) await submitRuns(reader.take());
    await gate.drain();
    if (gate.error === undefined) await flushPack(); // the last, partly filled pack
  } finally {
    await gate.drain();
    await work.close();
  }
  if (gate.error !== undefined) throw gate.error;
  return result;
}
