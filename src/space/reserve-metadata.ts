// The metadata store with the space reserve behind it: a write refused with NO_SPACE releases the reserve
// (reserve.ts) and is tried once more. Safe because a refused write changed nothing (both adapters guarantee
// it: src/metadata/sqlite/sqlite-full-disk.test.ts). Reads pass through untouched.
import { isCofferError, ErrorCode } from '../errors.js';
import type { MetadataStore } from '../metadata/types.js';
import type { SpaceReserve } from './reserve.js';

export function releasingReserveWhenFull(store: MetadataStore, reserve: SpaceReserve): MetadataStore {
  if (reserve.bytes === 0) return store;
  return new Proxy(store, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop, target);
      if (typeof v !== 'function') return v;
      const fn = v as (...a: unknown[]) => unknown;
      return (...args: unknown[]): unknown => {
        const r = fn.apply(target, args);
        if (!(r instanceof Promise)) return r;
        return r.catch(async (e: unknown) => {
          if (isCofferError(e, ErrorCode.NO_SPACE) && (await reserve.release())) return fn.apply(target, args);
          throw e;
        });
      };
    },
  });
}
