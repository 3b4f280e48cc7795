// Whole directories (`coffer put -r`, `coffer get -r`): what both directions share. Many files are in flight at
// once (bounded: `concurrency`), each committed (upload) or renamed into place (download) on its own, so an
// interruption at any moment leaves every file either whole or absent, and running the same command again
// finishes the job: a file already there is skipped when it is the same file (docs/vault.md "Trees": same size
// and an unchanged modification time, or the same bytes with `checksum`), and sent again otherwise.
// A file that cannot be copied for a reason of its own (a name the vault refuses, an unreadable file) is
// reported and the rest of the tree goes on; any other failure (the service down, a full disk) stops the copy.
import { isCofferError } from '../errors.js';
import type { DataKeyProvider } from './data-keys.js';
import type { UploadRecord } from './upload-journal.js';

export { uploadTree } from './tree-upload.js';
export { downloadTree } from './tree-download.js';

/** Files in flight by default: measured on a 2-core machine with 16 KiB files (docs/benchmarks.md "Trees"). */
export const DEFAULT_TREE_CONCURRENCY = 32;

/**
 * Files up to this size go `concurrency` at a time; larger one-chunk files (up to 8 MiB, held whole in memory
 * while in flight) go MEDIUM_FILES_IN_FLIGHT at a time, so memory stays bounded whatever the tree holds.
 */
export const SMALL_IN_FLIGHT_MAX = 1024 * 1024;
export const MEDIUM_FILES_IN_FLIGHT = 4;

export type TreeAction = 'copied' | 'updated' | 'skipped' | 'failed';

export interface TreeFileEvent {
  path: string;
  size: number;
  action: TreeAction;
  reason?: string;
}

export interface TreeTransferOptions {
  keys: DataKeyProvider;
  /** Send (or fetch) every file again, replacing what is there (`--force`). */
  overwrite?: boolean;
  /** Decide "same file" by content (SHA-256 of the plaintext) instead of size and modification time. */
  checksum?: boolean;
  /** Files in flight at once (default DEFAULT_TREE_CONCURRENCY). */
  concurrency?: number;
  /** Uploads: files up to 1 MiB sent per batch request (default BATCH_FILES, file-batcher.ts). */
  batchFiles?: number;
  /** Chunks in flight for each file larger than one chunk (default 4); such files go one at a time. */
  chunkConcurrency?: number;
  onFile?: (event: TreeFileEvent) => void;
  /** Plaintext bytes moved (as they go). */
  onProgress?: (bytes: number) => void;
  /** Files and bytes found so far by the walk, and whether the walk has finished (for an ETA). */
  onFound?: (files: number, bytes: number, complete: boolean) => void;
  /**
   * Downloads: fsync each file (and its directory) before it takes its name, as a single `get` does (`--fsync`).
   * Default false, like restic restore, rsync, cp and tar: the rename still makes each file appear whole or not
   * at all to any reader and after a kill; only a power loss may leave a file just downloaded missing or empty,
   * which a re-run fetches again (docs/vault.md "Trees").
   */
  fsync?: boolean;
  /** Downloads: each temporary file when created, and `null` with the same path once it is gone. */
  onTempFile?: (path: string, exists: boolean) => void;
  /** Uploads of files larger than one chunk: their record of the upload (UploadFileOptions.journal). */
  journalFor?: (vaultPath: string, localPath: string) => UploadRecord;
}

export interface TreeTransferResult {
  /** Files sent (or fetched) that were not there before. */
  files: number;
  /** Files sent (or fetched) again because they differed (or with `overwrite`). */
  updated: number;
  /** Plaintext bytes moved. */
  bytes: number;
  /** Files left alone because they are already there and the same. */
  skipped: number;
  /** Files that could not be copied, with the reason; the rest of the tree went on. */
  failed: Array<{ path: string; reason: string }>;
  /** Symbolic links and special files, never followed. */
  ignored: number;
}

export function emptyResult(): TreeTransferResult {
  return { files: 0, updated: 0, bytes: 0, skipped: 0, failed: [], ignored: 0 };
}

/** Failures that concern one file only: the copy goes on without it (everything else stops the tree). */
export function isFileOnlyFailure(e: unknown): boolean {
  if (isCofferError(e)) {
    if (e.code === 'INVALID_PATH' || e.code === 'CONFLICT' || e.code === 'IS_A_DIRECTORY' || e.code === 'NOT_A_DIRECTORY' || e.code === 'PERMISSION_DENIED') return true;
    return isLocalFileError(e.cause); // reading the local file failed (it vanished, became a link, is unreadable)
  }
  return isLocalFileError(e);
}

function isLocalFileError(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EACCES' || code === 'EPERM' || code === 'ENOENT' || code === 'ELOOP' || code === 'EISDIR';
}

export function reasonOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Records a per-file failure and tells the caller. */
export function fail(result: TreeTransferResult, options: TreeTransferOptions, path: string, reason: string): void {
  result.failed.push({ path, reason });
  options.onFile?.({ path, size: 0, action: 'failed', reason });
}

export function vaultJoin(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}
