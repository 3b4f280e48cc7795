// Pack files of the filesystem store (docs/format.md "Pack file v2"): many small sealed chunks in one file under
//   <root>/packs/<id hex[0:2]>/<id hex>
// written once (temp, one fsync, rename, one directory fsync; none with deferSync, whose writer calls flush()) and
// never changed. Where each packed chunk lives
// is kept in memory, built at open from every pack's own index and trailer and extended by every pack written;
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
  entries: PackEntry[];
  live: number;
  mtimeMs: number;
}

const keyOf = (blobId: string, index: number): string => `${blobId}/${index}`;

export class FsPacks {
  readonly #where = new Map<string, PackedLocation>();
  readonly #byBlob = new Map<string, Set<number>>();
  readonly #packs = new Map<string, PackInfo>();
  readonly #gone = new Set<string>();
  readonly #durableDirs = new Set<string>();
  /** Chunks held by more than one pack (a retried putPack): key → the packs whose copy is shadowed. */
  readonly #shadowed = new Map<string, string[]>();
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
    return this.#where.get(keyOf(ref.blobId, ref.index));
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
    let live = 0;
    for (const [i, e] of entries.entries()) {
      if (dead && isDead(dead, i)) continue;
      const key = keyOf(e.blobId, e.index);
      if (this.#where.has(key)) {
        // already in another pack (a retried putPack): the first one read wins; this copy dies with it
        this.#shadowed.set(key, [...(this.#shadowed.get(key) ?? []), packId]);
        continue;
      }
      this.#where.set(key, { packId, offset: e.offset, length: e.length });
      let set = this.#byBlob.get(e.blobId);
      if (!set) this.#byBlob.set(e.blobId, (set = new Set()));
      set.add(e.index);
      live++;
    }
    this.#packs.set(packId, { entries, live, mtimeMs });
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
    return [...(this.#byBlob.get(blobId) ?? [])].sort((x, y) => x - y);
  }

  /** Blob ids with a live packed chunk in a pack last modified at least `settledMs` ago. */
  blobs(settledMs = 0): string[] {
    const cutoff = Date.now() - settledMs;
    const out = new Set<string>();
    for (const [blobId, set] of this.#byBlob) {
      for (const index of set) {
        const at = this.#where.get(keyOf(blobId, index));
        const info = at && this.#packs.get(at.packId);
        if (info && info.mtimeMs <= cutoff) {
          out.add(blobId);
          break;
        }
      }
    }
    return [...out];
  }

  /**
   * Marks packed chunks dead (one index, or the whole blob), in memory and durably in the mark file of each pack
   * that keeps a live chunk; removes packs left with none alive (then their mark file). Idempotent.
   */
  async kill(blobId: string, index?: number): Promise<void> {
    const set = this.#byBlob.get(blobId);
    if (!set) return;
    const doomed = new Set<string>();
    const touched = new Set<string>();
    for (const i of index === undefined ? [...set] : set.has(index) ? [index] : []) {
      const key = keyOf(blobId, i);
      const at = this.#where.get(key);
      this.#where.delete(key);
      set.delete(i);
      for (const other of this.#shadowed.get(key) ?? []) touched.add(other);
      this.#shadowed.delete(key);
      const info = at && this.#packs.get(at.packId);
      if (info) touched.add(at.packId);
      if (info && --info.live === 0) doomed.add(at.packId);
    }
    if (set.size === 0) this.#byBlob.delete(blobId);
    const marked = [...touched].filter((p) => !doomed.has(p));
    // a bulk writer (deferSync: backup prune) writes each pack's marks once, at flush() or close()
    if (this.layout.deferSync) for (const p of marked) this.#dirtyMarks.add(p);
    else await Promise.all(marked.map((p) => this.#writeMarks(p)));
    await this.#remove(doomed);
  }

  /** Writes the mark files kills of a deferSync store left pending (without fsync: flush() syncs after). */
  async flushMarks(): Promise<void> {
    const dirty = [...this.#dirtyMarks];
    this.#dirtyMarks.clear();
    await Promise.all(dirty.map((p) => this.#writeMarks(p)));
  }

  /** Persists which entries of a pack are dead: not located in it, nor a copy shadowed by a live one elsewhere. */
  #writeMarks(packId: string): Promise<void> {
    const path = this.packPath(packId);
    return this.marks.write(path, () => {
      const info = this.#packs.get(packId);
      if (!info) return null; // removed meanwhile
      const dead = (i: number): boolean => {
        const e = info.entries[i] as PackEntry;
        const key = keyOf(e.blobId, e.index);
        return this.#where.get(key)?.packId !== packId && !(this.#shadowed.get(key)?.includes(packId) ?? false);
      };
      return encodePackMarks(packId, info.entries.length, dead);
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
