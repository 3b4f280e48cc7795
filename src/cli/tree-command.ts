// The `-r` halves of `coffer put` and `coffer get`: many files in flight, one progress line for the whole tree,
// a summary at the end (`--json`: one object), a non-zero exit status when a file could not be copied, and on
// Ctrl-C the temporary files removed and a line saying how to continue (the same command again).
import { unlinkSync } from 'node:fs';
import { constants } from 'node:os';
import { DEFAULT_TREE_CONCURRENCY, downloadTree, uploadTree, type TreeFileEvent, type TreeTransferOptions, type TreeTransferResult } from '../client/tree-transfer.js';
import type { VaultClient } from '../client/vault-client.js';
import { CofferError, ErrorCode } from '../errors.js';
import { intFlag } from './options.js';
import { formatBytes } from './progress.js';
import { treeProgress } from './tree-progress.js';

export interface TreeCommandFlags {
  json?: boolean;
  force?: boolean;
  checksum?: boolean;
  verbose?: boolean;
}

type Direction = 'put' | 'get';

/** `--concurrency N` with -r: files in flight. */
export function treeConcurrency(flags: { concurrency?: string }): number {
  return flags.concurrency === undefined ? DEFAULT_TREE_CONCURRENCY : intFlag('--concurrency', flags.concurrency, 1, 256);
}

/** Runs a tree copy with the CLI's progress, summary and signal handling. Throws when any file failed (after the summary). */
export async function runTreeCommand(
  direction: Direction, client: VaultClient, from: string, to: string, flags: TreeCommandFlags,
  options: Omit<TreeTransferOptions, 'onFile' | 'onProgress' | 'onFound' | 'onTempFile' | 'overwrite' | 'checksum'>, rerun: string,
): Promise<TreeTransferResult> {
  const progress = treeProgress(direction);
  const temps = new Set<string>();
  const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  const onSignal = (signal: (typeof SIGNALS)[number]): void => {
    for (const t of temps) {
      try {
        unlinkSync(t);
      } catch {
        // already gone
      }
    }
    progress.done();
    const { filesDone } = progress;
    process.stderr.write(`coffer: interrupted (${signal}) after ${filesDone} file(s); every file is either complete or absent. To continue, run the same command again (files already there are skipped): ${rerun}\n`);
    process.exit(128 + constants.signals[signal]);
  };
  for (const s of SIGNALS) process.on(s, onSignal);
  const onFile = (e: TreeFileEvent): void => {
    progress.file(e);
    if (flags.json) return;
    if (e.action === 'failed') progress.print(`failed ${e.path}: ${e.reason ?? ''}`);
    else if (flags.verbose) progress.print(`${e.action} ${e.path}${e.reason ? ` (${e.reason})` : ''}`);
  };
  let r: TreeTransferResult;
  const started = Date.now();
  try {
    const all: TreeTransferOptions = {
      ...options, overwrite: flags.force === true, checksum: flags.checksum === true, onFile,
      onProgress: (n) => progress.add(n), onFound: (f, b, complete) => progress.found(f, b, complete),
      onTempFile: (p, exists) => void (exists ? temps.add(p) : temps.delete(p)),
    };
    r = direction === 'put' ? await uploadTree(client, from, to, all) : await downloadTree(client, from, to, all);
  } catch (e) {
    // a failure that stops the run (the service gone, the disk full): say how far it got and how to go on
    if (!(e instanceof CofferError)) throw e;
    throw new CofferError(e.code, `${e.message}; the copy stopped after ${progress.filesDone} file(s), every file is either complete or absent. To continue, run the same command again (files already there are skipped): ${rerun}`, {
      cause: e, retryable: e.retryable, details: e.details,
    });
  } finally {
    progress.done();
    for (const s of SIGNALS) process.off(s, onSignal);
  }
  const seconds = (Date.now() - started) / 1000;
  const moved = r.files + r.updated;
  if (flags.json) {
    process.stdout.write(`${JSON.stringify({ ...r, seconds, filesPerSecond: moved / Math.max(seconds, 0.001) })}\n`);
  } else {
    const parts = [`${moved} file(s) ${direction === 'put' ? 'sent' : 'fetched'} (${r.files} new, ${r.updated} updated), ${formatBytes(r.bytes)}`];
    if (r.skipped) parts.push(`${r.skipped} unchanged, skipped`);
    if (r.ignored) parts.push(`${r.ignored} links or special files ignored`);
    if (r.failed.length) parts.push(`${r.failed.length} failed`);
    parts.push(`${seconds.toFixed(1)} s, ${(moved / Math.max(seconds, 0.001)).toFixed(0)} files/s`);
    process.stdout.write(`${parts.join('; ')}\n`);
    for (const f of r.failed) process.stdout.write(`  failed: ${f.path}: ${f.reason}\n`);
  }
  if (r.failed.length > 0) {
    throw new CofferError(ErrorCode.INVALID_PATH, `${r.failed.length} file(s) could not be copied (listed above); the rest of the tree was`);
  }
  return r;
}
