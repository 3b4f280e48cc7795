// Pack files of the filesystem store (docs/format.md "Pack file v2"): many small sealed chunks in one file under
//   <root>/packs/<id hex[0:2]>/<id hex>
// written once (temp, one fsync, rename, one directory fsync; none with deferSync, whose writer calls flush()) and
// never changed. Where each packed chunk lives
// is kept in memory, built at open from every pack's own index and trailer and extended by every pack written:
// one entry per blob (a run of its chunks: pack, first entry, first index, count; a pack's chunks are contiguous
// and the batch route packs one chunk per blob, so one run per blob and pack is the usual case; a blob whose
// chunks are interleaved with others', out of order or in several packs gets a run per stretch) and per pack
// one array of chunk offsets and a live bitmap, 1 bit per entry (docs/benchmarks.md "Memory of put -r and the
// service": 418 heap bytes per packed chunk when every chunk had its own entry, 109 with runs);
// a lookup that misses rescans for packs another process (a replica on a shared filesystem) wrote since, at most
// once per MISS_RESCAN_MS however many misses arrive (a client asking for absent chunks cannot make the service
// list the packs/ directories in a loop). A chunk file (v1) is looked for before any rescan (./index.ts).
// Deleting packed chunks marks them dead, in memory and in the pack's mark file (./pack-marks.ts, read with the
// pack's index, so a deletion holds across restarts); a pack goes once none of its chunks is alive (no repacking).
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
import { writevAll } from './write-all.js';
import { MARKS_SUFFIX, PackMarks, encodePackMarks, isDead, type DeadBitmap } from './pack-marks.js';

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
  /** Bit i (byte i >> 3, mask 1 << (i & 7)) set = entry i is live here (1 bit per packed chunk). */
  bits: Uint8Array;
  /** Entries that are copies of a chunk live in another pack (rare: a retried putPack), kept while it lives. */
  shadowed?: Set<number>;
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

