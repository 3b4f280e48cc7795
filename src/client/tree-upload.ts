// `coffer put -r`: walks a local tree (one directory at a time, so memory stays flat whatever its size) and
// uploads its regular files with many in flight. Files up to 1 MiB are read and sealed with many in flight and
// sent BATCH_FILES to a request (file-batcher.ts: one pack, one metadata round each at the service); other
// one-chunk files go in one request each (small-file.ts); larger ones go one at a time through the chunked,
// resumable upload. Each vault directory is listed once, which
// is what the skip decisions of a re-run read. Symbolic links and special files are never followed.
import type { BigIntStats } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCode, isCofferError } from '../errors.js';
import { Gate } from '../gate.js';
import { checkName } from '../vault/paths.js';
import { BufferPool } from '../buffer-pool.js';
import { sealedSize } from '../crypto/index.js';
import { sameBytes } from './same-bytes.js';
import { FileBatcher } from './file-batcher.js';
import { SMALL_FILE_MAX, prepareSmallFile, uploadSmallFile } from './small-file.js';
import { SmallFileReader } from './small-file-read.js';
import {
  DEFAULT_TREE_CONCURRENCY, MEDIUM_FILES_IN_FLIGHT, SMALL_IN_FLIGHT_MAX, emptyResult, fail, isFileOnlyFailure, reasonOf, vaultJoin,
  type TreeTransferOptions, type TreeTransferResult,
} from './tree-transfer.js';
import { uploadFile } from './upload.js';
import type { NodeInfo, VaultClient } from './vault-client.js';

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Uploads every regular file under `localDir` into `vaultDir` (created with parents). A file already in the
 * vault is skipped when it is the same file: same size and not modified locally since the vault copy was
 * committed (or, with `checksum`, the same bytes); otherwise it is sent again and replaces the vault copy.
 * `overwrite` sends everything. Throws the first failure that is not one file's own (those are in `failed`).
 */
