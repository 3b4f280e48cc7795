// Pack dead marks v1 (docs/format.md "Pack dead marks v1"): which entries of a pack are dead (their chunks were
// deleted), kept beside the pack as `<root>/packs/<id hex[0:2]>/<id hex>.dead`, so a deletion survives a restart
// and a second prune or GC pass neither deletes nor counts it again. Packs are immutable; this small file is
// replaced whole (temp, rename; no fsyncs at all: losing it is safe, see below; a deferSync store's flush() syncs
// the filesystem after writing pending ones).
//
// Safety rule: a mark file can only make entries dead, so any doubt about one makes it count for nothing. A file
// that is torn, garbled, of another pack or of another entry count is IGNORED (every entry of the pack live; the
// dead ones are garbage again, which the next prune or GC deletes, rewriting the file): never an error that hides
// the pack's live chunks, never a live chunk read as dead. An I/O error other than ENOENT is thrown (INTERNAL).
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { LimitFunction } from 'p-limit';
import { CofferError, ErrorCode } from '../../src/errors.js';
import { PACK_MAX_ENTRIES } from '../pack-format.js';
import { errnoOf, fsError } from './errors.js';
import type { FsLayout } from './layout.js';

export const MARKS_MAGIC = Buffer.from('CFD1', 'ascii');
export const MARKS_VERSION = 1;
export const MARKS_HEADER_SIZE = 32;
export const MARKS_CHECKSUM_SIZE = 32;
/** The name's suffix after the pack id. */
export const MARKS_SUFFIX = '.dead';
/** Starts with packs.ts's temporary prefix, so sweepTemporary removes a temp left by a crash. */
const MARKS_TEMP_PREFIX = '.tmp-pack-dead-';
const FILE_MODE = 0o600;

/** Bytes of the bitmap for `n` entries. */
const bitmapSize = (n: number): number => Math.ceil(n / 8);

/** A dead-entry bitmap: bit i (byte i >> 3, mask 1 << (i & 7)) set = entry i dead. */
export type DeadBitmap = Uint8Array;

export function isDead(bitmap: DeadBitmap, i: number): boolean {
  return ((bitmap[i >> 3] ?? 0) & (1 << (i & 7))) !== 0;
}

function popcount(bitmap: DeadBitmap): number {
  let n = 0;
  for (let b of bitmap) {
    for (; b !== 0; b &= b - 1) n++;
  }
  return n;
}

/** The whole mark file for `packId` whose `n` entries have `dead(i)`. Throws INVALID_ARGUMENT for a bad id or n. */
export function encodePackMarks(packId: string, n: number, dead: (i: number) => boolean): Buffer {
  if (!/^[0-9a-f]{32}$/.test(packId)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `bad pack id "${packId}"`);
  if (!Number.isInteger(n) || n < 1 || n > PACK_MAX_ENTRIES) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `a pack holds 1..${PACK_MAX_ENTRIES} chunks`);
  const out = Buffer.alloc(MARKS_HEADER_SIZE + bitmapSize(n) + MARKS_CHECKSUM_SIZE);
  MARKS_MAGIC.copy(out, 0);
  out[4] = MARKS_VERSION;
  out.write(packId, 8, 16, 'hex');
  out.writeUInt32BE(n, 24);
  let count = 0;
  for (let i = 0; i < n; i++) {
    if (!dead(i)) continue;
    out[MARKS_HEADER_SIZE + (i >> 3)]! |= 1 << (i & 7);
    count++;
  }
  out.writeUInt32BE(count, 28);
  const body = out.length - MARKS_CHECKSUM_SIZE;
  createHash('sha256').update(out.subarray(0, body)).digest().copy(out, body);
  return out;
}

/**
 * The dead bitmap of a mark file read for `packId` with `n` entries, or a reason it is not one (docs/format.md
 * reader rules). Never throws.
 */
export function decodePackMarks(bytes: Buffer, packId: string, n: number): { bitmap: DeadBitmap } | { invalid: string } {
  const size = MARKS_HEADER_SIZE + bitmapSize(n) + MARKS_CHECKSUM_SIZE;
  if (bytes.length !== size) return { invalid: `${bytes.length} bytes, not ${size}` };
  const body = size - MARKS_CHECKSUM_SIZE;
  if (!createHash('sha256').update(bytes.subarray(0, body)).digest().equals(bytes.subarray(body))) return { invalid: 'checksum mismatch' };
  if (!bytes.subarray(0, 4).equals(MARKS_MAGIC) || bytes[4] !== MARKS_VERSION) return { invalid: 'bad magic or version' };
  if (bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) return { invalid: 'reserved bytes not zero' };
  if (bytes.toString('hex', 8, 24) !== packId) return { invalid: 'marks of another pack' };
  if (bytes.readUInt32BE(24) !== n) return { invalid: `entry count ${bytes.readUInt32BE(24)}, the pack has ${n}` };
  const bitmap = new Uint8Array(bytes.subarray(MARKS_HEADER_SIZE, body));
  if (n % 8 !== 0 && (bitmap[bitmap.length - 1]! >> (n % 8)) !== 0) return { invalid: 'bits set past the last entry' };
  if (popcount(bitmap) !== bytes.readUInt32BE(28)) return { invalid: 'dead count does not match the bitmap' };
  return { bitmap };
}