const hasBit = (bits: Uint8Array, i: number): boolean => ((bits[i >> 3] as number) & (1 << (i & 7))) !== 0;
const setBit = (bits: Uint8Array, i: number): void => void (bits[i >> 3] = (bits[i >> 3] as number) | (1 << (i & 7)));
const clearBit = (bits: Uint8Array, i: number): void => void (bits[i >> 3] = (bits[i >> 3] as number) & ~(1 << (i & 7)));

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
  /** Chunks held by more than one pack (a retried putPack): key → the copies kept beside the live one. */
  readonly #shadowed = new Map<string, { pack: PackInfo; pos: number }[]>();
  /** deferSync only: packs whose mark file is behind memory until flushMarks(). */
  readonly #dirtyMarks = new Set<string>();
  #scan: Promise<void> | null = null;
  #nextScan: Promise<void> | null = null;
  /** The next rescan on behalf of misses, not yet begun: misses arriving before it begins share it. */
  #missScan: Promise<void> | null = null;
  #missScanStarted = -Infinity;
  #scans = 0;

  /** Read-only handles on packs, kept between reads (pack-handles.ts); a removed pack's is dropped. */
  readonly handles: PackHandles;
  /** The packs' dead marks (pack-marks.ts). */
  readonly marks: PackMarks;

  constructor(private readonly layout: FsLayout, private readonly io: LimitFunction) {
    this.handles = new PackHandles(io);
    this.marks = new PackMarks(layout, io);
  }

  get dir(): string {
    return join(this.layout.root, 'packs');
  }

  packPath(packId: string): string {
    return join(this.dir, packId.slice(0, 2), packId);
  }

  /** The chunk's location if it is packed (from memory; see locate for the rescan). */
  known(ref: ChunkRef): PackedLocation | undefined {
    for (const r of runsOf(this.#blobs.get(ref.blobId))) {
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
      const names = await this.#readdir(join(this.dir, a));
      const marked = new Set(names.filter((n) => n.endsWith(MARKS_SUFFIX)));
      for (const name of names) {
        if (!isPackId(name) || !name.startsWith(a) || this.#packs.has(name) || this.#gone.has(name)) continue;
        try {
          await this.#load(name, marked.has(`${name}${MARKS_SUFFIX}`));
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

  /** Reads and checks one pack's index (docs/format.md reader rules) and its dead marks, and adds its live chunks. */
  async #load(packId: string, hasMarks: boolean): Promise<void> {
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
      const dead = hasMarks ? await this.marks.read(path, packId, entries.length) : null;
      if (!this.#gone.has(packId) && !this.#packs.has(packId)) this.#add(packId, entries, st.mtimeMs, dead);
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return; // removed meanwhile
      if (e instanceof CofferError) throw e;
      throw fsError(e, `reading pack ${path}`, this.layout.root);
    } finally {
      await fh?.close().catch(() => undefined);
    }
  }

  #add(packId: string, entries: PackEntry[], mtimeMs: number, dead: DeadBitmap | null = null): void {
    const pack: PackInfo = { id: packId, starts: startsOf(entries), bits: new Uint8Array((entries.length + 7) >> 3), live: 0, mtimeMs };
    let run: Run | undefined; // the run the previous entry went to
    let runBlob = '';
    entries.forEach((e, pos) => {
      if (dead && isDead(dead, pos)) return; // marked dead in the pack's mark file
      if (this.known(e)) {
        // already in another pack (a retried putPack): the first one read wins; this copy is kept (not marked
        // dead) while that one lives, and dies with it (kill rewrites this pack's marks too)
        const key = keyOf(e.blobId, e.index);
        (pack.shadowed ??= new Set()).add(pos);
        const had = this.#shadowed.get(key);
        if (had) had.push({ pack, pos });
        else this.#shadowed.set(key, [{ pack, pos }]);
        return;
      }
      pack.live++;
      setBit(pack.bits, pos);
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
      // the chunks, the index and the trailer in one pwritev (write-all.ts), not one pwrite each
      await this.io(() => writevAll(h, [...chunks.map((c) => c.data), tail], 0));
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

  /**
   * Marks packed chunks dead (one index, or the whole blob), in memory and in the mark file of each pack that
   * keeps a live chunk (renamed into place before this resolves, not fsynced; deferSync: at flushMarks); removes
   * packs left with none alive (then their mark file). Idempotent.
   */
  async kill(blobId: string, index?: number): Promise<void> {
    const runs = runsOf(this.#blobs.get(blobId));
    if (runs.length === 0) return;
    const doomed = new Set<string>();
    const touched = new Set<PackInfo>();
    const kept: Run[] = [];
    const killAt = (r: Run, i: number): void => {
      clearBit(r.pack.bits, r.pos + i - r.first);
      r.pack.live--;
      const key = keyOf(blobId, i);
      for (const copy of this.#shadowed.get(key) ?? []) {
        copy.pack.shadowed?.delete(copy.pos); // the kept copy dies with the live one
        touched.add(copy.pack);
      }
      this.#shadowed.delete(key);
    };
    for (const r of runs) {
      if (index === undefined) {
        for (let i = r.first; i < r.first + r.count; i++) killAt(r, i);
      } else if (index >= r.first && index < r.first + r.count) {
        // the run splits around the dead chunk
        const before = index - r.first;
        const after = r.count - before - 1;
        if (before > 0) kept.push({ pack: r.pack, pos: r.pos, first: r.first, count: before });
        if (after > 0) kept.push({ pack: r.pack, pos: r.pos + before + 1, first: index + 1, count: after });
        killAt(r, index);
      } else {
        kept.push(r);
        continue;
      }
      touched.add(r.pack);
      if (r.pack.live === 0 && this.#packs.get(r.pack.id) === r.pack) doomed.add(r.pack.id);
    }
    const left = packed(kept);
    if (left === undefined) this.#blobs.delete(blobId);
    else this.#blobs.set(blobId, left);
    const marked = [...touched].filter((p) => !doomed.has(p.id) && this.#packs.get(p.id) === p).map((p) => p.id);
    // a bulk writer (deferSync: backup prune) writes each pack's marks once, at flush() or close(); others write
    // them now, without fsyncs (pack-marks.ts: a lost mark only makes a dead chunk garbage again)
    if (this.layout.deferSync) for (const p of marked) this.#dirtyMarks.add(p);
    else await Promise.all(marked.map((p) => this.#writeMarks(p)));
    await this.#remove(doomed);
  }

  /** Writes the mark files kills of a deferSync store left pending. */
  async flushMarks(): Promise<void> {
    const dirty = [...this.#dirtyMarks];
    this.#dirtyMarks.clear();
    await Promise.all(dirty.map((p) => this.#writeMarks(p)));
  }

  /** Persists which entries of a pack are dead: not live in it, nor a copy kept for a live one elsewhere. */
  #writeMarks(packId: string): Promise<void> {
    const path = this.packPath(packId);
    return this.marks.write(path, () => {
      const info = this.#packs.get(packId);
      if (!info) return null; // removed meanwhile
      const n = info.starts.length - 1;
      return encodePackMarks(packId, n, (i) => !hasBit(info.bits, i) && !(info.shadowed?.has(i) ?? false));
    });
  }

  /** Unlinks packs with no live chunk (then their mark files): memory first, so no read goes to them. */
  async #remove(doomed: Iterable<string>): Promise<void> {
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
      await this.marks.remove(path);
    }
  }

  /**
   * Removes temporary pack files, mark files without their pack, and packs with no live chunk, each older than
   * `cutoff` (epoch ms); returns how many.
   */
  async sweep(cutoff: number): Promise<number> {
    // packs read with no live chunk (every entry marked dead, or shadowed by a copy in another pack)
    const idle = [...this.#packs].filter(([, info]) => info.live === 0 && info.mtimeMs <= cutoff).map(([id]) => id);
    await this.#remove(idle);
    let removed = idle.length;
    for (const a of await this.#readdir(this.dir)) {
      if (!FANOUT.test(a)) continue;
      const dir = join(this.dir, a);
      const names = await this.#readdir(dir);
      const present = new Set(names);
      for (const name of names) {
        // a mark file whose pack is gone (a process stopped between unlinking the pack and its marks)
        const orphan = name.endsWith(MARKS_SUFFIX) && !present.has(name.slice(0, -MARKS_SUFFIX.length));
        if (!name.startsWith(TEMP_PREFIX) && !orphan) continue;
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
