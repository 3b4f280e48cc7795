// Young-generation collections on demand, for the bulk data paths: YoungGarbagePacer collects once per 32 MiB
// (the `coffer put` client per 32 MiB sealed, the storage service per 32 MiB of chunk bodies received).
//
// Sealing a chunk leaves 128 dead 64 KiB cipher outputs behind (Node's Cipher.update cannot write into a given
// buffer, src/crypto/chunk.ts). Each is a tiny object in V8's young generation holding 64 KiB of memory outside
// the heap, so the heap itself barely grows and V8 sees no reason to collect: with the off-heap memory counted
// in its global limit (src/gc-tuning.ts, which Node 24 needs for its CPU) it let some 130 MiB of them wait, and
// the `coffer put` client peaked at 250 MiB against Node 20's 145 MiB. A minor collection (a scavenge of a young
// generation that is nearly all garbage: ≈ 0.2 ms) frees them while they are few. Once per 32 MiB, not per
// 8 MiB chunk: per chunk gave 130 MiB but its page faults varied 54k–147k per 512 MiB (malloc gave the freed
// memory back to the kernel and faulted it in again), while per 32 MiB gave 155 MiB, 28k–33k faults and the
// least CPU of the three (docs/runtime.md, "Where Node 24's put client spent its CPU").
//
// V8 offers this only through its `gc` extension. Like jest's leak detector, `--expose-gc` is turned on just long
// enough to take `gc` from a fresh context (the running one was made without it) and then off again, so no
// other context ever sees a `gc` global. If that fails on some runtime, collecting is skipped: it is a memory
// hint, never needed for correctness.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type GcFunction = (options: { type: 'minor' | 'major'; execution?: 'sync' }) => void;

let gc: GcFunction | null | undefined;

function gcFunction(): GcFunction | null {
  if (gc !== undefined) return gc;
  try {
    setFlagsFromString('--expose-gc');
    const found: unknown = runInNewContext('typeof gc === "function" ? gc : null');
    gc = typeof found === 'function' ? (found as GcFunction) : null;
  } catch {
    gc = null;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
  return gc;
}

/** Runs a minor (young-generation) garbage collection now; does nothing where V8 offers none. Never throws. */
export function collectYoungGarbage(): void {
  try {
    gcFunction()?.({ type: 'minor' });
  } catch {
    // a memory hint only
  }
}

/** Bytes of data moved between two collections: see the measurements above. */
export const YOUNG_GARBAGE_INTERVAL = 32 * 1024 * 1024;

/** Calls collectYoungGarbage once every `interval` bytes told to `moved` (one pacer per transfer). */
export class YoungGarbagePacer {
  private since = 0;

  constructor(readonly interval: number = YOUNG_GARBAGE_INTERVAL, private readonly collect: () => void = collectYoungGarbage) {
    if (!Number.isSafeInteger(interval) || interval <= 0) throw new RangeError(`interval ${interval} must be a positive integer`);
  }

  /** Counts `bytes` more moved; collects when another interval's worth has passed since the last collection. */
  moved(bytes: number): void {
    this.since += bytes;
    if (this.since < this.interval) return;
    this.since = 0;
    this.collect();
  }
}
