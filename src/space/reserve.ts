// A space reserve for the data directory: a file of N bytes (`space.reserve`, default 16 MiB,
// COFFER_SPACE_RESERVE) that the service keeps while the disk has room and deletes the moment a metadata write
// is refused for lack of space. Removing a file must work on a 100 % full disk — it is how space comes back —
// but the metadata write that records the removal, and GC's sync before it deletes chunk files, need a little
// space themselves; without the reserve, a full disk stayed full until someone deleted files outside Coffer.
// While the reserve is released, new chunk writes are refused below the reserve's size of free space
// (headroom-chunks.ts), so uploads cannot eat the room that removes and GC need; after a GC pass the reserve is
// made again once the disk has twice its size free. docs/storage-backend.md "Full disks".
import { randomBytes } from 'node:crypto';
import { open, rename, statfs, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { CofferError, ErrorCode } from '../errors.js';

export const RESERVE_FILE = 'space.reserve';
export const DEFAULT_RESERVE_BYTES = 16 * 1024 * 1024;

/** COFFER_SPACE_RESERVE: bytes, or with a k/m/g suffix; 0 turns the reserve off. Throws INVALID_ARGUMENT. */
export function spaceReserveBytes(value = process.env.COFFER_SPACE_RESERVE): number {
  if (value === undefined || value === '') return DEFAULT_RESERVE_BYTES;
  const m = /^(\d+)([kmg]?)$/i.exec(value.trim());
  if (!m) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `COFFER_SPACE_RESERVE must be a size like 16m, got "${value}"`);
  return Number(m[1]) * { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m[2] as string).toLowerCase() as '' | 'k' | 'm' | 'g'];
}

export class SpaceReserve {
  readonly file: string;
  #held: boolean;
  #releasing: Promise<boolean> | null = null;
  #ensuring: Promise<void> | null = null;

  private constructor(readonly dir: string, readonly bytes: number, held: boolean, private readonly log: (message: string) => void) {
    this.file = path.join(dir, RESERVE_FILE);
    this.#held = held;
  }

  /** The reserve of `dir` as it is on disk (nothing is written). */
  static async open(dir: string, bytes: number, log: (message: string) => void = () => undefined): Promise<SpaceReserve> {
    const st = await stat(path.join(dir, RESERVE_FILE)).catch(() => null);
    return new SpaceReserve(dir, bytes, bytes > 0 && st !== null && st.size >= bytes, log);
  }

  /** True while the reserve file stands (space is held back for removes and GC). */
  get held(): boolean {
    return this.#held;
  }

  /** Bytes an unprivileged writer may still use on the data directory's filesystem. */
  async free(): Promise<number> {
    const s = await statfs(this.dir);
    return s.bavail * s.bsize;
  }

  /**
   * Deletes the reserve file, giving its space to the writes that need it; true when this freed space (false:
   * nothing was held). Concurrent callers share one deletion.
   */
  release(): Promise<boolean> {
    if (!this.#held) return this.#releasing ?? Promise.resolve(false);
    this.#held = false;
    this.#releasing = unlink(this.file).then(
      () => {
        this.log(`the disk is full: released the ${this.bytes}-byte space reserve so that removes and garbage collection can work; new chunks are refused until space comes back`);
        return true;
      },
      (e: NodeJS.ErrnoException) => e.code === 'ENOENT' ? false : Promise.reject(e),
    ).finally(() => {
      this.#releasing = null;
    });
    return this.#releasing;
  }

  /**
   * Makes the reserve file when it is missing and the disk has twice its size free (so making it never fills
   * the disk). Written to a temporary name, fsynced and renamed; a failure leaves no partial file. Never throws.
   */
  ensure(): Promise<void> {
    if (this.#held || this.bytes === 0) return Promise.resolve();
    this.#ensuring ??= this.#make().finally(() => {
      this.#ensuring = null;
    });
    return this.#ensuring;
  }

  async #make(): Promise<void> {
    const temp = `${this.file}.tmp-${randomBytes(4).toString('hex')}`;
    try {
      if ((await this.free()) < 2 * this.bytes) return;
      const fh = await open(temp, 'wx', 0o600);
      try {
        const zeros = Buffer.alloc(Math.min(this.bytes, 1024 * 1024));
        for (let written = 0; written < this.bytes; written += zeros.length) {
          await fh.write(zeros, 0, Math.min(zeros.length, this.bytes - written));
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(temp, this.file);
      this.#held = true;
    } catch {
      await unlink(temp).catch(() => undefined); // no room after all, or the directory went away: try again later
    }
  }
}
