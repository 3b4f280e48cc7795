// Helpers shared by the filesystem store's tests: temp roots, a store on a fresh one per test, tree listings, and
// the child-process runner.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach } from 'vitest';
import { openFsChunkStore, type FsChunkStore, type FsChunkStoreOptions } from './index.js';

export const run = promisify(execFile);
export const CHILD = join(import.meta.dirname, 'test-child.ts');
export const REPO = join(import.meta.dirname, '..', '..'); // the child resolves tsx from here
export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

export async function tempRoot(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'coffer-fs-store-'));
}

/**
 * In the calling describe: before each test a store on a fresh temporary root, handed to `use`; after it the
 * store closed and the root removed.
 */
export function withTempStore(use: (t: { root: string; store: FsChunkStore }) => void, options: Omit<FsChunkStoreOptions, 'root'> = {}): void {
  let current: { root: string; store: FsChunkStore } | undefined;
  beforeEach(async () => {
    const root = await tempRoot();
    current = { root, store: await openFsChunkStore({ ...options, root }) };
    use(current);
  });
  afterEach(async () => {
    if (!current) return;
    const { root, store } = current;
    current = undefined;
    try {
      await store.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
}

/** Every path under `dir`, relative, sorted (lstat: links are listed, not followed). */
export async function tree(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).sort();
}

export async function tempFilesUnder(dir: string): Promise<string[]> {
  return (await tree(dir)).filter((p) => p.split('/').some((part) => part.startsWith('.tmp-')));
}

export interface ChildResult {
  ok?: { size: number; sha256: string };
  error?: { code: string; message: string };
}

/** Runs test-child.ts under `prefix` (e.g. prlimit, strace) and returns the JSON line it printed last. */
export async function runChild(prefix: string[], args: string[]): Promise<ChildResult> {
  const [cmd, ...rest] = [...prefix, process.execPath, '--import', 'tsx', CHILD, ...args];
  const { stdout } = await run(cmd as string, rest, { timeout: 60_000, cwd: REPO });
  return JSON.parse(stdout.trim().split('\n').at(-1) as string) as ChildResult;
}

export async function have(cmd: string): Promise<boolean> {
  return run('sh', ['-c', `command -v ${cmd}`]).then(
    () => true,
    () => false,
  );
}

/** strace -f lines with each call split by another thread's joined back into one line, where it started. */
export function joinResumed(raw: string[]): string[] {
  const out: string[] = [];
  const open = new Map<string, number>(); // pid → index in out of its unfinished call
  for (const l of raw) {
    const unfinished = /^(\d+)\s+.* <unfinished \.\.\.>$/.exec(l);
    if (unfinished) {
      open.set(unfinished[1] as string, out.length);
      out.push(l.replace(/ <unfinished \.\.\.>$/, ''));
      continue;
    }
    const resumed = /^(\d+)\s+<\.\.\. \w+ resumed>(.*)$/.exec(l);
    const at = resumed ? open.get(resumed[1] as string) : undefined;
    if (resumed && at !== undefined) {
      out[at] += resumed[2] as string;
      open.delete(resumed[1] as string);
      continue;
    }
    out.push(l);
  }
  return out;
}
