// Enclave-memory cache of object metadata sidecars (object-meta.ts), so that the many ranged GETs of one download
// (the AWS CLI's 8 MiB parts, rclone's streams) do not each open the sidecar, a second sealed file, before the
// data. A sidecar is bound to its object's blob id and a blob is immutable, so an entry keyed by
// (user, bucket, key, blob id) cannot go stale: new content is a new blob id, which misses. Only found sidecars
// are kept (a GET between an object's commit and its sidecar's write sees none, and must not keep seeing none).
// An entry is used only after the request's own stat of the object, as the same user, answered that blob id, so
// access is still decided for every request; entries live at most `ttlMs` and at most `max` of them.
import type { Principal } from './backend.js';
import type { ObjectMeta } from './object-meta.js';

export class ObjectMetaCache {
  private readonly entries = new Map<string, { meta: ObjectMeta; until: number }>();

  constructor(private readonly options: { ttlMs?: number; max?: number; now?: () => number } = {}) {}

  private static id(who: Principal, bucket: string, key: string, blobId: string): string {
    return JSON.stringify([who.user, who.admin, bucket, key, blobId]);
  }

  get(who: Principal, bucket: string, key: string, blobId: string): ObjectMeta | null {
    const id = ObjectMetaCache.id(who, bucket, key, blobId);
    const hit = this.entries.get(id);
    if (!hit) return null;
    if (hit.until <= this.now()) {
      this.entries.delete(id);
      return null;
    }
    return hit.meta;
  }

  set(who: Principal, bucket: string, key: string, meta: ObjectMeta): void {
    const max = this.options.max ?? 4096;
    if (this.entries.size >= max) {
      // the oldest insertion goes first (Map keeps insertion order)
      const first = this.entries.keys().next();
      if (!first.done) this.entries.delete(first.value);
    }
    this.entries.set(ObjectMetaCache.id(who, bucket, key, meta.blobId), { meta, until: this.now() + (this.options.ttlMs ?? 60_000) });
  }

  get size(): number {
    return this.entries.size;
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }
}
