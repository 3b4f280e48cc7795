// Whether a process has ended, for tests that kill a launcher and wait for the processes it started. A process whose
// parent died is reparented, and until its new parent reaps it an exited one stays a zombie: `kill(pid, 0)` still
// finds it, so the state in /proc/PID/stat is read (Z: exited).
import { readFileSync } from 'node:fs';

/** True when `pid` is no process, or a zombie (exited, not yet reaped). */
export function processEnded(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) is in parentheses and may hold spaces: the state follows its closing one
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** Waits up to `ms` for every pid to end; resolves with those still running. */
export async function waitEnded(pids: readonly number[], ms: number): Promise<number[]> {
  const until = Date.now() + ms;
  while (Date.now() < until && pids.some((p) => !processEnded(p))) await new Promise((r) => setTimeout(r, 100));
  return pids.filter((p) => !processEnded(p));
}
