// The file a download writes: chunks at their offsets, in any order, then cut to the exact size and fsynced.
// Written with O_DIRECT where the filesystem takes it, for the reason the chunk store does
// (storage-backend/fs/direct-io.ts): a 200 GB download should neither evict everything else from the page
// cache nor pay for a freshly zeroed page per 4 KiB. The download hands in views of aligned buffers
// (alignedAllocator) with room for a whole last block; the padding is zeroed, written, and cut off at the end.
// A filesystem or a buffer that O_DIRECT refuses (EINVAL) switches the file to ordinary writes, for good.
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { O_DIRECT, alignUp } from '../buffer-pool.js';

export class OutputFile {
  private constructor(
    private readonly path: string,
    private handle: FileHandle,
    private direct: boolean,
  ) {}

  /** Creates `path` exclusively (mode 0600). Throws as fs.open (EEXIST when it exists). */
  static async create(path: string): Promise<OutputFile> {
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
    if (O_DIRECT !== 0) {
      const direct = await open(path, flags | O_DIRECT, 0o600).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'EINVAL' || e.code === 'EOPNOTSUPP' || e.code === 'ENOTSUP') return null;
        throw e;
      });
      if (direct) return new OutputFile(path, direct, true);
    }
    return new OutputFile(path, await open(path, flags, 0o600), false);
  }

  /** Whether writes currently bypass the page cache. */
  get isDirect(): boolean {
    return this.direct;
  }

  /** Writes `data` at `position`. Only the file's last piece may have a length that is not a multiple of 4 KiB. */
  async write(data: Uint8Array, position: number): Promise<void> {
    if (this.direct) {
      const padded = alignUp(data.length);
      if (data.byteOffset + padded <= data.buffer.byteLength) {
        const view = Buffer.from(data.buffer, data.byteOffset, padded);
        view.fill(0, data.length);
        try {
          await writeAll(this.handle, view, position);
          return;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
        }
      }
      await this.useBufferedWrites();
    }
    await writeAll(this.handle, data, position);
  }

  /** Flushes what was written so far to the device (no metadata). */
  datasync(): Promise<void> {
    return this.handle.datasync();
  }

  /** Cuts the file to `size` (removing any padding of the last block) and fsyncs it. */
  async finish(size: number): Promise<void> {
    await this.handle.truncate(size);
    await this.handle.sync();
  }

  close(): Promise<void> {
    return this.handle.close();
  }

  private async useBufferedWrites(): Promise<void> {
    const buffered = await open(this.path, constants.O_WRONLY | constants.O_NOFOLLOW);
    await this.handle.close().catch(() => undefined);
    this.handle = buffered;
    this.direct = false;
  }
}

async function writeAll(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    if (bytesWritten <= 0) throw new Error('write(2) made no progress');
    done += bytesWritten;
  }
}