export const marksPath = (packPath: string): string => `${packPath}${MARKS_SUFFIX}`;

/**
 * Mark files of one store: reads them, and writes each pack's in order, a write computing its content when it
 * begins (so the last write carries every kill made before it; kills arriving while one waits share it).
 */
export class PackMarks {
  readonly #chains = new Map<string, Promise<void>>();
  readonly #pending = new Map<string, Promise<void>>();
  #ignored = 0;

  constructor(private readonly layout: FsLayout, private readonly io: LimitFunction) {}

  /** Mark files found invalid and ignored since open (for tests and fsck). */
  get ignored(): number {
    return this.#ignored;
  }

  /**
   * The dead bitmap of the pack at `packPath` (n entries), or null when it has no valid mark file (absent, or
   * invalid: ignored, see the file comment). Throws INTERNAL on an I/O error.
   */
  async read(packPath: string, packId: string, n: number): Promise<DeadBitmap | null> {
    const path = marksPath(packPath);
    let fh: FileHandle | undefined;
    try {
      fh = await this.io(() => open(path, constants.O_RDONLY | constants.O_NOFOLLOW));
      const h = fh;
      const st = await this.io(() => h.stat());
      // larger than any valid file: read no more than a valid one's size + 1, so it fails the size check
      const max = MARKS_HEADER_SIZE + bitmapSize(n) + MARKS_CHECKSUM_SIZE;
      const buf = Buffer.alloc(Math.min(st.size, max + 1));
      let done = 0;
      while (done < buf.length) {
        const at = done;
        const { bytesRead } = await this.io(() => h.read(buf, at, buf.length - at, at));
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      const r = st.isFile() ? decodePackMarks(buf.subarray(0, done), packId, n) : { invalid: 'not a regular file' };
      if ('bitmap' in r) return r.bitmap;
      this.#ignored++;
      return null;
    } catch (e) {
      const errno = errnoOf(e);
      if (errno === 'ENOENT') return null;
      if (errno === 'ELOOP') {
        this.#ignored++; // a symbolic link where the file should be: not followed, not trusted
        return null;
      }
      throw fsError(e, `reading pack marks ${path}`, this.layout.root);
    } finally {
      await fh?.close().catch(() => undefined);
    }
  }

  /**
   * Replaces the pack's mark file with `content()` (computed when this write begins; null: write nothing, the
   * pack is gone), renamed into place, not fsynced (see #replace). Writes of one pack run in call order.
   * Throws NO_SPACE, INTERNAL.
   */
  write(packPath: string, content: () => Buffer | null): Promise<void> {
    const pending = this.#pending.get(packPath);
    if (pending) return pending; // not begun yet: it will see this call's kills
    const run = this.#enqueue(packPath, async () => {
      this.#pending.delete(packPath);
      const bytes = content();
      if (bytes) await this.#replace(packPath, bytes);
    });
    this.#pending.set(packPath, run);
    return run;
  }

  /** Removes the pack's mark file (after the pack itself), behind any write of it in progress. Idempotent. */
  remove(packPath: string): Promise<void> {
    return this.#enqueue(packPath, async () => {
      const path = marksPath(packPath);
      await this.io(() => unlink(path)).catch((e: unknown) => {
        if (errnoOf(e) !== 'ENOENT') throw fsError(e, `removing pack marks ${path}`, this.layout.root);
      });
    });
  }

  #enqueue(packPath: string, op: () => Promise<void>): Promise<void> {
    const prev = this.#chains.get(packPath) ?? Promise.resolve();
    const run = prev.catch(() => undefined).then(op);
    const tail = run.catch(() => undefined);
    this.#chains.set(packPath, tail);
    void tail.then(() => {
      if (this.#chains.get(packPath) === tail) this.#chains.delete(packPath);
    });
    return run;
  }

  async #replace(packPath: string, bytes: Buffer): Promise<void> {
    const dir = dirname(packPath);
    const temp = join(dir, `${MARKS_TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
    const final = marksPath(packPath);
    let fh: FileHandle | undefined;
    let renamed = false;
    try {
      fh = await this.io(() => open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, FILE_MODE));
      const h = fh;
      await this.io(async () => {
        for (let done = 0; done < bytes.length; ) done += (await h.write(bytes, done, bytes.length - done, done)).bytesWritten;
      });
      // no fsync of the file nor of the directory, deferSync or not: a crash may leave the old file, none, or a
      // torn one, each read as "fewer dead" at worst (ignored: the dead chunks are garbage again), never a live
      // chunk dead; a process crash loses nothing. Two fsyncs per delete made vault GC of many small files pay an
      // fsync pair per file (docs/benchmarks.md "Pack dead marks, cost per delete")
      await this.io(() => h.close());
      fh = undefined;
      await this.io(() => rename(temp, final));
      renamed = true;
    } catch (e) {
      await fh?.close().catch(() => undefined);
      if (!renamed) await unlink(temp).catch(() => undefined);
      throw fsError(e, `writing pack marks ${final}`, this.layout.root);
    }
  }
}
