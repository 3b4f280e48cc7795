// The filesystem ChunkStore: sealed chunks as files under one root on a local or POSIX shared filesystem
// (NFS, Lustre, GPFS, CephFS). Layout and symlink refusal: ./layout.ts. Durable atomic writes: ./write-chunk.ts.
// Every filesystem operation runs through one p-limit queue, so a burst of requests cannot open thousands of
// files or flood libuv's thread pool. Contract: ../types.ts, checked by ../contract.case.ts.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { constants } from 'node:fs';
import { open, readdir, rmdir, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import pLimit, { type LimitFunction } from 'p-limit';
import { O_DIRECT, alignUp } from '../../src/buffer-pool.js';
import { CofferError, ErrorCode } from '../../src/errors.js';
import { assertBlobId, assertChunkRef, assertPutOptions, assertRange, assertSweepAge, chunkName, resolveRange } from '../ref.js';
import type { ByteRange, ChunkRef, ChunkStat, ChunkStore, ListBlobsOptions, PackPutResult, PackedChunkInput, PutOptions, PutResult } from '../types.js';
import { errnoOf, fsError } from './errors.js';
import { fsyncDir, FsLayout, prepareRoot } from './layout.js';
import { probeDirectIo } from './direct-io.js';
import { FsPacks, readAt, type PackedLocation } from './packs.js';
import { blobDirs, chunkIndices, sweepTemporaryFiles } from './walk.js';
import { writeChunk } from './write-chunk.js';

export interface FsChunkStoreOptions {
  /** Directory holding `chunks/`; created if missing. A root that is a symbolic link is resolved once, at open. */
  root: string;
  /** Most filesystem operations in flight at once (default 8). */
  concurrency?: number;
  /** Re-read and re-hash each chunk after its fsync, before the rename (default false). */
  verifyAfterWrite?: boolean;
  /**
   * Observer told how long each fsync took (file and directory), in seconds — for metrics. It must not throw;
   * the store never waits on it.
   */
  onFsync?: (seconds: number, what: 'file' | 'directory') => void;
  /**
   * Write chunks with O_DIRECT, bypassing the page cache (./direct-io.ts). Default: when a probe write at open
   * shows the filesystem allows it. true: require it (INVALID_ARGUMENT if refused); false: never.
   */
  directIo?: boolean;
  /**
   * Bulk writers only (backup create and restore): a put resolves once its chunk is renamed into place, without
   * the file and directory fsyncs; the writer calls flush() before relying on durability (default false).
   * A crash of the process loses nothing; a power loss before flush() may lose such chunks. Deletes of packed
   * chunks write the packs' dead marks at flush() or close(), once per pack (a mark lost to a crash before them
   * makes a deleted chunk garbage again, never the reverse).
   */
  deferSync?: boolean;
}

const DEFAULT_CONCURRENCY = 8;
const OPTION_KEYS = new Set(['root', 'concurrency', 'verifyAfterWrite', 'onFsync', 'directIo', 'deferSync']);

/**
 * Opens (creating if needed) a filesystem chunk store. Throws INVALID_ARGUMENT for bad or unknown options,
 * PATH_OUTSIDE_ROOT if `<root>/chunks` is a symbolic link, NO_SPACE/INTERNAL if the root cannot be made.
 */
export async function openFsChunkStore(options: FsChunkStoreOptions): Promise<FsChunkStore> {
  if (typeof options !== 'object' || options === null) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'filesystem chunk store options must be an object');
  }
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `unknown filesystem chunk store option "${key}"`);
  }
  const { root, concurrency = DEFAULT_CONCURRENCY, verifyAfterWrite = false, onFsync, directIo, deferSync = false } = options;
  if (typeof deferSync !== 'boolean') throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'deferSync must be a boolean');
  if (onFsync !== undefined && typeof onFsync !== 'function') {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'onFsync must be a function');
  }
  if (typeof root !== 'string' || root.length === 0 || root.includes('\0')) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'chunk store root must be a non-empty path');
  }
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1024) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'concurrency must be an integer in [1, 1024]');
  }
  if (typeof verifyAfterWrite !== 'boolean') {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'verifyAfterWrite must be a boolean');
  }
  if (directIo !== undefined && typeof directIo !== 'boolean') {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'directIo must be a boolean');
  }
  const layout = await prepareRoot(root);
  const direct = directIo === false ? false : await probeDirectIo(layout.chunksDir);
  if (directIo === true && !direct) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `the filesystem of ${layout.root} refuses O_DIRECT writes (directIo: true)`);
  }
  layout.deferSync = deferSync;
  const store = new FsChunkStore(layout, pLimit(concurrency), verifyAfterWrite, onFsync, direct);
  await store.packs.rescan(); // the index of every pack (docs/format.md "Pack file v2")
  return store;
}

