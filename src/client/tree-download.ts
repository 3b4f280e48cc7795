// `coffer get -r`: mirrors a vault directory locally with many files in flight. Files up to 1 MiB are asked
// for in batches (`POST /v1/fs/files/read`: many files' manifests, key records and sealed chunks in one streamed
// answer), a few batches at once; each file is authenticated as a single file is (small-file.ts openFileAnswer)
// and written to a temporary name and renamed into place (by default on placement worker threads, without fsync,
// place-workers.ts; with --fsync fsynced first, through fs/promises), so an interruption leaves every file whole
// or absent. Other one-chunk files come in one request each, larger
// ones one at a time through the chunked download. Each file gets the vault file's modification time, which is
// what a re-run compares (with the size) to skip it, from the listing alone (no request per file). Directory
// entries are made durable by one fsync per directory and batch (dir-sync.ts), not one per file.
import { lstat, mkdir, readdir, utimes } from 'node:fs/promises';
import path from 'node:path';
import { CofferError, ErrorCode, isCofferError } from '../errors.js';
import { Gate } from '../gate.js';
import { DirSyncer } from './dir-sync.js';
import { downloadFile } from './download.js';
import { MAX_BATCH_READ, type FileAnswer } from './file-batch.js';
import { localName } from './local-name.js';
import { sweepDeadPartials } from './partial-files.js';
import { partialPath } from './partial-files.js';
import { PlaceWorkers } from './place-workers.js';
import { sameBytes } from './same-bytes.js';
import { SMALL_FILE_MAX, fetchSmallFile, openFileAnswer, placeFile } from './small-file.js';
import {
  DEFAULT_TREE_CONCURRENCY, MEDIUM_FILES_IN_FLIGHT, SMALL_IN_FLIGHT_MAX, emptyResult, fail, isFileOnlyFailure, reasonOf,
  type TreeTransferOptions, type TreeTransferResult,
} from './tree-transfer.js';
import type { NodeInfo, VaultClient } from './vault-client.js';
import { YoungGarbagePacer } from '../young-garbage.js';

/** Files per batch read, and their plaintext bytes at most (a batch is cut at whichever comes first). */
export const BATCH_FILES = 128;
export const BATCH_BYTES = 4 * 1024 * 1024;
/** Batch reads in flight at once: one streams while the next is prepared by the service. */
export const BATCHES_IN_FLIGHT = 3;
/** Times a batch read cut by a transient failure is asked again for the files it had not answered yet. */
const BATCH_RETRIES = 3;

interface Entry {
  node: NodeInfo;
  dest: string;
  /** The destination's name was not in its directory when the walk read it (so no lstat was made for it). */
  absent: boolean;
}

/**
 * Up to this many entries, a destination directory's names are kept while its files are fetched, so a name not
 * among them needs no lstat (a fresh download: no system call per file before its write); a larger directory
 * is checked file by file, as before, so memory does not grow with a directory's size.
 */
export const KNOWN_NAMES_MAX = 50_000;

/**
 * Off-heap bytes of batch-read files (sealed answer + plaintext, counted twice the sealed size) between two
 * young-generation collections: 4 MiB, one every ≈ 128 files of 16 KiB. At the bulk paths' 32 MiB the files'
 * off-heap garbage (socket reads, the decipher's output, plaintext transferred to a worker and detached here)
 * outgrew V8's global limit, which then ran a full mark-compact every ≈ 500–800 files (11–24 per 10,000 files,
 * with concurrent marking on the other core); at 4 MiB 1–8 ran, user CPU fell ≈ 18 % and peak RSS ≈ 65 MiB
 * (docs/runtime.md, "get -r's full collections").
 */
export const BATCH_GARBAGE_INTERVAL = 4 * 1024 * 1024;

