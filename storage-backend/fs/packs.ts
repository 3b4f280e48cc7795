// Pack files of the filesystem store (docs/format.md "Pack file v2"): many small sealed chunks in one file under
//   <root>/packs/<id hex[0:2]>/<id hex>
// written once (temp, one fsync, rename, one directory fsync; none with deferSync, whose writer calls flush()) and
// never changed. Where each packed chunk lives
// is kept in memory, built at open from every pack's own index and trailer and extended by every pack written:
// one entry per blob (a run of its chunks: pack, first entry, first index, count; a pack's chunks are contiguous
// and the batch route packs one chunk per blob, so one run per blob and pack is the usual case; a blob whose
// chunks are interleaved with others', out of order or in several packs gets a run per stretch) and per pack
// one array of chunk offsets (docs/benchmarks.md "Memory of put -r and the service": 418 heap bytes per packed
// chunk when every chunk had its own entry, 109 now);
// a lookup that misses rescans for packs another process (a replica on a shared filesystem) wrote since, at most
// once per MISS_RESCAN_MS however many misses arrive (a client asking for absent chunks cannot make the service
// list the packs/ directories in a loop). A chunk file (v1) is looked for before any rescan (./index.ts).
// Deleting packed chunks marks them dead; a pack goes once none of its chunks is alive (no repacking yet).
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LimitFunction } from 'p-limit';
import { CofferError, ErrorCode } from '../../src/errors.js';
import { PACK_ENTRY_SIZE, PACK_TRAILER_SIZE, PACKED_CHUNK_MAX, PACKED_CHUNK_MIN, decodePackIndex, encodePackIndex, isPackId, newPackId, packEntryCount, type PackEntry } from '../pack-format.js';
import type { ChunkRef, PackPutResult, PackedChunkInput } from '../types.js';
import { errnoOf, fsError } from './errors.js';
import { fsyncDir, type FsLayout } from './layout.js';
import { PackHandles } from './pack-handles.js';

const FANOUT = /^[0-9a-f]{2}$/;
const TEMP_PREFIX = '.tmp-pack-';
const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
/** Packs remembered as removed, so a rescan racing the unlink does not bring their dead entries back. */
const GONE_MAX = 4096;
/** Lookups that miss start at most one rescan per this many ms; every miss waits for a rescan begun after it. */
export const MISS_RESCAN_MS = 250;

/** Where one packed chunk lives. */
export interface PackedLocation {
  packId: string;
  offset: number;
  length: number;
}

interface PackInfo {
  id: string;
  /** Entry i of the pack starts at starts[i] and ends at starts[i + 1] (chunks are contiguous: decodePackIndex). */
  starts: Uint32Array | Float64Array;
  live: number;
  mtimeMs: number;
}

/** Live chunks first .. first + count - 1 of one blob, at entries pos .. pos + count - 1 of one pack. */
interface Run {
  pack: PackInfo;
  pos: number;
  first: number;
  count: number;
}

/** A blob's runs: one object in the usual case (an array costs more heap than the run itself). */
type Runs = Run | Run[];

const keyOf = (blobId: string, index: number): string => `${blobId}/${index}`;
const runsOf = (r: Runs | undefined): Run[] => (r === undefined ? [] : Array.isArray(r) ? r : [r]);
const packed = (runs: Run[]): Runs | undefined => (runs.length === 0 ? undefined : runs.length === 1 ? runs[0] : runs);

function startsOf(entries: PackEntry[]): Uint32Array | Float64Array {
  const last = entries.at(-1) as PackEntry;
  const end = last.offset + last.length;
  const starts = end <= 0xffff_ffff ? new Uint32Array(entries.length + 1) : new Float64Array(entries.length + 1);
  entries.forEach((e, i) => (starts[i] = e.offset));
  starts[entries.length] = end;
  return starts;
}

export class FsPacks {
  readonly #blobs = new Map<string, Runs>();
  readonly #packs = new Map<string, PackInfo>();
  readonly #gone = new Set<string>();
  readonly #durableDirs = new Set<string>();
  #scan: Promise<void> | null = null;
  #nextScan: Promise<void> | null = null;
  /** The next rescan on behalf of misses, not yet begun: misses arriving before it begins share it. */
  #missScan: Promise<void> | null = null;
  #missScanStarted = -Infinity;
  #scans = 0;

  /** Read-only handles on packs, kept between reads (pack-handles.ts); a removed pack's is dropped. */
  readonly handles: PackHandles;

  constructor(private readonly layout: FsLayout, private readonly io: LimitFunction) {
    this.handles = new PackHandles(io);
  }

  get dir(): string {
    return join(this.layout.root, 'packs');
  }

