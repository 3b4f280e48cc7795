// Writes a list of buffers at a position with as few system calls as the kernel allows: one FileHandle.writev
// (libuv: pwritev, IOV_MAX = 1024 buffers per call, looping inside one thread-pool request), continued from where
// it stopped should the kernel write less than asked (a short write is not an error). Used for packs: a pack of
// n chunks was n + 1 pwrite calls and thread-pool round trips; it is one request now.
import type { FileHandle } from 'node:fs/promises';

/** Writes every byte of `parts` back to back from `position`. Throws what writev throws (errno errors). */
export async function writevAll(fh: FileHandle, parts: readonly Uint8Array[], position: number): Promise<void> {
  let rest = parts.filter((p) => p.byteLength > 0);
  let pos = position;
  while (rest.length > 0) {
    const { bytesWritten } = await fh.writev(rest as Uint8Array[], pos);
    if (bytesWritten <= 0) throw Object.assign(new Error(`writev wrote ${bytesWritten} bytes`), { code: 'EIO' });
    pos += bytesWritten;
    // drop what was written: whole buffers, then the written head of the next one
    let skip = bytesWritten;
    let i = 0;
    while (i < rest.length && skip >= (rest[i] as Uint8Array).byteLength) skip -= (rest[i++] as Uint8Array).byteLength;
    rest = rest.slice(i);
    if (skip > 0) rest[0] = (rest[0] as Uint8Array).subarray(skip);
  }
}
