// Headroom for chunk writes: while the space reserve is released (the disk filled up), a new chunk is refused
// with NO_SPACE unless it leaves the reserve's size of space free, so that the room a full disk got back goes
// to removes and GC, not to the next upload. Everything else passes through unchanged.
import type { ChunkStore, PutOptions } from '../../storage-backend/types.js';
import { CofferError, ErrorCode } from '../errors.js';
import type { SpaceReserve } from './reserve.js';

/** The ChunkStore with puts refused below the headroom (see above). */
export function withHeadroom(chunks: ChunkStore, reserve: SpaceReserve): ChunkStore {
  if (reserve.bytes === 0) return chunks;
  const put: ChunkStore['put'] = async (ref, data, options?: PutOptions) => {
    if (!reserve.held) {
      const free = await reserve.free();
      const need = (options?.expectedSize ?? options?.maxBytes ?? 0) + reserve.bytes;
      if (free < need) {
        throw new CofferError(ErrorCode.NO_SPACE, 'the storage is full: new chunks are refused until space comes back (remove files, or drop unfinished uploads with coffer uploads abort)');
      }
    }
    return chunks.put(ref, data, options);
  };
  const putPack: ChunkStore['putPack'] = chunks.putPack && (async (list, options) => {
    if (!reserve.held && (await reserve.free()) < list.reduce((n, c) => n + c.data.byteLength, 0) + reserve.bytes) {
      throw new CofferError(ErrorCode.NO_SPACE, 'the storage is full: new chunks are refused until space comes back (remove files, or drop unfinished uploads with coffer uploads abort)');
    }
    return chunks.putPack!(list, options);
  });
  return new Proxy(chunks, {
    get(target, prop) {
      if (prop === 'put') return put;
      if (prop === 'putPack') return putPack;
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
