// Evicting a benchmark's stores from the page cache, so that a "cold" run reads from the disk: `sync` (dirty pages
// cannot be dropped), then for every file GNU dd's `iflag=nocache count=0`, which asks the kernel to forget the
// file's clean cached pages (posix_fadvise DONTNEED; Node cannot ask for it). Only these files are affected, not
// the machine's whole cache, so no root is needed. Then `fincore` (util-linux) counts what is still resident: a
// filesystem that ignores the advice (or a missing dd) is reported, not silently taken for a cold cache.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';

export interface Eviction {
  /** Regular files under the roots. */
  files: number;
  /** Their bytes (from fincore; 0 without it). */
  bytes: number;
  /** dd ran for every file without an error. */
  evicted: boolean;
  /** Bytes still in the page cache afterwards (fincore), or null when fincore is not available. */
  resident: number | null;
}

/** At most this share of the files' bytes may stay resident for an eviction to count as done (≈ metadata pages). */
const RESIDENT_TOLERANCE = 0.01;
/** Files a dd loop or fincore call takes at once (well under the kernel's argument limit). */
const PER_CALL = 500;

/** Every regular file under `roots` (missing roots are skipped). */
function filesUnder(roots: string[]): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return; // not made yet, or removed meanwhile
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.push(p);
    }
  };
  for (const r of roots) walk(r);
  return out;
}

function batches<T>(xs: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += PER_CALL) out.push(xs.slice(i, i + PER_CALL));
  return out;
}

/** Resident and total bytes of `files` by fincore, or null when it cannot tell (not installed, failed). */
function residency(files: string[]): { resident: number; bytes: number } | null {
  let resident = 0;
  let bytes = 0;
  for (const group of batches(files)) {
    const r = spawnSync('fincore', ['--bytes', '--noheadings', '--raw', '--output', 'RES,SIZE', ...group], { encoding: 'utf8' });
    // a file removed between the walk and the call makes fincore fail for it alone: count what it did report
    if (r.error !== undefined || typeof r.stdout !== 'string' || (r.status !== 0 && r.stdout === '')) return null;
    for (const line of r.stdout.split('\n')) {
      const [res, size] = line.trim().split(/\s+/).map(Number);
      if (Number.isFinite(res) && Number.isFinite(size)) {
        resident += res as number;
        bytes += size as number;
      }
    }
  }
  return { resident, bytes };
}

/** Flushes and evicts every file under `roots` from the page cache and checks that its pages are gone. */
export function evictFromPageCache(roots: string[]): Eviction {
  spawnSync('sync', { stdio: 'ignore' });
  const files = filesUnder(roots);
  let evicted = true;
  for (const group of batches(files)) {
    // one shell for many files: a process per dd from Node would cost more than the eviction itself
    const r = spawnSync('sh', ['-c', 'for f; do dd if="$f" iflag=nocache count=0 status=none || exit 1; done', 'sh', ...group], { stdio: 'ignore' });
    if (r.status !== 0) evicted = false;
  }
  const after = residency(files);
  return { files: files.length, bytes: after?.bytes ?? 0, evicted, resident: after?.resident ?? null };
}

/** Whether an eviction left the files cold: dd worked and fincore saw (almost) nothing resident. */
export function isCold(e: Eviction): boolean {
  return e.evicted && e.resident !== null && e.resident <= e.bytes * RESIDENT_TOLERANCE;
}

/** One line on what the evictions of a run achieved (the worst one counts), for the benchmark's output. */
export function describeEvictions(all: Eviction[]): string {
  if (all.length === 0) return 'page cache: nothing evicted';
  const worst = all.reduce((a, b) => (residentShare(b) > residentShare(a) ? b : a));
  const files = Math.max(...all.map((e) => e.files));
  const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (!all.every((e) => e.evicted)) return `page cache: EVICTION FAILED (dd iflag=nocache returned an error: GNU dd missing?): the "cold" figures may be warm`;
  if (all.some((e) => e.resident === null)) return `page cache: evicted ${all.length} times (up to ${files} files) with dd iflag=nocache, NOT VERIFIED (fincore from util-linux missing)`;
  if (!all.every(isCold)) {
    return `page cache: EVICTION DID NOT WORK: up to ${mib(worst.resident as number)} of ${mib(worst.bytes)} still resident after dd iflag=nocache (fincore): the "cold" figures are partly warm`;
  }
  return `page cache: evicted ${all.length} times before cold runs (up to ${files} files, ${mib(Math.max(...all.map((e) => e.bytes)))}); fincore afterwards: at most ${mib(Math.max(...all.map((e) => e.resident as number)))} resident`;
}

function residentShare(e: Eviction): number {
  if (!e.evicted || e.resident === null) return Infinity;
  return e.bytes === 0 ? 0 : e.resident / e.bytes;
}
