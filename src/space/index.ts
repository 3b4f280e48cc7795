// Keeping a data directory usable when its disk fills up: the space reserve, headroom for chunk writes, and the
// metadata store that releases the reserve when a write is refused for lack of space.
export { DEFAULT_RESERVE_BYTES, RESERVE_FILE, SpaceReserve, spaceReserveBytes } from './reserve.js';
export { withHeadroom } from './headroom-chunks.js';
export { releasingReserveWhenFull } from './reserve-metadata.js';
