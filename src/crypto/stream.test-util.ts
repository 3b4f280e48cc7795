// Test helpers for the crypto tests: reproducible pseudo-random bytes (fast enough for multi-MiB inputs),
// splitting a buffer into pieces, and draining async iterables.
import { createCipheriv, createHash } from 'node:crypto';

/** `n` reproducible pseudo-random bytes from an integer seed (AES-256-CTR keystream of SHA-256(seed)). */
export function pseudoRandomBytes(seed: number, n: number): Buffer {
  const key = createHash('sha256').update(`seed:${seed}`).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}

/** Cuts `data` at the given offsets (any order, duplicates and out-of-range values allowed) into pieces. */
export function splitAt(data: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => Math.max(0, Math.min(data.length, c))))].sort((a, b) => a - b);
  const pieces: Uint8Array[] = [];
  let prev = 0;
  for (const p of [...points, data.length]) {
    pieces.push(data.subarray(prev, p)); // empty pieces included on purpose
    prev = p;
  }
  return pieces;
}

export async function* fromArray<T>(items: T[]): AsyncGenerator<T> {
  for (const item of items) yield item;
}

export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** Drains an iterable of byte arrays; returns what was yielded before the error (if any) and the error. */
export async function drain(it: AsyncIterable<Uint8Array>): Promise<{ bytes: number; pieces: Uint8Array[]; error: unknown }> {
  const pieces: Uint8Array[] = [];
  let bytes = 0;
  try {
    for await (const p of it) {
      pieces.push(p);
      bytes += p.length;
    }
  } catch (error) {
    return { bytes, pieces, error };
  }
  return { bytes, pieces, error: undefined };
}
