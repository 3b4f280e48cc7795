// A byte-rate limit for backup transfers (`--rate-limit 50MiB`), shared by every copy task: each piece may go
// once the pieces before it have been paid for at the rate, so the average never exceeds it and a burst is at
// most one piece (one chunk) per task. Idle time earns no credit.
import { setTimeout as sleep } from 'node:timers/promises';
import { CofferError, ErrorCode } from '../errors.js';

export class RateLimiter {
  #next = 0; // when (ms) the bytes taken so far will have been paid for

  constructor(readonly bytesPerSecond: number) {
    if (!(bytesPerSecond > 0) || !Number.isFinite(bytesPerSecond)) throw new RangeError('rate must be a positive number');
  }

  /** Waits until `bytes` more may go. Rejects with the signal's reason when aborted. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    const now = Date.now();
    const start = Math.max(this.#next, now);
    this.#next = start + (bytes / this.bytesPerSecond) * 1000;
    if (start > now) await sleep(start - now, undefined, { signal });
  }
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3 };

/** Parses `100MiB`, `20MB`, `512k`, `1000000` (bytes per second). Throws INVALID_ARGUMENT naming the flag. */
export function parseRate(flag: string, value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)(?:\/s)?\s*$/i.exec(value);
  const unit = m ? UNITS[(m[2] ?? '').toLowerCase()] : undefined;
  const n = m && unit ? Number(m[1]) * unit : NaN;
  if (!(n >= 1) || !Number.isFinite(n)) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `${flag} must be a byte rate such as 50MiB or 100MB (per second), got "${value}"`);
  }
  return n;
}