  packPath(packId: string): string {
    return join(this.dir, packId.slice(0, 2), packId);
  }

  /** The chunk's location if it is packed (from memory; see locate for the rescan). */
  known(ref: ChunkRef): PackedLocation | undefined {
    const runs = this.#blobs.get(ref.blobId);
    if (runs === undefined) return undefined;
    for (const r of Array.isArray(runs) ? runs : [runs]) {
      if (ref.index < r.first || ref.index >= r.first + r.count) continue;
      const pos = r.pos + ref.index - r.first;
      const { starts } = r.pack;
      return { packId: r.pack.id, offset: starts[pos] as number, length: (starts[pos + 1] as number) - (starts[pos] as number) };
    }
    return undefined;
  }

  /** Directory scans run so far (at open, for listBlobs, for misses): for tests. */
  get scans(): number {
    return this.#scans;
  }

  /**
   * The chunk's location if it is packed, rescanning for packs written elsewhere when memory has none. A rescan
   * begun after this call serves it; misses share rescans, begun at most once per MISS_RESCAN_MS (a miss may
   * wait that long). Errors are those of rescan.
   */
  async locate(ref: ChunkRef): Promise<PackedLocation | undefined> {
    const hit = this.known(ref);
    if (hit) return hit;
    await this.#rescanForMiss();
    return this.known(ref);
  }

  #rescanForMiss(): Promise<void> {
    if (this.#missScan) return this.#missScan;
    const wait = this.#missScanStarted + MISS_RESCAN_MS - Date.now();
    const run = (async (): Promise<void> => {
      await (wait > 0 ? sleep(wait) : Promise.resolve());
      this.#missScan = null; // a miss from now on needs a rescan begun later than this one
      this.#missScanStarted = Date.now();
      await this.rescan();
    })();
    this.#missScan = run;
    return run;
  }

