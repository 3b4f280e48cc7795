// Which process on which machine wrote a local file (a partial download, an upload record), and whether that
// process is gone: what lets `get` and `put` clean up after a run that was killed outright.
import { createHash } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import os from 'node:os';

let tag: string | undefined;

/**
 * Eight hex digits naming this machine, boot and PID namespace: a pid means the same process only under the same
 * tag (a container sharing the host's name, or a cloned VM on a shared filesystem, has another one).
 */
export function processTag(): string {
  tag ??= createHash('sha256').update([os.hostname(), readOr('/proc/sys/kernel/random/boot_id'), linkOr('/proc/self/ns/pid')].join('\0')).digest('hex').slice(0, 8);
  return tag;
}

/** Whether process `pid` under this tag has ended (EPERM: it runs, as someone else). */
export function processIsGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

function readOr(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}

function linkOr(file: string): string {
  try {
    return readlinkSync(file);
  } catch {
    return '';
  }
}
