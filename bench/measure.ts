// Small measuring helpers shared by the benchmarks: wall time, throughput, ratios, peak RSS of child processes.
import { readFile, writeFile } from 'node:fs/promises';

export interface Timing {
  seconds: number;
  bytes: number;
  /** bytes per second */
  rate: number;
}

export async function timed(bytes: number, fn: () => Promise<void>): Promise<Timing> {
  const t0 = process.hrtime.bigint();
  await fn();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { seconds, bytes, rate: bytes / seconds };
}

export function mbps(rate: number): string {
  return `${(rate / 1e6).toFixed(0)} MB/s`;
}

/**
 * CPU seconds (user + system) used so far by a running process, or, with 'children', by every child of this
 * process that has exited and been waited for (cutime + cstime of /proc/self/stat; Node reaps its children, so
 * the difference around one `runCliProcess` is that command's CPU). 0 when the process is gone. CPU time is
 * what the runtime comparisons rely on: on this shared 2-core machine wall time moves 2× with the load, CPU
 * seconds far less.
 */
export async function cpuSecondsUsed(pid: number | 'children'): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid === 'children' ? 'self' : pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[11..14] = utime, stime, cutime, cstime in clock ticks (USER_HZ = 100)
    return pid === 'children' ? (Number(fields[13]) + Number(fields[14])) / 100 : (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** CPU seconds a step cost the client (this process's children) and a server process, measured around it. */
export async function cpuAround(serverPid: number, fn: () => Promise<void>): Promise<{ client: number; server: number }> {
  const [c0, s0] = await Promise.all([cpuSecondsUsed('children'), cpuSecondsUsed(serverPid)]);
  await fn();
  const [c1, s1] = await Promise.all([cpuSecondsUsed('children'), cpuSecondsUsed(serverPid)]);
  return { client: c1 - c0, server: s1 - s0 };
}

/** Peak resident set size (VmHWM) of a running process in bytes, or null if it is gone. */
export async function peakRss(pid: number): Promise<number | null> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = /VmHWM:\s+(\d+) kB/.exec(status);
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/**
 * Resets a process's peak RSS (VmHWM) to its current RSS (Linux: "5" to /proc/PID/clear_refs), so that a later
 * peakRss is the peak of what ran in between. False where that is not possible (the peak then runs on).
 */
export async function resetPeakRss(pid: number): Promise<boolean> {
  try {
    await writeFile(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Polls a child's peak RSS until it exits; resolves to the last value seen. */
export function watchPeakRss(pid: number, intervalMs = 50): { stop(): Promise<number> } {
  let peak = 0;
  let active = true;
  const loop = (async () => {
    while (active) {
      const v = await peakRss(pid);
      if (v === null) break;
      peak = Math.max(peak, v);
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return {
    async stop() {
      active = false;
      await loop;
      return peak;
    },
  };
}

export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(b|k|kib|m|mib|g|gib)?$/i.exec(text.trim());
  if (!m) throw new Error(`bad size "${text}" (e.g. 1GiB, 256MiB)`);
  const unit = (m[2] ?? 'b').toLowerCase();
  const mult = unit.startsWith('g') ? 1024 ** 3 : unit.startsWith('m') ? 1024 ** 2 : unit.startsWith('k') ? 1024 : 1;
  return Math.round(Number(m[1]) * mult);
}

export function row(label: string, t: Timing, baseline?: Timing, extra = ''): string {
  const ratio = baseline ? `  ${(t.rate / baseline.rate).toFixed(2)}×` : '';
  return `${label.padEnd(44)} ${t.seconds.toFixed(2).padStart(7)} s  ${mbps(t.rate).padStart(10)}${ratio}${extra ? `  ${extra}` : ''}`;
}

/** The median of `xs` (the mean of the middle two for an even count); NaN for none. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}
