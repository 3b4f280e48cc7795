// O_DIRECT chunk writes. A sealed chunk is written once, fsynced, and not read again soon (downloads come
// later, backups much later), so copying it through the page cache only costs: the kernel must find and zero a
// fresh page for every 4 KiB written. On the 2-core VMs we measure on, that page allocation is the most
// expensive part of an upload (`dd` of 1 GiB to a new file: 266–447 MB/s buffered, 954–1,300 MB/s with
// oflag=direct; docs/benchmarks.md). With O_DIRECT the disk reads the bytes straight from a reused,
// 4 KiB-aligned buffer. The rules O_DIRECT imposes, and how write-chunk.ts meets them:
//   - buffer address, length and file offset aligned: buffers come from alignedAllocator, every write is a
//     whole buffer at a multiple of its size, the last one padded with zeros to 4 KiB;
//   - the padding is cut off with ftruncate before the fsync, so the file holds exactly the chunk's bytes.
// Filesystems that refuse O_DIRECT (some FUSE and network filesystems) are detected once, at open, by a probe
// write; the store then writes through the page cache as before. fsync is issued either way: O_DIRECT skips
// the page cache, not the device's write cache or the file's metadata.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { BufferPool, DIRECT_IO_ALIGNMENT, O_DIRECT, alignedAllocator } from '../../src/buffer-pool.js';

/** Size of each O_DIRECT write: a multiple of DIRECT_IO_ALIGNMENT. */
export const DIRECT_WRITE_BYTES = 1024 * 1024;

/** Aligned write buffers shared by every direct-I/O store of the process, carved 16 to a slab; in shared memory, so
 * write-chunk.ts hashes them on a worker thread in place. */
export const directWriteBuffers = new BufferPool(DIRECT_WRITE_BYTES, 32, alignedAllocator(DIRECT_WRITE_BYTES, 16, { shared: true }));

/**
 * Whether files in `dir` can be written with O_DIRECT: creates a probe file with O_DIRECT, writes one aligned
 * block and removes it. Refusals (EINVAL, EOPNOTSUPP…) mean no; any other failure is left for the real writes
 * to report, and also means no.
 */
export async function probeDirectIo(dir: string): Promise<boolean> {
  if (O_DIRECT === 0) return false;
  const probe = join(dir, `.direct-io-probe-${randomBytes(6).toString('hex')}`);
  let fh;
  try {
    fh = await open(probe, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | O_DIRECT, 0o600);
    const buf = directWriteBuffers.acquire();
    try {
      buf.fill(0, 0, DIRECT_IO_ALIGNMENT);
      await fh.write(buf, 0, DIRECT_IO_ALIGNMENT, 0);
    } finally {
      directWriteBuffers.release(buf);
    }
    return true;
  } catch {
    return false;
  } finally {
    await fh?.close().catch(() => undefined);
    await unlink(probe).catch(() => undefined);
  }
}
