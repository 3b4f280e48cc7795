// A free list of same-size buffers for the bulk data paths. A freshly allocated 8 MiB buffer costs about 2,000
// page faults, each one the kernel zeroing a page, every time: on these machines that is more than sealing
// the chunk. Reusing a handful of buffers makes sealing, opening and hashing run at the speed of the CPU.
//
// Rules for callers: release a buffer only when nothing can still read or write it (after the request that
// sent it has been answered, after the write that used it has completed). A buffer whose fate is unknown after
// an error is simply not released; the garbage collector reclaims it. Buffers may hold plaintext: `clear()`
// zeroes and drops every kept buffer when a transfer ends.
//
// Also here: what direct I/O needs of a buffer (alignedAllocator, alignUp, O_DIRECT), used by the chunk store
// (storage-backend/fs/direct-io.ts), the service's GET buffers and the download's output file.
import { constants } from 'node:fs';

export class BufferPool {
  private readonly free: Buffer[] = [];
  private readonly allocate: () => Buffer;

  /**
   * `size`: bytes per buffer; `keep`: how many released buffers are kept for reuse (more are dropped);
   * `allocate`: makes a new buffer of `size` bytes (default Buffer.allocUnsafeSlow; see alignedAllocator).
   */
  constructor(readonly size: number, readonly keep: number, allocate?: () => Buffer) {
    if (!Number.isSafeInteger(size) || size <= 0) throw new RangeError(`buffer size ${size} must be a positive integer`);
    if (!Number.isSafeInteger(keep) || keep < 0) throw new RangeError(`keep ${keep} must be a non-negative integer`);
    this.allocate = allocate ?? (() => Buffer.allocUnsafeSlow(size));
  }

  /** A kept buffer, or a new one (never fails for want of buffers: the pool bounds reuse, not use). */
  acquire(): Buffer {
    return this.free.pop() ?? this.allocate();
  }

  /** Gives a buffer back. Buffers of another size, surplus ones and double releases are ignored. */
  release(buf: Buffer): void {
    if (buf.byteLength !== this.size || this.free.length >= this.keep || this.free.includes(buf)) return;
    this.free.push(buf);
  }

  /** Zeroes and drops every kept buffer. */
  clear(): void {
    for (const buf of this.free) buf.fill(0);
    this.free.length = 0;
  }

  /** Buffers currently kept (for tests and metrics). */
  get kept(): number {
    return this.free.length;
  }
}

// the global exists in every Node; the project's type libraries (no DOM) just do not declare it
const WasmMemory = (globalThis as unknown as {
  WebAssembly: { Memory: new (descriptor: { initial: number; maximum: number; shared?: boolean }) => { buffer: ArrayBuffer | SharedArrayBuffer } };
}).WebAssembly.Memory;

/** Alignment of the buffers made by alignedAllocator: enough for O_DIRECT on any Linux block device. */
export const DIRECT_IO_ALIGNMENT = 4096;

/** The O_DIRECT open flag, 0 where the platform has none (callers then never try direct I/O). */
export const O_DIRECT: number = (constants as { O_DIRECT?: number }).O_DIRECT ?? 0;

/** `n` rounded up to the next multiple of DIRECT_IO_ALIGNMENT. */
export function alignUp(n: number): number {
  return Math.ceil(n / DIRECT_IO_ALIGNMENT) * DIRECT_IO_ALIGNMENT;
}

/**
 * Makes buffers of `size` bytes whose first byte sits on a 4 KiB boundary, as O_DIRECT needs (address, length
 * and file offset all aligned). Node has no aligned allocation, but a WebAssembly.Memory is page-aligned by
 * construction (V8 maps it on a 64 KiB boundary), so buffers are carved from memories of `perSlab` buffers
 * each: every memory reserves ≈ 10 GiB of address space (its guard region) but only touched pages use memory.
 * With `shared`, the memory is a SharedArrayBuffer, so worker threads can read the buffers in place
 * (src/hash-pool.ts hashes chunks read by the main thread without copying or transferring them).
 */
export function alignedAllocator(size: number, perSlab: number, options: { shared?: boolean } = {}): () => Buffer {
  if (!Number.isSafeInteger(size) || size <= 0) throw new RangeError(`buffer size ${size} must be a positive integer`);
  if (!Number.isSafeInteger(perSlab) || perSlab <= 0) throw new RangeError(`perSlab ${perSlab} must be a positive integer`);
  const stride = alignUp(size);
  const WASM_PAGE = 65536;
  let slab: ArrayBuffer | SharedArrayBuffer | undefined;
  let next = 0;
  return () => {
    if (slab === undefined || next === perSlab) {
      const pages = Math.ceil((stride * perSlab) / WASM_PAGE);
      // shared: a SharedArrayBuffer, so worker threads read the bytes in place (no copy, no transfer)
      slab = new WasmMemory({ initial: pages, maximum: pages, shared: options.shared === true }).buffer;
      next = 0;
    }
    return Buffer.from(slab, stride * next++, size);
  };
}