export class FsChunkStore implements ChunkStore {
  #closed = false;
  readonly #inflight = new Set<Promise<unknown>>();
  /** Pack files (./packs.ts): where packed chunks live. */
  readonly packs: FsPacks;

  /** Use openFsChunkStore. */
  constructor(
    private readonly layout: FsLayout,
    private readonly io: LimitFunction,
    private readonly verifyAfterWrite: boolean,
    private readonly onFsync?: (seconds: number, what: 'file' | 'directory') => void,
    /** Chunks are written with O_DIRECT (probed at open). */
    readonly directIo = false,
  ) {
    this.packs = new FsPacks(layout, io);
  }

  /** Directory fsyncs issued and puts (or directory creations) they served (group-fsync.ts). */
  get directoryFsyncs(): { fsyncs: number; callers: number } {
    return { ...this.layout.dirSyncs.stats };
  }

  /** The canonical root directory (symbolic links resolved). */
  get root(): string {
    return this.layout.root;
  }

  /** Runs an operation unless closed, and remembers it so close() can wait for it. */
  #track<T>(op: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new CofferError(ErrorCode.UNAVAILABLE, 'the chunk store is closed'));
    const p = op();
    this.#inflight.add(p);
    const forget = (): void => {
      this.#inflight.delete(p);
    };
    p.then(forget, forget);
    return p;
  }

  put(ref: ChunkRef, data: Readable | AsyncIterable<Uint8Array>, options?: PutOptions): Promise<PutResult> {
    return this.#track(async () => {
      assertChunkRef(ref);
      assertPutOptions(options);
      if (typeof (data as Partial<AsyncIterable<Uint8Array>> | null)?.[Symbol.asyncIterator] !== 'function') {
        throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'chunk data must be a Readable or an AsyncIterable<Uint8Array>');
      }
      options?.signal?.throwIfAborted();
      const { dir, durable } = await this.layout.ensureBlobDir(ref.blobId);
      durable.catch(() => undefined); // awaited below; a failed write must not leave it unhandled
      const written = await writeChunk({
        root: this.layout.root,
        dir,
        finalName: chunkName(ref.index),
        tempName: FsLayout.tempName(ref.index),
        what: `chunk ${ref.blobId}/${chunkName(ref.index)}`,
        data,
        maxBytes: options?.maxBytes,
        expectedSize: options?.expectedSize,
        signal: options?.signal,
        beforeRename: options?.beforeRename,
        knownSha256: options?.sha256,
        verifyAfterWrite: this.verifyAfterWrite,
        direct: this.directIo,
        onFsync: this.onFsync,
        dirSync: (d) => this.layout.dirSyncs.sync(d),
        deferSync: this.layout.deferSync,
        io: this.io,
      });
      // the directory chain's fsyncs ran beside the chunk's own; the chunk is durable only once both are
      await durable;
      return written;
    });
  }

  get(ref: ChunkRef, range?: ByteRange): Promise<Readable> {
    return this.#track(async () => {
      assertChunkRef(ref);
      if (range !== undefined) assertRange(range);
      const packed = await this.#packed(ref);
      if (packed) return this.#getPacked(ref, packed, range);
      const path = await this.#chunkPath(ref);
      const handle = await this.io(() => open(path, constants.O_RDONLY | constants.O_NOFOLLOW)).catch((e: unknown) => {
        throw this.#readError(e, ref, path);
      });
      try {
        const st = await this.io(() => handle.stat());
        if (!st.isFile()) throw new CofferError(ErrorCode.INTERNAL, `${path} is not a regular file`);
        const span = range === undefined ? undefined : resolveRange(range, st.size);
        // the open handle pins this version of the chunk even if a put replaces it while it is read
        // 1 MiB reads: an 8 MiB chunk in 8 system calls instead of 128
        return handle.createReadStream(span === undefined ? { highWaterMark: 1024 * 1024 } : { start: span.start, end: span.end, highWaterMark: 1024 * 1024 });
      } catch (e) {
        await handle.close().catch(() => undefined);
        throw fsError(e, `reading ${path}`, this.layout.root);
      }
    });
  }

  readInto(ref: ChunkRef, into: Buffer): Promise<Buffer> {
    return this.#track(async () => {
      assertChunkRef(ref);
      if (!Buffer.isBuffer(into)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'readInto needs a Buffer');
      const packed = await this.#packed(ref);
      if (packed) return this.#readPacked(ref, packed, into);
      const path = await this.#chunkPath(ref);
      // Chunks written with O_DIRECT are not in the page cache: read them the same way, sparing the kernel a
      // fresh page per 4 KiB (direct-io.ts). That needs an aligned buffer (alignedAllocator) with room for the
      // last block; the kernel refuses any other (EINVAL) before reading, and a plain read takes over.
      let direct = this.directIo;
      for (;;) {
        const handle = await this.io(() => open(path, constants.O_RDONLY | constants.O_NOFOLLOW | (direct ? O_DIRECT : 0))).catch((e: unknown) => {
          throw this.#readError(e, ref, path);
        });
        try {
          const st = await this.io(() => handle.stat());
          if (!st.isFile()) throw new CofferError(ErrorCode.INTERNAL, `${path} is not a regular file`);
          if (st.size > into.length) {
            throw new CofferError(ErrorCode.PAYLOAD_TOO_LARGE, `chunk ${ref.blobId}/${chunkName(ref.index)} has ${st.size} bytes, more than the ${into.length} of the buffer`);
          }
          if (direct && into.length < alignUp(st.size)) {
            direct = false;
            continue;
          }
          let filled: number;
          try {
            filled = await readFully(this.io, handle, into, direct ? alignUp(st.size) : st.size, st.size);
          } catch (e) {
            if (direct && errnoOf(e) === 'EINVAL') {
              direct = false;
              continue;
            }
            throw e;
          }
          // a chunk file is never changed in place (puts rename a new file over it), so a short read is damage
          if (filled !== st.size) throw new CofferError(ErrorCode.INTEGRITY, `${path} ended after ${filled} of ${st.size} bytes`);
          return into.subarray(0, filled);
        } catch (e) {
          throw fsError(e, `reading ${path}`, this.layout.root);
        } finally {
          await handle.close().catch(() => undefined);
        }
      }
    });
  }

  stat(ref: ChunkRef): Promise<ChunkStat | null> {
    return this.#stat(ref, true);
  }

  /**
   * stat without the rescan a miss costs (ChunkStore.statKnown): a miss in memory rescans the packs directories
   * for packs another process wrote, at most once per MISS_RESCAN_MS (./packs.ts), so misses one after another
   * wait about that long each: an incremental backup stat'ing a few hundred new chunks took a minute. A bulk copy
   * into this store (the backup target, the restored vault) opened it itself, so every pack there is known.
   */
  statKnown(ref: ChunkRef): Promise<ChunkStat | null> {
    return this.#stat(ref, false);
  }

  #stat(ref: ChunkRef, rescan: boolean): Promise<ChunkStat | null> {
    return this.#track(async () => {
      assertChunkRef(ref);
      const packed = this.packs.known(ref);
      if (packed) return { size: packed.length };
      let handle;
      try {
        const path = await this.#chunkPath(ref);
        handle = await this.io(() => open(path, constants.O_RDONLY | constants.O_NOFOLLOW));
        const h = handle;
        const st = await this.io(() => h.stat());
        return { size: st.size };
      } catch (e) {
        const absent = (e instanceof CofferError && e.code === ErrorCode.NOT_FOUND) || errnoOf(e) === 'ENOENT' || errnoOf(e) === 'ENOTDIR';
        if (absent) {
          if (!rescan) return null;
          const found = await this.packs.locate(ref); // a pack another process wrote since
          return found ? { size: found.length } : null;
        }
        throw fsError(e, `inspecting chunk ${ref.blobId}/${chunkName(ref.index)}`, this.layout.root);
      } finally {
        await handle?.close().catch(() => undefined);
      }
    });
  }

  delete(ref: ChunkRef): Promise<void> {
    return this.#track(async () => {
      assertChunkRef(ref);
      await this.packs.kill(ref.blobId, ref.index);
      const dir = await this.layout.existingBlobDir(ref.blobId);
      if (dir === null) return;
      const path = join(dir, chunkName(ref.index));
      try {
        await this.io(() => unlink(path)); // unlink never follows a symbolic link
      } catch (e) {
        if (errnoOf(e) === 'ENOENT') return;
        throw fsError(e, `deleting ${path}`, this.layout.root);
      }
      await this.io(() => fsyncDir(dir, this.layout.root));
    });
  }

  deleteBlob(blobId: string): Promise<void> {
    return this.#track(async () => {
      assertBlobId(blobId);
      await this.packs.kill(blobId);
      const dir = await this.layout.existingBlobDir(blobId);
      if (dir === null) return;
      this.layout.forgetDurable(blobId);
      const entries = await this.io(() => readdir(dir)).catch((e: unknown) => {
        if (errnoOf(e) === 'ENOENT') return [];
        throw fsError(e, `listing ${dir}`, this.layout.root);
      });
      // chunk files and temp files alike: the blob is going away (a put racing with this may lose its temp)
      for (const name of entries) {
        await this.io(() => unlink(join(dir, name))).catch((e: unknown) => {
          if (errnoOf(e) !== 'ENOENT') throw fsError(e, `deleting ${join(dir, name)}`, this.layout.root);
        });
      }
      try {
        await this.io(() => rmdir(dir));
      } catch (e) {
        // ENOTEMPTY: a concurrent put added a chunk after we listed; that chunk stays, as if put came later
        if (errnoOf(e) !== 'ENOENT' && errnoOf(e) !== 'ENOTEMPTY') throw fsError(e, `removing ${dir}`, this.layout.root);
      }
      await this.io(() => fsyncDir(dirname(dir), this.layout.root));
    });
  }

  list(blobId: string): Promise<number[]> {
    return this.#track(async () => {
      assertBlobId(blobId);
      const dir = await this.layout.existingBlobDir(blobId);
      const files = dir === null ? [] : await chunkIndices(dir, this.io, this.layout.root);
      const packed = this.packs.indices(blobId);
      return packed.length === 0 ? files : [...new Set([...files, ...packed])].sort((x, y) => x - y);
    });
  }

  async *listBlobs(options: ListBlobsOptions = {}): AsyncIterable<string> {
    if (this.#closed) throw new CofferError(ErrorCode.UNAVAILABLE, 'the chunk store is closed');
    const settledMs = options.settledMs ?? 0;
    if (!Number.isSafeInteger(settledMs) || settledMs < 0) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'settledMs must be a non-negative integer');
    await this.packs.rescan();
    const listed = new Set<string>();
    for await (const [blobId, dir] of blobDirs(this.layout, this.io)) {
      if ((await chunkIndices(dir, this.io, this.layout.root)).length > 0) {
        listed.add(blobId);
        yield blobId;
      }
    }
    for (const blobId of this.packs.blobs(settledMs)) if (!listed.has(blobId)) yield blobId;
  }

  putPack(chunks: PackedChunkInput[], options: { beforeRename?: () => Promise<void> } = {}): Promise<PackPutResult> {
    return this.#track(async () => {
      if (!Array.isArray(chunks)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'putPack needs an array of chunks');
      for (const key of Object.keys(options)) {
        if (key !== 'beforeRename') throw new CofferError(ErrorCode.INVALID_ARGUMENT, `unknown putPack option "${key}"`);
      }
      for (const c of chunks) {
        assertChunkRef(c?.ref);
        if (!(c.data instanceof Uint8Array)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'a packed chunk\'s data must be a Uint8Array');
        if (c.sha256 !== undefined && (typeof c.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(c.sha256))) {
          throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'a packed chunk\'s sha256 must be 64 lowercase hex digits');
        }
        for (const key of Object.keys(c)) {
          if (key !== 'ref' && key !== 'data' && key !== 'sha256') throw new CofferError(ErrorCode.INVALID_ARGUMENT, `unknown packed chunk field "${key}"`);
        }
      }
      return this.packs.write(chunks, options.beforeRename);
    });
  }

  /**
   * Where a chunk sits in a pack this store has indexed, from memory (no rescan), or undefined (a chunk file,
   * or a pack written elsewhere since the last scan). Bulk readers (src/backup/copy-chunks.ts, the batch read
   * src/vault/small-files.ts) use it to read
   * neighbouring packed chunks with one readPackRange instead of one read each; readInto prefers packs the same way.
   */
  packedLocation(ref: ChunkRef): PackedLocation | undefined {
    assertChunkRef(ref);
    return this.packs.known(ref);
  }

  /**
   * Reads `length` bytes at `offset` of pack `packId` into `into` (one pread on a kept handle) and returns them.
   * Throws NOT_FOUND when the pack is gone (removed once wholly dead), INTEGRITY when it ends early,
   * PAYLOAD_TOO_LARGE when `into` is too small, INVALID_ARGUMENT for a bad id or span.
   */
  readPackRange(packId: string, offset: number, length: number, into: Buffer): Promise<Buffer> {
    return this.#track(async () => {
      if (typeof packId !== 'string' || !/^[0-9a-f]{32}$/.test(packId)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'a pack id is 32 lowercase hex digits');
      if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
        throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'a pack range needs a non-negative integer offset and length');
      }
      if (!Buffer.isBuffer(into)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'readPackRange needs a Buffer');
      if (length > into.length) throw new CofferError(ErrorCode.PAYLOAD_TOO_LARGE, `a pack range of ${length} bytes does not fit the ${into.length} of the buffer`);
      const path = this.packs.packPath(packId);
      let opened = false;
      try {
        return await this.packs.handles.use(packId, path, (handle) => {
          opened = true;
          return readAt(this.io, handle, offset, length, into);
        });
      } catch (e) {
        const errno = errnoOf(e);
        if (!opened && (errno === 'ENOENT' || errno === 'ENOTDIR')) {
          throw new CofferError(ErrorCode.NOT_FOUND, `pack ${packId} not found`, { details: { packId } });
        }
        throw fsError(e, `reading ${path}`, this.layout.root);
      }
    });
  }

  sweepTemporary(olderThanMs: number): Promise<number> {
    return this.#track(async () => {
      assertSweepAge(olderThanMs);
      return (await sweepTemporaryFiles(this.layout, this.io, olderThanMs)) + (await this.packs.sweep(Date.now() - olderThanMs));
    });
  }

  /**
   * Makes everything written so far durable (for stores opened with deferSync): pending pack dead marks written,
   * then syncfs(2) of the root's filesystem, through coreutils' `sync --file-system` (Node has no syncfs).
   * Throws INTERNAL when it fails.
   */
  async flush(): Promise<void> {
    await this.packs.flushMarks(); // pack dead marks deferred by deletes (./pack-marks.ts)
    await promisify(execFile)('sync', ['--file-system', this.layout.chunksDir]).catch((e: unknown) => {
      const err = e as { stderr?: string; message?: string };
      throw new CofferError(ErrorCode.INTERNAL, `syncing ${this.layout.root} failed: ${(err.stderr || err.message || '').trim()}`, { cause: e, retryable: true });
    });
  }

  /** Refuses new operations (UNAVAILABLE) and waits for those in flight. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#inflight]);
    try {
      await this.packs.flushMarks(); // deferSync: deletes not yet flushed (a lost mark is only garbage again)
    } finally {
      await this.packs.handles.closeAll();
    }
  }

  /** The packed location of a chunk, or undefined when it is a chunk file (or absent): packs first, then v1. */
  async #packed(ref: ChunkRef): Promise<PackedLocation | undefined> {
    const hit = this.packs.known(ref);
    if (hit) return hit;
    // a chunk file is the common v1 case; look for a pack written by another process only when there is none
    const dir = await this.layout.existingBlobDir(ref.blobId);
    if (dir !== null) return undefined;
    return this.packs.locate(ref);
  }

  async #getPacked(ref: ChunkRef, at: PackedLocation, range?: ByteRange): Promise<Readable> {
    const path = this.packs.packPath(at.packId);
    const handle = await this.io(() => open(path, constants.O_RDONLY | constants.O_NOFOLLOW)).catch((e: unknown) => {
      throw this.#readError(e, ref, path);
    });
    try {
      const span = range === undefined ? { start: 0, end: at.length - 1 } : resolveRange(range, at.length);
      return handle.createReadStream({ start: at.offset + span.start, end: at.offset + span.end, highWaterMark: 1024 * 1024 });
    } catch (e) {
      await handle.close().catch(() => undefined);
      throw fsError(e, `reading ${path}`, this.layout.root);
    }
  }

  async #readPacked(ref: ChunkRef, at: PackedLocation, into: Buffer): Promise<Buffer> {
    if (at.length > into.length) {
      throw new CofferError(ErrorCode.PAYLOAD_TOO_LARGE, `chunk ${ref.blobId}/${chunkName(ref.index)} has ${at.length} bytes, more than the ${into.length} of the buffer`);
    }
    const path = this.packs.packPath(at.packId);
    let opened = false;
    try {
      // a kept handle: one pread per chunk, not open + pread + close (pack-handles.ts)
      return await this.packs.handles.use(at.packId, path, (handle) => {
        opened = true;
        return readAt(this.io, handle, at.offset, at.length, into);
      });
    } catch (e) {
      if (!opened) throw this.#readError(e, ref, path);
      throw fsError(e, `reading ${path}`, this.layout.root);
    }
  }

  /** The chunk's path, its directory checked; NOT_FOUND when the blob has no directory. */
  async #chunkPath(ref: ChunkRef): Promise<string> {
    const dir = await this.layout.existingBlobDir(ref.blobId);
    if (dir === null) throw this.#notFound(ref);
    return join(dir, chunkName(ref.index));
  }

  #notFound(ref: ChunkRef): CofferError {
    return new CofferError(ErrorCode.NOT_FOUND, `chunk ${ref.blobId}/${chunkName(ref.index)} not found`, {
      details: { blobId: ref.blobId, index: ref.index },
    });
  }

  #readError(e: unknown, ref: ChunkRef, path: string): CofferError {
    const errno = errnoOf(e);
    if (errno === 'ENOENT' || errno === 'ENOTDIR') return this.#notFound(ref);
    return fsError(e, `opening ${path}`, this.layout.root);
  }
}

/**
 * Reads from offset 0, asking for up to `length` bytes, until `expected` bytes arrived or the file ended;
 * returns the bytes read. (An O_DIRECT read asks for whole blocks, so `length` may exceed `expected`.)
 */
async function readFully(io: LimitFunction, fh: FileHandle, into: Buffer, length: number, expected: number): Promise<number> {
  let filled = 0;
  while (filled < expected) {
    const at = filled;
    const { bytesRead } = await io(() => fh.read(into, at, length - at, at));
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return filled;
}
