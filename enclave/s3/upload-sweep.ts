// The sweep of abandoned multipart uploads, inside the enclave and without an administrator (docs/s3-api.md
// "Abandoned uploads"). S3 requests never act as an administrator, so no request can walk every bucket. Instead a
// bucket is swept as a user who just wrote to it: after a successful write request (PUT, POST, DELETE) in a bucket,
// the S3 listener sweeps that bucket's staging area in the background, as that user, at most once per
// `intervalMs` per bucket. The user can write there, so they may already abort any upload of the bucket
// (AbortMultipartUpload needs only the id, which ListMultipartUploads shows): the sweep grants nothing new, and the
// vault's grants decide each removal as for any request. A bucket nobody writes to gains no new uploads either, so
// nothing is left behind for long: its last abandoned uploads go with the next write, or with DeleteBucket.
import { isCofferError } from '../../src/errors.js';
import type { Principal, VaultBackend } from './backend.js';
import { isNotFound } from './errors.js';
import { listDir, uploadsDir } from './multipart.js';

export interface SweepLimits {
  /** Uploads whose record and parts are all older than this are removed (default 7 days). */
  maxAgeMs?: number;
  /** Part files still under their temporary name (a PUT cut off mid-body) older than this are removed (default 1 h). */
  tempAgeMs?: number;
  now?: Date;
}

export interface SweepReport {
  removedUploads: number;
  removedTemps: number;
}

const DAY_MS = 24 * 3600_000;

/**
 * Removes the abandoned uploads of one bucket, acting as `who` (the vault's grants apply: a user who may not
 * write there gets PERMISSION_DENIED). Idempotent; safe beside live uploads (one being written to is younger than
 * the limit). Throws the backend's errors.
 */
export async function sweepBucketUploads(backend: VaultBackend, who: Principal, bucket: string, limits: SweepLimits = {}): Promise<SweepReport> {
  const now = (limits.now ?? new Date()).getTime();
  const maxAge = limits.maxAgeMs ?? 7 * DAY_MS;
  const tempAge = limits.tempAgeMs ?? 3600_000;
  const report: SweepReport = { removedUploads: 0, removedTemps: 0 };
  for (const up of await listDir(backend, who, uploadsDir(bucket))) {
    if (up.type !== 'dir') continue;
    const children = await listDir(backend, who, up.path);
    const newest = Math.max(Date.parse(up.modifiedAt), ...children.map((c) => Date.parse(c.modifiedAt)));
    if (now - newest > maxAge) {
      await backend.remove(who, up.path, true).catch((e: unknown) => { if (!isNotFound(e)) throw e; });
      report.removedUploads++;
      continue;
    }
    for (const c of children) {
      if (/^t\d{5}-/.test(c.name) && now - Date.parse(c.modifiedAt) > tempAge) {
        await backend.remove(who, c.path, false).catch((e: unknown) => { if (!isNotFound(e)) throw e; });
        report.removedTemps++;
      }
    }
  }
  return report;
}

/** Every bucket `who` can list (an administrator's view on the native API; tests and tools). */
export async function sweepAbandonedUploads(backend: VaultBackend, who: Principal, limits: SweepLimits = {}): Promise<SweepReport> {
  const total: SweepReport = { removedUploads: 0, removedTemps: 0 };
  for (const bucket of await listDir(backend, who, '/')) {
    if (bucket.type !== 'dir' || bucket.name.startsWith('.')) continue;
    const r = await sweepBucketUploads(backend, who, bucket.name, limits);
    total.removedUploads += r.removedUploads;
    total.removedTemps += r.removedTemps;
  }
  return total;
}

export interface UploadSweeperOptions extends Omit<SweepLimits, 'now'> {
  backend: VaultBackend;
  /** A bucket is swept at most this often (default 1 h); a user refused there is not retried for as long. */
  intervalMs?: number;
  now?: () => number;
  onSwept?: (bucket: string, user: string, report: SweepReport) => void;
  onError?: (bucket: string, user: string, error: unknown) => void;
}

/** Triggers the per-bucket sweep from the S3 handler (one at a time per bucket, in the background). */
export class UploadSweeper {
  private readonly lastSwept = new Map<string, number>();
  private readonly refused = new Map<string, number>();
  private readonly running = new Map<string, Promise<void>>();

  constructor(private readonly options: UploadSweeperOptions) {}

  /** Called after `who`'s successful write request in `bucket`. Never throws; returns the sweep it started, if any. */
  touched(who: Principal, bucket: string): Promise<void> | null {
    const now = (this.options.now ?? Date.now)();
    const interval = this.options.intervalMs ?? 3600_000;
    const userKey = `${who.user}\0${bucket}`;
    if (this.running.has(bucket) || now - (this.lastSwept.get(bucket) ?? -Infinity) < interval || now - (this.refused.get(userKey) ?? -Infinity) < interval) return null;
    this.forget(now, interval);
    const sweep = sweepBucketUploads(this.options.backend, who, bucket, { maxAgeMs: this.options.maxAgeMs, tempAgeMs: this.options.tempAgeMs, now: new Date(now) })
      .then((report) => {
        this.lastSwept.set(bucket, now);
        this.options.onSwept?.(bucket, who.user, report);
      }, (e: unknown) => {
        // refused (a user with write on one key but not on the staging area) or failing: another writer may succeed
        if (isCofferError(e) && e.code === 'PERMISSION_DENIED') this.refused.set(userKey, now);
        else this.lastSwept.set(bucket, now);
        this.options.onError?.(bucket, who.user, e);
      })
      .finally(() => this.running.delete(bucket));
    this.running.set(bucket, sweep);
    return sweep;
  }

  /** Waits for the sweeps in progress (at close). */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.running.values()]);
  }

  /** Keeps the maps bounded: entries older than the interval decide nothing any more. */
  private forget(now: number, interval: number): void {
    if (this.lastSwept.size + this.refused.size < 10_000) return;
    for (const m of [this.lastSwept, this.refused]) for (const [k, t] of m) if (now - t >= interval) m.delete(k);
  }
}
