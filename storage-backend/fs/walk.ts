// Walking the chunk tree of the filesystem store: every blob directory (for listBlobs) and every temporary
// file (for sweepTemporary). Only entries whose names match the layout are followed, and never symbolic
// links (Dirent types come from lstat semantics), so a foreign or planted entry is skipped, not obeyed.
import type { Dirent } from 'node:fs';
import { lstat, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { LimitFunction } from 'p-limit';
import { parseChunkName } from '../ref.js';
import { errnoOf, fsError } from './errors.js';
import { FsLayout } from './layout.js';

const FANOUT = /^[0-9a-f]{2}$/;
const BLOB_ID = /^[0-9a-f]{32}$/;
const DIRECT_IO_PROBE = /^\.direct-io-probe-[0-9a-f]{12}$/;

async function readDirOrEmpty(dir: string, io: LimitFunction, root: string): Promise<Dirent[]> {
  try {
    return await io(() => readdir(dir, { withFileTypes: true }));
  } catch (e) {
    const errno = errnoOf(e);
    if (errno === 'ENOENT' || errno === 'ENOTDIR') return []; // removed while we walked
    throw fsError(e, `listing ${dir}`, root);
  }
}

/** Every blob directory in the tree as [blobId, dir], fan-out levels checked against the blob id. */
export async function* blobDirs(layout: FsLayout, io: LimitFunction): AsyncGenerator<[string, string]> {
  for (const a of await readDirOrEmpty(layout.chunksDir, io, layout.root)) {
    if (!a.isDirectory() || !FANOUT.test(a.name)) continue;
    const aDir = join(layout.chunksDir, a.name);
    for (const b of await readDirOrEmpty(aDir, io, layout.root)) {
      if (!b.isDirectory() || !FANOUT.test(b.name)) continue;
      const bDir = join(aDir, b.name);
      for (const blob of await readDirOrEmpty(bDir, io, layout.root)) {
        if (!blob.isDirectory() || !BLOB_ID.test(blob.name) || !blob.name.startsWith(a.name + b.name)) continue;
        yield [blob.name, join(bDir, blob.name)];
      }
    }
  }
}

/** Indices of the chunk files in a blob directory, ascending (temp and foreign names ignored). */
export async function chunkIndices(dir: string, io: LimitFunction, root: string): Promise<number[]> {
  const indices: number[] = [];
  for (const entry of await readDirOrEmpty(dir, io, root)) {
    if (!entry.isFile()) continue;
    const index = parseChunkName(entry.name);
    if (index !== null) indices.push(index);
  }
  return indices.sort((x, y) => x - y);
}

/** Removes temporary files whose mtime is at least `olderThanMs` in the past; returns how many it removed. */
export async function sweepTemporaryFiles(layout: FsLayout, io: LimitFunction, olderThanMs: number): Promise<number> {
  const cutoff = Date.now() - olderThanMs;
  // the O_DIRECT probe's file, left in the chunk root by a crash during open (direct-io.ts), then the
  // temporary files of every blob directory (streamed: a store may hold millions of blobs)
  let removed = await sweepDir(layout, io, layout.chunksDir, (n) => DIRECT_IO_PROBE.test(n), cutoff);
  for await (const [, dir] of blobDirs(layout, io)) removed += await sweepDir(layout, io, dir, (n) => FsLayout.isTempName(n), cutoff);
  return removed;
}

async function sweepDir(layout: FsLayout, io: LimitFunction, dir: string, isTemporary: (name: string) => boolean, cutoff: number): Promise<number> {
  let removed = 0;
  for (const entry of await readDirOrEmpty(dir, io, layout.root)) {
    if (!entry.isFile() || !isTemporary(entry.name)) continue;
    const path = join(dir, entry.name);
    try {
      const st = await io(() => lstat(path));
      if (st.mtimeMs > cutoff) continue;
      await io(() => unlink(path));
      removed += 1;
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') continue; // its put finished or failed meanwhile
      throw fsError(e, `removing temporary file ${path}`, layout.root);
    }
  }
  return removed;
}
