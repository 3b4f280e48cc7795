// A cap on V8's young generation, set from inside the process (src/gc-tuning.ts turns it on for every Coffer process).
//
// V8 doubles the young generation's semi-spaces while allocation runs fast and objects survive its scavenges, up
// to `--max-semi-space-size` (64 MiB per semi-space on this machine, so 128 MiB of new space). `put -r`, `get -r`
// and the storage service allocate fast for minutes, so that is where their peak RSS went: the live heap of a
// 30,000-file put -r stayed at 11 MiB while the new space grew 32 → 64 → 128 MiB (docs/benchmarks.md, "Memory of
// put -r and the service"). `--max-semi-space-size=16` on the command line took its peak from 268 to 163 MB with
// a little less CPU, but that flag is read once, when the heap is set up: `v8.setFlagsFromString` of it at run
// time changes nothing, and NODE_OPTIONS or a re-exec of node would be needed. The growth step,
// `--semi-space-growth-factor`, is read at each growth, so it can be set later: once the new space has reached
// the cap it is set to 1 (grow no more) and, should V8 shrink the space below the cap again, back to its default
// 2. Checked after every collection (a PerformanceObserver of `gc` entries), so the space overshoots the cap by
// at most one doubling before the check sees it. A memory hint: where V8 lacks the flag or the statistics,
// nothing is capped and nothing fails.
import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';

/** The new space (both semi-spaces) kept at or below this: 16 MiB semi-spaces, as `--max-semi-space-size=16`. */
export const YOUNG_GENERATION_CAP_BYTES = 32 * 1024 * 1024;

const DEFAULT_GROWTH_FACTOR = 2;

/** The new space's current size in bytes, or null where V8 does not report it. */
export function newSpaceBytes(): number | null {
  for (const space of getHeapSpaceStatistics()) if (space.space_name === 'new_space') return space.space_size;
  return null;
}

let observer: PerformanceObserver | null = null;

/**
 * Keeps the young generation at or below `capBytes` (after at most one doubling past it) for the rest of the
 * process's life. Idempotent: a second call does nothing. Never throws.
 */
export function capYoungGeneration(capBytes: number = YOUNG_GENERATION_CAP_BYTES): void {
  if (observer !== null) return;
  let capped = false;
  const check = (): void => {
    const size = newSpaceBytes();
    if (size === null) return;
    const want = size >= capBytes;
    if (want === capped) return;
    setFlagsFromString(`--semi-space-growth-factor=${want ? 1 : DEFAULT_GROWTH_FACTOR}`);
    capped = want;
  };
  try {
    check();
    observer = new PerformanceObserver(check);
    observer.observe({ entryTypes: ['gc'] });
  } catch {
    // a memory hint only
  }
}