  /**
   * Loads every pack not yet known. Concurrent callers share one scan. Throws CHUNK_FORMAT never (a damaged
   * pack is skipped: its chunks read as missing and fsck reports it), INTERNAL on an I/O error.
   */
  rescan(): Promise<void> {
    if (this.#scan) {
      // callers arriving during a scan share the one that follows it
      this.#nextScan ??= this.#scan.catch(() => undefined).then(() => {
        this.#nextScan = null;
        return this.rescan();
      });
      return this.#nextScan;
    }
    this.#scans++;
    const run = this.#scanAll().finally(() => {
      if (this.#scan === run) this.#scan = null;
    });
    this.#scan = run;
    return run;
  }

  async #scanAll(): Promise<void> {
    for (const a of await this.#readdir(this.dir)) {
      if (!FANOUT.test(a)) continue;
      for (const name of await this.#readdir(join(this.dir, a))) {
        if (!isPackId(name) || !name.startsWith(a) || this.#packs.has(name) || this.#gone.has(name)) continue;
        try {
          await this.#load(name);
        } catch (e) {
          // a damaged pack is never half-used; fsck reports it (its chunks read as missing meanwhile)
          if (!(e instanceof CofferError && e.code === ErrorCode.CHUNK_FORMAT)) throw e;
        }
      }
    }
  }

  async #readdir(dir: string): Promise<string[]> {
    try {
      return await this.io(() => readdir(dir));
    } catch (e) {
      if (errnoOf(e) === 'ENOENT' || errnoOf(e) === 'ENOTDIR') return [];
      throw fsError(e, `listing ${dir}`, this.layout.root);
    }
  }

  /** Reads and checks one pack's index (docs/format.md reader rules) and adds its chunks. */
  async #load(packId: string): Promise<void> {
    const path = this.packPath(packId);
    let fh: FileHandle | undefined;
    try {
      fh = await this.io(() => open(path, constants.O_RDONLY | constants.O_NOFOLLOW));
      const h = fh;
      const st = await this.io(() => h.stat());
      if (!st.isFile() || st.size < PACK_TRAILER_SIZE) throw new CofferError(ErrorCode.CHUNK_FORMAT, `pack ${packId}: not a pack file`);
      const trailer = await readAt(this.io, h, st.size - PACK_TRAILER_SIZE, PACK_TRAILER_SIZE);
      const n = packEntryCount(trailer);
      const tailLength = n * PACK_ENTRY_SIZE + PACK_TRAILER_SIZE;
      if (tailLength > st.size) throw new CofferError(ErrorCode.CHUNK_FORMAT, `pack ${packId}: file too short for its entry count`);
      const entries = decodePackIndex(await readAt(this.io, h, st.size - tailLength, tailLength), st.size);
      if (!this.#gone.has(packId) && !this.#packs.has(packId)) this.#add(packId, entries, st.mtimeMs);
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return; // removed meanwhile
      if (e instanceof CofferError) throw e;
      throw fsError(e, `reading pack ${path}`, this.layout.root);
    } finally {
      await fh?.close().catch(() => undefined);
    }
  }

  #add(packId: string, entries: PackEntry[], mtimeMs: number): void {
    const pack: PackInfo = { id: packId, starts: startsOf(entries), live: 0, mtimeMs };
    let run: Run | undefined; // the run the previous entry went to
    let runBlob = '';
    entries.forEach((e, pos) => {
      if (this.known(e)) return; // already in another pack: writers never do this; the first one read wins
      pack.live++;
      if (run && runBlob === e.blobId && run.pos + run.count === pos && run.first + run.count === e.index) {
        run.count++;
        return;
      }
      run = { pack, pos, first: e.index, count: 1 };
      runBlob = e.blobId;
      const had = this.#blobs.get(e.blobId);
      if (had === undefined) this.#blobs.set(e.blobId, run);
      else if (Array.isArray(had)) had.push(run); // in place: a pack alternating two blobs stays linear
      else this.#blobs.set(e.blobId, [had, run]);
    });
    this.#packs.set(packId, pack);
  }

  /**
   * Writes `chunks` as one pack: a temporary file, one fsync, `beforeRename`, rename, one directory fsync.
   * Resolves only when the pack is durable under its name; on failure nothing is visible under a pack name
   * and the temporary file is removed (a crash may leave it for sweepTemporary). Throws INVALID_ARGUMENT (no
   * chunks, too many, a chunk of a length no sealed chunk has, a chunk twice), NO_SPACE, INTERNAL.
   */
  async write(chunks: PackedChunkInput[], beforeRename?: () => Promise<void>): Promise<PackPutResult> {
    const entries: PackEntry[] = [];
    const seen = new Set<string>();
    let offset = 0;
    for (const c of chunks) {
      const length = c.data.byteLength;
      if (length < PACKED_CHUNK_MIN || length > PACKED_CHUNK_MAX) {
        throw new CofferError(ErrorCode.INVALID_ARGUMENT, `chunk ${c.ref.blobId}/${c.ref.index}: ${length} bytes is not the length of a sealed chunk`);
      }
      const key = keyOf(c.ref.blobId, c.ref.index);
      if (seen.has(key)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `chunk ${key} is twice in one pack`);
      seen.add(key);
      entries.push({ blobId: c.ref.blobId, index: c.ref.index, offset, length });
      offset += length;
    }
    const tail = encodePackIndex(entries); // INVALID_ARGUMENT for 0 or too many
    const packId = newPackId();
    const dir = join(this.dir, packId.slice(0, 2));
    await this.#mkdirs(dir);
    const durableDirs = this.#ensureDirs(dir); // beside the pack's own write and fsync
    durableDirs.catch(() => undefined);
    const temp = join(dir, `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
    const final = this.packPath(packId);
    let fh: FileHandle | undefined;
    let renamed = false;
    try {
      fh = await this.io(() => open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, FILE_MODE));
      const h = fh;
      const parts = [...chunks.map((c) => c.data), tail];
      await this.io(async () => {
        let pos = 0;
        for (const p of parts) {
          let done = 0;
          while (done < p.byteLength) {
            const { bytesWritten } = await h.write(p, done, p.byteLength - done, pos + done);
            done += bytesWritten;
          }
          pos += p.byteLength;
        }
      });
      // a bulk writer (deferSync: backup create and restore) makes everything durable with one flush() instead
      if (!this.layout.deferSync) await this.io(() => h.sync());
      const st = await this.io(() => h.stat());
      await this.io(() => h.close());
      fh = undefined;
      await this.io(async () => {
        await beforeRename?.();
        await rename(temp, final);
      });
      renamed = true;
      if (!this.layout.deferSync) await this.layout.dirSyncs.sync(dir);
      await durableDirs;
      this.#add(packId, entries, st.mtimeMs);
    } catch (e) {
      await fh?.close().catch(() => undefined);
      if (!renamed) await unlink(temp).catch(() => undefined);
      if (e instanceof CofferError) throw e;
      throw fsError(e, `writing pack ${final}`, this.layout.root);
    }
    return {
      packId,
      // a digest the caller computed (backup: on worker threads) is not computed again here
      chunks: chunks.map((c) => ({ size: c.data.byteLength, sha256: c.sha256 ?? createHash('sha256').update(c.data).digest('hex') })),
    };
  }

  async #mkdirs(dir: string): Promise<void> {
    for (const level of [this.dir, dir]) {
      try {
        await this.io(() => mkdir(level, { mode: DIR_MODE }));
      } catch (e) {
        if (errnoOf(e) !== 'EEXIST') throw fsError(e, `creating directory ${level}`, this.layout.root);
        const st = await lstat(level);
        if (!st.isDirectory()) {
          throw new CofferError(ErrorCode.PATH_OUTSIDE_ROOT, `chunk store path ${level} is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a directory'}; refusing to use it`);
        }
      }
    }
  }

  /** fsyncs the parents of `packs/` and `packs/xx/` once per process (after the mkdirs above ran). */
  async #ensureDirs(dir: string): Promise<void> {
    if (this.layout.deferSync) return;
    const todo = [[this.dir, this.layout.root], [dir, this.dir]].filter(([level]) => !this.#durableDirs.has(level as string));
    if (todo.length === 0) return;
    await Promise.all(todo.map(([, parent]) => this.layout.dirSyncs.sync(parent as string)));
    for (const [level] of todo) this.#durableDirs.add(level as string);
  }

  /** Packed chunk indices of a blob, ascending (memory only). */
  indices(blobId: string): number[] {
    const out: number[] = [];
    for (const r of runsOf(this.#blobs.get(blobId))) for (let i = 0; i < r.count; i++) out.push(r.first + i);
    return out.sort((x, y) => x - y);
  }

  /** Blob ids with a live packed chunk in a pack last modified at least `settledMs` ago. */
  blobs(settledMs = 0): string[] {
    const cutoff = Date.now() - settledMs;
    const out: string[] = [];
    for (const [blobId, runs] of this.#blobs) {
      if (runsOf(runs).some((r) => r.pack.mtimeMs <= cutoff)) out.push(blobId);
    }
    return out;
  }

  /** Marks packed chunks dead (one index, or the whole blob); removes packs left with none alive. Idempotent. */
  async kill(blobId: string, index?: number): Promise<void> {
    const runs = runsOf(this.#blobs.get(blobId));
    if (runs.length === 0) return;
    const doomed = new Set<string>();
    const kept: Run[] = [];
    for (const r of runs) {
      if (index === undefined) {
        r.pack.live -= r.count;
      } else if (index >= r.first && index < r.first + r.count) {
        // the run splits around the dead chunk
        const before = index - r.first;
        const after = r.count - before - 1;
        if (before > 0) kept.push({ pack: r.pack, pos: r.pos, first: r.first, count: before });
        if (after > 0) kept.push({ pack: r.pack, pos: r.pos + before + 1, first: index + 1, count: after });
        r.pack.live--;
      } else {
        kept.push(r);
        continue;
      }
      if (r.pack.live === 0 && this.#packs.get(r.pack.id) === r.pack) doomed.add(r.pack.id);
    }
    const left = packed(kept);
    if (left === undefined) this.#blobs.delete(blobId);
    else this.#blobs.set(blobId, left);
    for (const packId of doomed) {
      this.#packs.delete(packId);
      this.handles.drop(packId);
      if (this.#gone.size >= GONE_MAX) this.#gone.clear();
      this.#gone.add(packId);
      const path = this.packPath(packId);
      await this.io(() => unlink(path)).catch((e: unknown) => {
        if (errnoOf(e) !== 'ENOENT') throw fsError(e, `removing pack ${path}`, this.layout.root);
      });
      await this.io(() => fsyncDir(join(this.dir, packId.slice(0, 2)), this.layout.root));
    }
  }

  /** Removes temporary pack files older than `cutoff` (epoch ms); returns how many. */
  async sweep(cutoff: number): Promise<number> {
    let removed = 0;
    for (const a of await this.#readdir(this.dir)) {
      if (!FANOUT.test(a)) continue;
      const dir = join(this.dir, a);
      for (const name of await this.#readdir(dir)) {
        if (!name.startsWith(TEMP_PREFIX)) continue;
        const path = join(dir, name);
        try {
          const st = await this.io(() => lstat(path));
          if (!st.isFile() || st.mtimeMs > cutoff) continue;
          await this.io(() => unlink(path));
          removed++;
        } catch (e) {
          if (errnoOf(e) !== 'ENOENT') throw fsError(e, `removing temporary file ${path}`, this.layout.root);
        }
      }
    }
    return removed;
  }
}

/** Reads exactly `length` bytes at `position`; INTEGRITY if the file ends first. */
export async function readAt(io: LimitFunction, fh: FileHandle, position: number, length: number, into?: Buffer): Promise<Buffer> {
  const buf = into ?? Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await io(() => fh.read(buf, done, length - done, position + done));
    if (bytesRead === 0) throw new CofferError(ErrorCode.INTEGRITY, `a pack ended ${length - done} bytes early`);
    done += bytesRead;
  }
  return buf.subarray(0, length);
}