export async function uploadTree(client: VaultClient, localDir: string, vaultDir: string, options: TreeTransferOptions): Promise<TreeTransferResult> {
  const result = emptyResult();
  const small = new Gate(Math.max(1, options.concurrency ?? DEFAULT_TREE_CONCURRENCY));
  const medium = new Gate(MEDIUM_FILES_IN_FLIGHT); // one-chunk files over 1 MiB: held whole while in flight
  const large = new Gate(1); // each already keeps `chunkConcurrency` chunks in flight
  let found = 0;
  let foundBytes = 0;
  const root = vaultDir.replace(/\/+$/, '') || '/';
  await client.mkdir(root, true);

  const batcher = new FileBatcher(client, options.batchFiles);
  // lstat and small-file reads made synchronously while the disk answers them fast (small-file-read.ts), into
  // buffers reused from file to file, as the sealed chunks are until the batcher copied them
  const inFlight = Math.max(1, options.concurrency ?? DEFAULT_TREE_CONCURRENCY);
  const reader = new SmallFileReader({ buffers: new BufferPool(SMALL_IN_FLIGHT_MAX, inFlight) });
  const sealedBuffers = new BufferPool(sealedSize(SMALL_IN_FLIGHT_MAX), inFlight);

  const sent = (remote: string, size: number, overwrite: boolean): void => {
    if (overwrite) result.updated++;
    else result.files++;
    result.bytes += size;
    options.onFile?.({ path: remote, size, action: overwrite ? 'updated' : 'copied' });
  };

  /** A file that was not sent: skipped (appeared meanwhile), reported (its own failure), or the run stops. */
  const notSent = (remote: string, e: unknown): void => {
    if (isCofferError(e, ErrorCode.ALREADY_EXISTS)) {
      // appeared since the listing (another put): someone else's file is not replaced without --force
      result.skipped++;
      options.onFile?.({ path: remote, size: 0, action: 'skipped', reason: 'appeared in the vault meanwhile (use --force)' });
      return;
    }
    if (!isFileOnlyFailure(e)) throw e;
    fail(result, options, remote, reasonOf(e));
  };

  const send = async (local: string, remote: string, size: number, existing: NodeInfo | undefined, expected: BigIntStats): Promise<void> => {
    const overwrite = existing !== undefined;
    try {
      if (size <= SMALL_IN_FLIGHT_MAX) {
        // read and sealed now; sent with up to BATCH_FILES others in one request (file-batcher.ts)
        const prepared = await prepareSmallFile(client, local, { path: remote, keys: options.keys, overwrite, expected, reader, sealedBuffers });
        await batcher.add({
          prepared,
          settle: (outcome) => {
            if ('error' in outcome) {
              notSent(remote, outcome.error); // a failure that is not the file's own stops the run (the batch's gate keeps it)
              return;
            }
            options.onProgress?.(size);
            sent(remote, prepared.request.size, overwrite);
          },
        });
        return;
      }
      const up = size <= SMALL_FILE_MAX
        ? await uploadSmallFile(client, local, { path: remote, keys: options.keys, overwrite })
        : await uploadFile(client, local, {
          path: remote, keys: options.keys, overwrite, concurrency: options.chunkConcurrency ?? 4, journal: options.journalFor?.(remote, local),
          onProgress: (n) => options.onProgress?.(n),
        });
      if (size <= SMALL_FILE_MAX) options.onProgress?.(up.size);
      sent(remote, up.size, overwrite);
    } catch (e) {
      notSent(remote, e);
    }
  };

  const walk = async (local: string, remote: string): Promise<void> => {
    const remoteEntries = new Map<string, NodeInfo>();
    for await (const n of client.listAll(remote)) remoteEntries.set(n.name, n);
    const entries = (await readdir(local, { withFileTypes: true, encoding: 'buffer' }))
      .sort((a, b) => Buffer.compare(a.name, b.name));
    for (const e of entries) {
      if (small.error !== undefined || medium.error !== undefined || large.error !== undefined || batcher.error !== undefined) return;
      const name = nameOf(e.name);
      const localPath = path.join(local, name.ok ? name.name : e.name.toString('latin1'));
      if (!name.ok) {
        if (e.isFile() || e.isDirectory()) fail(result, options, localPath, name.reason);
        else result.ignored++;
        continue;
      }
      const r = vaultJoin(remote, name.name);
      if (e.isDirectory()) {
        const there = remoteEntries.get(name.name);
        if (there && there.type !== 'dir') {
          fail(result, options, localPath, `${r} is a file in the vault, not a directory`);
          continue;
        }
        if (!there) await client.mkdir(r, true);
        await walk(localPath, r);
        continue;
      }
      if (!e.isFile()) {
        result.ignored++;
        options.onFile?.({ path: localPath, size: 0, action: 'skipped', reason: e.isSymbolicLink() ? 'symbolic link' : 'not a regular file' });
        continue;
      }
      let st;
      let big: BigIntStats;
      try {
        big = await reader.lstat(localPath); // also the small file's identity before it is read
        st = { size: Number(big.size), mtimeMs: Number(big.mtimeNs) / 1e6 };
      } catch (err) {
        if (!isFileOnlyFailure(err)) throw err;
        fail(result, options, localPath, reasonOf(err));
        continue;
      }
      found++;
      foundBytes += st.size;
      options.onFound?.(found, foundBytes, false);
      const existing = remoteEntries.get(name.name);
      if (existing?.type === 'dir') {
        fail(result, options, localPath, `${r} is a directory in the vault`);
        continue;
      }
      const gate = st.size <= SMALL_IN_FLIGHT_MAX ? small : st.size <= SMALL_FILE_MAX ? medium : large;
      await gate.submit(async () => {
        if (existing && !options.overwrite && (await sameInVault(client, localPath, st, existing, options))) {
          result.skipped++;
          options.onProgress?.(st.size);
          options.onFile?.({ path: r, size: st.size, action: 'skipped', reason: 'unchanged' });
          return;
        }
        await send(localPath, r, st.size, existing, big);
      });
    }
  };

  try {
    await walk(localDir, root);
    options.onFound?.(found, foundBytes, true);
  } finally {
    await Promise.all([small.drain(), medium.drain(), large.drain()]);
  }
  for (const g of [small, medium, large]) {
    if (g.error !== undefined) {
      await batcher.drain();
      throw g.error;
    }
  }
  await batcher.finish(); // the last, partial batch; throws a whole batch's failure (or one a file's answer raised)
  return result;
}

/** A directory entry's name as a vault name, or why it cannot be one (not UTF-8, a control character…). */
function nameOf(raw: Buffer): { ok: true; name: string } | { ok: false; reason: string } {
  let name: string;
  try {
    name = STRICT_UTF8.decode(raw);
  } catch {
    return { ok: false, reason: 'the name is not valid UTF-8, so it cannot be a vault name' };
  }
  try {
    checkName(name);
  } catch (e) {
    if (!isCofferError(e, ErrorCode.INVALID_PATH)) throw e;
    return { ok: false, reason: `the name cannot be a vault name: ${e.message}` };
  }
  return { ok: true, name };
}

/**
 * Whether the vault file is the same as the local one. By default: same size, and the local file was last
 * modified no later than the vault copy was committed (its `modifiedAt`), i.e. nothing changed it since it was
 * sent. With `checksum`: the same bytes (the vault copy is fetched, authenticated and hashed).
 */
async function sameInVault(
  client: VaultClient, local: string, st: { size: number; mtimeMs: number }, node: NodeInfo, options: TreeTransferOptions,
): Promise<boolean> {
  if (node.type !== 'file' || node.size !== st.size) return false;
  if (!options.checksum) return st.mtimeMs <= Date.parse(node.modifiedAt);
  return sameBytes(client, local, node, options.keys);
}