export async function downloadTree(client: VaultClient, vaultDir: string, localDir: string, options: TreeTransferOptions): Promise<TreeTransferResult> {
  const result = emptyResult();
  const writers = new Gate(Math.max(1, options.concurrency ?? DEFAULT_TREE_CONCURRENCY));
  const batches = new Gate(BATCHES_IN_FLIGHT);
  const medium = new Gate(MEDIUM_FILES_IN_FLIGHT);
  const large = new Gate(1);
  const dirs = new DirSyncer();
  // each batch-read file leaves off-heap garbage V8 would let pile up (src/young-garbage.ts): collected every
  // BATCH_GARBAGE_INTERVAL
  const youngGarbage = new YoungGarbagePacer(BATCH_GARBAGE_INTERVAL);
  const durable = options.fsync === true;
  // without fsync, files are placed by synchronous calls on a few worker threads (place-workers.ts)
  const placer = durable ? null : new PlaceWorkers();
  let found = 0;
  let foundBytes = 0;
  const tempFile = (p: string | null, last: { path: string | null }): void => {
    if (p) options.onTempFile?.(p, true);
    else if (last.path) options.onTempFile?.(last.path, false);
    last.path = p;
  };

  const fetchOne = async (node: NodeInfo, dest: string, replace: boolean): Promise<void> => {
    const mtime = new Date(node.modifiedAt);
    const last = { path: null as string | null };
    try {
      let size: number;
      const got = node.size <= SMALL_FILE_MAX ? await fetchSmallFile(client, node.path, options.keys) : null;
      if (got?.plaintext) {
        try {
          await placeFile(dest, got.plaintext, { overwrite: replace, mtime, syncDir: (d) => dirs.sync(d), fsync: durable, onTempFile: (p) => tempFile(p, last) });
        } finally {
          got.plaintext.fill(0);
        }
        size = got.plaintext.length;
        options.onProgress?.(size);
      } else {
        const r = await downloadFile(client, node.path, dest, {
          keys: options.keys, overwrite: replace, concurrency: options.chunkConcurrency ?? 4, sweepPartials: false,
          onProgress: (n) => options.onProgress?.(n), onTempFile: (p) => tempFile(p, last),
        });
        await utimes(dest, mtime, mtime);
        size = r.size;
      }
      done(node, size, replace);
    } catch (e) {
      await failed(node, dest, replace, e);
    }
  };

  const failed = async (node: NodeInfo, dest: string, replace: boolean, e: unknown, absent = false): Promise<void> => {
    // without replace, ALREADY_EXISTS from link(2) means a file appeared here meanwhile; the service's own
    // ALREADY_EXISTS is never taken for that (it has no say over what exists here: checked, not trusted)
    if (!replace && isCofferError(e, ErrorCode.ALREADY_EXISTS) && (await lstat(dest).then(() => true, () => false))) {
      // taken as absent from the directory's names, yet there: a name the filesystem folds (case, Unicode) or
      // one made since the walk read them; decided now as if lstat had found it at the start
      if (absent) {
        const state = await localState(node, dest);
        if (state) await fetchOne(node, dest, state.replace);
        return;
      }
      result.skipped++;
      options.onFile?.({ path: node.path, size: 0, action: 'skipped', reason: 'appeared locally meanwhile (use --force)' });
      return;
    }
    if (!isFileOnlyFailure(e)) throw e;
    fail(result, options, node.path, reasonOf(e));
  };

  const done = (node: NodeInfo, size: number, replace: boolean): void => {
    if (replace) result.updated++;
    else result.files++;
    result.bytes += size;
    options.onFile?.({ path: node.path, size, action: replace ? 'updated' : 'copied' });
  };

  /** What to do with a file found locally at `dest`: null to fetch it (and whether it replaces one), or skipped. */
  const localState = async (node: NodeInfo, dest: string): Promise<{ replace: boolean } | null> => {
    const st = await lstat(dest).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? null : Promise.reject(e)));
    if (st && !st.isFile()) {
      fail(result, options, node.path, `${dest} exists locally and is not a regular file; nothing is written through it`);
      return null;
    }
    if (st && !options.overwrite && (await sameLocally(client, dest, st, node, options))) {
      result.skipped++;
      options.onProgress?.(node.size);
      options.onFile?.({ path: node.path, size: node.size, action: 'skipped', reason: 'unchanged' });
      return null;
    }
    return { replace: st !== null };
  };

  /** Writes one file of a batch answer into place (or hands a file that is no longer one chunk to fetchOne). */
  const placeAnswer = async (e: Entry & { replace: boolean }, answer: FileAnswer): Promise<void> => {
    const last = { path: null as string | null };
    try {
      if (answer.error) throw answer.error;
      const got = await openFileAnswer(answer, e.node.path, options.keys);
      if (!got.plaintext) {
        await fetchOne(e.node, e.dest, e.replace); // it grew past one chunk since the listing
        return;
      }
      const mtime = new Date(e.node.modifiedAt);
      const size = got.plaintext.length;
      if (placer) {
        // handed to a worker (which zeroes it); the temporary name is known here first, for a signal handler
        const temp = partialPath(path.dirname(e.dest));
        tempFile(temp, last);
        try {
          await placer.place(temp, e.dest, got.plaintext, { overwrite: e.replace, mtime });
        } finally {
          tempFile(null, last);
        }
      } else {
        try {
          await placeFile(e.dest, got.plaintext, { overwrite: e.replace, mtime, syncDir: (d) => dirs.sync(d), fsync: true, onTempFile: (p) => tempFile(p, last) });
        } finally {
          got.plaintext.fill(0);
        }
      }
      options.onProgress?.(size);
      done(e.node, size, e.replace);
    } catch (err) {
      await failed(e.node, e.dest, e.replace, err, e.absent);
    }
  };

  /**
   * One batch: local checks first (skips cost no request), then one batch read for the rest, each answer
   * written as it arrives by the shared writers (so at most `concurrency` files are held). A read cut by a
   * transient failure is asked again for the files not yet answered.
   */
  const fetchBatch = async (entries: Entry[]): Promise<void> => {
    const states = await Promise.all(entries.map((e) => (e.absent ? { replace: false } : localState(e.node, e.dest))));
    let todo = entries.flatMap((e, i) => (states[i] ? [{ ...e, replace: (states[i] as { replace: boolean }).replace }] : []));
    const writes: Array<Promise<void>> = [];
    for (let attempt = 0; todo.length > 0; attempt++) {
      let answered = 0;
      try {
        for await (const answer of client.readFiles(todo.map((e) => e.node.path))) {
          const e = todo[answered++] as Entry & { replace: boolean };
          if (!answer.error && answer.sealed) youngGarbage.moved(2 * answer.sealed.length); // and its plaintext
          writes.push((await writers.submit(() => placeAnswer(e, answer))).done);
          if (writers.error !== undefined) return;
        }
        todo = [];
      } catch (err) {
        // a service from before the batch read answers the route itself with 404 (per-file NOT_FOUNDs are
        // records): fetch these files one request each, as before
        if (answered === 0 && isCofferError(err, ErrorCode.NOT_FOUND)) {
          for (const e of todo) writes.push((await writers.submit(() => fetchOne(e.node, e.dest, e.replace))).done);
          todo = [];
          continue;
        }
        if (!isCofferError(err) || !err.retryable || attempt >= BATCH_RETRIES) throw err;
        todo = todo.slice(answered);
      }
    }
    await Promise.all(writes);
  };

  const walk = async (remote: string, local: string, top: boolean): Promise<void> => {
    await mkdir(local, { recursive: true });
    // below the destination the user named, a symbolic link where a directory should be would lead the copy
    // somewhere else entirely: refused (the destination itself may be a link: the user chose it)
    if (!top && !(await lstat(local)).isDirectory()) {
      throw new CofferError(ErrorCode.ALREADY_EXISTS, `${local} is not a directory (a symbolic link?); nothing is written through it`);
    }
    const names = await readdir(local).catch(() => null);
    await sweepDeadPartials(local, names ?? undefined); // once per directory
    const known = names && names.length <= KNOWN_NAMES_MAX ? new Set(names) : null;
    for await (const node of client.listAll(remote)) {
      if (stopped()) return;
      const name = localName(node.name);
      const l = path.join(local, name);
      if (node.type === 'dir') {
        await walk(node.path, l, false);
        continue;
      }
      found++;
      foundBytes += node.size;
      options.onFound?.(found, foundBytes, false);
      if (node.size <= SMALL_IN_FLIGHT_MAX) {
        pending.push({ node, dest: l, absent: known !== null && !known.has(name) });
        pendingBytes += node.size;
        if (pending.length >= batchFiles || pendingBytes >= BATCH_BYTES) await flush();
        continue;
      }
      const gate = node.size <= SMALL_FILE_MAX ? medium : large;
      await gate.submit(async () => {
        const state = await localState(node, l);
        if (state) await fetchOne(node, l, state.replace);
      });
    }
  };

  let pending: Entry[] = [];
  let pendingBytes = 0;
  const batchFiles = Math.min(BATCH_FILES, MAX_BATCH_READ);
  const flush = async (): Promise<void> => {
    if (pending.length === 0) return;
    const batch = pending;
    pending = [];
    pendingBytes = 0;
    await batches.submit(() => fetchBatch(batch));
  };
  const gates = [writers, batches, medium, large];
  const stopped = (): boolean => gates.some((g) => g.error !== undefined);

  try {
    await walk(vaultDir, localDir, true);
    if (!stopped()) await flush();
    options.onFound?.(found, foundBytes, true);
  } finally {
    // batches first: their writes are submitted to the writers while they run
    await Promise.all([batches.drain(), medium.drain(), large.drain()]);
    await writers.drain();
    await placer?.close();
  }
  for (const g of gates) if (g.error !== undefined) throw g.error;
  return result;
}

/**
 * Whether the local file is the vault file: same size and exactly the vault file's modification time (what a
 * download sets; an edit changes it), or with `checksum` the same bytes.
 */
async function sameLocally(client: VaultClient, local: string, st: { size: number; mtimeMs: number }, node: NodeInfo, options: TreeTransferOptions): Promise<boolean> {
  if (st.size !== node.size) return false;
  if (!options.checksum) return Math.abs(st.mtimeMs - Date.parse(node.modifiedAt)) < 1; // ms: what the vault keeps
  return sameBytes(client, local, node, options.keys);
}
