// Sealing a source of known size that can be read at a position (a regular file): the bulk path of `coffer put`.
// Each chunk's plaintext is read (8 MiB reads at the chunk's own offset) straight into the pooled buffer it is
// sealed in, at HEADER_SIZE, and sealed there in place (sealChunkInto): no plaintext buffer and no copy between
// the read and the cipher. The next chunk's read is started before a chunk is sealed, so the disk (libuv's thread
// pool) works while the cipher holds the event loop. Memory: one sealed buffer being read, one being sealed, then
// whatever the consumer keeps (it gives each back with `release`).
// The size is what the caller stat'ed; FINAL goes on the chunk that size makes the last. A source that turns out
// shorter (a read ends early) or longer (a byte is readable at `size`) fails the iteration with CONFLICT, so a
// file changed while read is never sealed as a whole blob of another size.
import type { BufferPool } from '../buffer-pool.js';
import { CofferError, ErrorCode } from '../errors.js';
import { HEADER_SIZE, MAX_SEALED_SIZE, expectedChunkLayout } from './chunk-header.js';
import { checkDek, sealChunkInto } from './chunk.js';
import type { DataKey } from './data-key.js';
import type { SealStreamParams, SealedChunk } from './chunker.js';

/** Reads up to `length` bytes at `position` into `buf` at `offset`; resolves to the bytes read (0 at the end). */
export type ReadAt = (buf: Uint8Array, offset: number, length: number, position: number) => Promise<number>;

/**
 * Seals the `size` bytes `read` gives as the chunks of one blob (all of it: `params.firstIndex` 0, FINAL on the
 * last), in index order, each into a buffer from `buffers` (at least MAX_SEALED_SIZE bytes).
 * Throws (synchronously) KEY_INVALID, INVALID_ARGUMENT (bad size, blob id, key generation, pool, or a partial
 * blob asked for); the iteration throws CONFLICT when the source is shorter or longer than `size`, and passes on
 * the reader's errors. Buffers holding plaintext when the iteration stops early are zeroed before they go back.
 */
export function sealReader(read: ReadAt, size: number, dek: DataKey, params: SealStreamParams, buffers: BufferPool): AsyncIterable<SealedChunk> {
  checkDek(dek);
  const layout = expectedChunkLayout(size);
  if ((params.firstIndex ?? 0) !== 0 || params.endsBlob === false) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'sealReader seals whole blobs only');
  if (buffers.size < MAX_SEALED_SIZE) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `sealReader buffers must hold ${MAX_SEALED_SIZE} bytes, not ${buffers.size}`);
  const { blobId, keyGeneration } = params;
  // the header's own checks (blob id, key generation) run on the first seal; make a bad one fail here already
  sealChunkInto(dek, { blobId, index: 0, keyGeneration, final: true }, new Uint8Array(0), Buffer.allocUnsafe(HEADER_SIZE + 16));

  /** Chunk `index`'s plaintext read into a fresh pooled buffer at HEADER_SIZE. */
  const readChunk = async (index: number, buf: Buffer): Promise<number> => {
    const length = layout.plaintextLengthOf(index);
    const start = layout.offsetOf(index);
    let got = 0;
    while (got < length) {
      const n = await read(buf, HEADER_SIZE + got, length - got, start + got);
      if (n === 0) throw new CofferError(ErrorCode.CONFLICT, `source ended at byte ${start + got}, before its size ${size}: it changed while it was read`);
      got += n;
    }
    return length;
  };
  /** Resolves when nothing follows byte `size`; CONFLICT otherwise. */
  const checkEnd = async (): Promise<void> => {
    const probe = Buffer.allocUnsafe(1);
    if ((await read(probe, 0, 1, size)) !== 0) throw new CofferError(ErrorCode.CONFLICT, `source is longer than its size ${size}: it changed while it was read`);
  };

  return (async function* seal(): AsyncGenerator<SealedChunk> {
    type Read = { buf: Buffer; done: Promise<number> };
    let ahead: Read | null = null; // the read in flight (its buffer is ours until it settles and is handed on)
    let holding: Buffer | null = null; // a buffer with plaintext in it, not yet sealed
    const start = (index: number): void => {
      const buf = buffers.acquire();
      const done = readChunk(index, buf);
      done.catch(() => undefined); // awaited below; the failure of an abandoned read-ahead is no one's to report
      ahead = { buf, done };
    };
    try {
      start(0);
      for (let index = 0; index < layout.chunkCount; index++) {
        const current = ahead as unknown as Read;
        ahead = null;
        holding = current.buf;
        const length = await current.done;
        const final = index === layout.chunkCount - 1;
        if (!final) start(index + 1); // read the next chunk while this one is sealed and sent
        else await checkEnd(); // before the FINAL chunk is handed out
        const bytes = sealChunkInto(dek, { blobId, index, keyGeneration, final }, current.buf.subarray(HEADER_SIZE, HEADER_SIZE + length), current.buf);
        holding = null;
        yield { index, final, plaintextLength: length, bytes, release: () => buffers.release(current.buf) };
      }
    } finally {
      // stopped early or failed: wipe what holds plaintext; a read in flight is waited for first (its buffer
      // must not be written after it is wiped and reused)
      const left = ahead as Read | null;
      if (left !== null) await left.done.catch(() => undefined);
      for (const buf of [holding, left?.buf]) {
        if (!buf) continue;
        buf.fill(0);
        buffers.release(buf);
      }
    }
  })();
}
