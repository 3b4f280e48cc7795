// The apply lock: one record per host ("lock/<host>") holding the owner and an expiry. Taking it is an
// insert (atomic on both stores); an expired lock (its holder died) is removed by compare-and-set on its
// version, so of two shells that find it expired only one takes it over. Two applies to one host never
// interleave; a crashed apply blocks the next one for at most the lease time.
import { randomUUID } from 'node:crypto';
import { CofferError, ErrorCode, isCofferError } from '../errors.js';
import type { NetRecordStore } from '../metadata/netstore/index.js';

interface LockBody { owner: string; expiresAt: number }

export const DEFAULT_LEASE_MS = 120_000;

/** Runs `fn` holding the host's apply lock. Throws CONFLICT when another live apply holds it. */
export async function withApplyLock<T>(store: NetRecordStore, host: string, fn: () => Promise<T>, leaseMs = DEFAULT_LEASE_MS): Promise<T> {
  const owner = `${process.pid}/${randomUUID()}`;
  const body = (): string => JSON.stringify({ owner, expiresAt: Date.now() + leaseMs } satisfies LockBody);
  let version: number | undefined;
  for (let attempt = 0; attempt < 3 && version === undefined; attempt++) {
    try {
      version = (await store.insert('lock', host, body())).version;
    } catch (e) {
      if (!isCofferError(e, ErrorCode.ALREADY_EXISTS)) throw e;
      const cur = await store.get('lock', host);
      if (cur === null) continue;
      const held = JSON.parse(cur.body) as LockBody;
      if (held.expiresAt > Date.now()) {
        throw new CofferError(ErrorCode.CONFLICT, `another apply to host ${host} is running (${held.owner}, lease until ${new Date(held.expiresAt).toISOString()})`, {
          details: { host, owner: held.owner },
        });
      }
      await store.delete('lock', host, { version: cur.version }).catch((err: unknown) => {
        if (!isCofferError(err, ErrorCode.CONFLICT)) throw err; // someone else took it over first: try again
      });
    }
  }
  if (version === undefined) throw new CofferError(ErrorCode.CONFLICT, `could not take the apply lock of host ${host}`, { retryable: true });
  try {
    return await fn();
  } finally {
    await store.delete('lock', host, { version }).catch(() => undefined);
  }
}
