// `coffer get -r`: mirrors a vault directory locally with many files in flight. One-chunk files come in one
// request each (small-file.ts) and are renamed into place once authenticated; larger ones go one at a time
// through the chunked download. Each file gets the vault file's modification time, which is what a re-run
// compares (with the size) to skip it. Directory entries are made durable by one fsync per directory and batch
// (dir-sync.ts), not one per file.
import { lstat, mkdir, utimes } from 'node:fs/promises';
import path from 'node:path';
import { CofferError, ErrorCode, isCofferError } from '../errors.js';
import { Gate } from '../gate.js';
import { DirSyncer } from './dir-sync.js';
import { downloadFile } from './download.js';
import { localName } from './local-name.js';
import { sweepDeadPartials } from './partial-files.js';
import { sameBytes } from './same-bytes.js';
import { SMALL_FILE_MAX, fetchSmallFile, placeFile } from './small-file.js';
import {
  DEFAULT_TREE_CONCURRENCY, MEDIUM_FILES_IN_FLIGHT, SMALL_IN_FLIGHT_MAX, emptyResult, fail, isFileOnlyFailure, reasonOf,
  type TreeTransferOptions, type TreeTransferResult,
} from './tree-transfer.js';
import type { NodeInfo, VaultClient } from './vault-client.js';

/**
 * Downloads every file under `vaultDir` into `localDir` (created as needed). A local file is skipped when it is
 * the same file: same size and the vault file's modification time (which a download sets), or with `checksum`
 * the same bytes; otherwise it is fetched again and replaced. `overwrite` fetches everything. A local directory
 * or link where a file should go is reported, never written through. Throws the first failure that is not one
 * file's own.
 */
export async function downloadTree(client: VaultClient, vaultDir: string, localDir: string, options: TreeTransferOptions): Promise<TreeTransferResult> {
  const result = emptyResult();
  const small = new Gate(Math.max(1, options.concurrency ?? DEFAULT_TREE_CONCURRENCY));
  const medium = new Gate(MEDIUM_FILES_IN_FLIGHT);
  const large = new Gate(1);
  const dirs = new DirSyncer();
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
          await placeFile(dest, got.plaintext, { overwrite: replace, mtime, syncDir: (d) => dirs.sync(d), onTempFile: (p) => tempFile(p, last) });
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
      if (replace) result.updated++;
      else result.files++;
      result.bytes += size;
      options.onFile?.({ path: node.path, size, action: replace ? 'updated' : 'copied' });
    } catch (e) {
      // without replace, ALREADY_EXISTS from link(2) means a file appeared here meanwhile; the service's own
      // ALREADY_EXISTS is never taken for that (it has no say over what exists here: checked, not trusted)
      if (!replace && isCofferError(e, ErrorCode.ALREADY_EXISTS) && (await lstat(dest).then(() => true, () => false))) {
        result.skipped++;
        options.onFile?.({ path: node.path, size: 0, action: 'skipped', reason: 'appeared locally meanwhile (use --force)' });
        return;
      }
      if (!isFileOnlyFailure(e)) throw e;
      fail(result, options, node.path, reasonOf(e));
    }
  };

  const walk = async (remote: string, local: string, top: boolean): Promise<void> => {
    await mkdir(local, { recursive: true });
    // below the destination the user named, a symbolic link where a directory should be would lead the copy
    // somewhere else entirely: refused (the destination itself may be a link: the user chose it)
    if (!top && !(await lstat(local)).isDirectory()) {
      throw new CofferError(ErrorCode.ALREADY_EXISTS, `${local} is not a directory (a symbolic link?); nothing is written through it`);
    }
    await sweepDeadPartials(local); // once per directory
    for await (const node of client.listAll(remote)) {
      if (small.error !== undefined || medium.error !== undefined || large.error !== undefined) return;
      const l = path.join(local, localName(node.name));
      if (node.type === 'dir') {
        await walk(node.path, l, false);
        continue;
      }
      found++;
      foundBytes += node.size;
      options.onFound?.(found, foundBytes, false);
      const gate = node.size <= SMALL_IN_FLIGHT_MAX ? small : node.size <= SMALL_FILE_MAX ? medium : large;
      await gate.submit(async () => {
        const st = await lstat(l).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? null : Promise.reject(e)));
        if (st && !st.isFile()) {
          fail(result, options, node.path, `${l} exists locally and is not a regular file; nothing is written through it`);
          return;
        }
        if (st && !options.overwrite && (await sameLocally(client, l, st, node, options))) {
          result.skipped++;
          options.onProgress?.(node.size);
          options.onFile?.({ path: node.path, size: node.size, action: 'skipped', reason: 'unchanged' });
          return;
        }
        await fetchOne(node, l, st !== null);
      });
    }
  };

  try {
    await walk(vaultDir, localDir, true);
    options.onFound?.(found, foundBytes, true);
  } finally {
    await Promise.all([small.drain(), medium.drain(), large.drain()]);
  }
  for (const g of [small, medium, large]) if (g.error !== undefined) throw g.error;
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
