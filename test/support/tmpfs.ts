// A small tmpfs for tests of a really full filesystem: ENOSPC from the kernel, no mocks. Mounting needs root
// (CAP_SYS_ADMIN); where it is refused, `whyNot` says why and the caller skips with that reason.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Tmpfs {
  /** The mount point (a plain temporary directory when the mount was refused). */
  path: string;
  mounted: boolean;
  whyNot: string;
  /** Unmounts and removes the mount point. */
  close(): Promise<void>;
}

export async function mountTmpfs(prefix: string, size: string): Promise<Tmpfs> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  let mounted = false;
  let whyNot = '';
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', path]);
    mounted = true;
  } catch (e) {
    whyNot = `cannot mount a tmpfs here (${(e as Error).message.split('\n')[0]})`;
  }
  return {
    path, mounted, whyNot,
    async close() {
      if (mounted) await run('umount', [path]);
      await rm(path, { recursive: true, force: true });
    },
  };
}
