// Small measuring helpers shared by the benchmarks: wall time, throughput, ratios, peak RSS of child processes.
import { readFile } from 'node:fs/promises';

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
