// Whole directories: `coffer put -r` walks a local tree and uploads every regular file (one at a time, each
// streamed and committed on its own, so an interruption leaves every finished file in place); `coffer get -r`
// mirrors a vault directory locally, each file verified and renamed into place on its own. Symbolic links
// and special files are skipped and reported, never followed out of the tree.
import { lstat, mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { CofferError, ErrorCode, isCofferError } from '../errors.js';
import { downloadFile } from './download.js';
import { sweepDeadPartials } from './partial-files.js';
import type { DataKeyProvider } from './data-keys.js';
import { uploadFile } from './upload.js';
import type { UploadRecord } from './upload-journal.js';
import type { VaultClient } from './vault-client.js';
import { localName } from './local-name.js';

export interface TreeTransferOptions {
  keys: DataKeyProvider;
  overwrite?: boolean;
  concurrency?: number;
  onFile?: (event: { path: string; size: number; action: 'copied' | 'skipped'; reason?: string }) => void;
  onProgress?: (bytes: number) => void;
  /** Downloads: see DownloadOptions.onTempFile. */
  onTempFile?: (path: string | null) => void;
  /** Uploads: each file's record of its upload (UploadFileOptions.journal), by vault path and local path. */
  journalFor?: (vaultPath: string, localPath: string) => UploadRecord;
}

export interface TreeTransferResult {
  files: number;
  bytes: number;
  skipped: number;
}

function vaultJoin(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/**
 * Uploads every regular file under `localDir` into `vaultDir` (created with parents). Files that already exist
 * are skipped unless `overwrite`, so running it again after an interruption finishes the job. Throws at the
 * first other failure.
 */
export async function uploadTree(client: VaultClient, localDir: string, vaultDir: string, options: TreeTransferOptions): Promise<TreeTransferResult> {
  const result: TreeTransferResult = { files: 0, bytes: 0, skipped: 0 };
  await client.mkdir(vaultDir, true);
  const walk = async (local: string, remote: string): Promise<void> => {
    const entries = (await readdir(local, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      const l = path.join(local, e.name);
      const r = vaultJoin(remote, e.name);
      if (e.isDirectory()) {
        await client.mkdir(r, true);
        await walk(l, r);
      } else if (e.isFile()) {
        try {
          const up = await uploadFile(client, l, {
            path: r, keys: options.keys, overwrite: options.overwrite, concurrency: options.concurrency, onProgress: options.onProgress, journal: options.journalFor?.(r, l),
          });
          result.files++;
          result.bytes += up.size;
          options.onFile?.({ path: r, size: up.size, action: 'copied' });
        } catch (e) {
          // a file already in the vault (e.g. from an interrupted earlier run) is reported and left alone
          if (!isCofferError(e, 'ALREADY_EXISTS')) throw e;
          result.skipped++;
          options.onFile?.({ path: r, size: 0, action: 'skipped', reason: 'exists in the vault (use --force)' });
        }
      } else {
        result.skipped++;
        options.onFile?.({ path: l, size: 0, action: 'skipped', reason: e.isSymbolicLink() ? 'symbolic link' : 'not a regular file' });
      }
    }
  };
  await walk(localDir, vaultDir.replace(/\/+$/, '') || '/');
  return result;
}

/**
 * Downloads every file under `vaultDir` into `localDir` (created as needed). Local files that exist are skipped
 * unless `overwrite` (each download appears only complete and verified, so a re-run finishes an interrupted
 * copy). Throws at the first other failure.
 */
export async function downloadTree(client: VaultClient, vaultDir: string, localDir: string, options: TreeTransferOptions): Promise<TreeTransferResult> {
  const result: TreeTransferResult = { files: 0, bytes: 0, skipped: 0 };
  const walk = async (remote: string, local: string, top: boolean): Promise<void> => {
    await mkdir(local, { recursive: true });
    // below the destination the user named, a symbolic link where a directory should be would lead the copy
    // somewhere else entirely: refused (the destination itself may be a link: the user chose it)
    if (!top && !(await lstat(local)).isDirectory()) {
      throw new CofferError(ErrorCode.ALREADY_EXISTS, `${local} is not a directory (a symbolic link?); nothing is written through it`);
    }
    await sweepDeadPartials(local); // once per directory, not once per file downloaded into it
    for await (const node of client.listAll(remote)) {
      const l = path.join(local, localName(node.name));
      if (node.type === 'dir') {
        await walk(node.path, l, false);
        continue;
      }
      try {
        const got = await downloadFile(client, node.path, l, {
          keys: options.keys, overwrite: options.overwrite, concurrency: options.concurrency, onProgress: options.onProgress, onTempFile: options.onTempFile, sweepPartials: false,
        });
        result.files++;
        result.bytes += got.size;
        options.onFile?.({ path: node.path, size: got.size, action: 'copied' });
      } catch (e) {
        // an existing local file without --force is reported and left alone; anything else stops the copy,
        // ALREADY_EXISTS from the service included (it has no say over what exists here: checked, not trusted)
        if (!isCofferError(e, 'ALREADY_EXISTS') || !(await existsLocally(l))) throw e;
        result.skipped++;
        options.onFile?.({ path: node.path, size: node.size, action: 'skipped', reason: 'exists locally (use --force)' });
      }
    }
  };
  await walk(vaultDir, localDir, true);
  return result;
}

async function existsLocally(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}
