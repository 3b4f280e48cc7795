// The joiner's held parts (multipart-join.ts HeldPart): a staged part's request pieces are kept by reference, not
// copied, and any byte range of the part is cut from them exactly, whatever the piece boundaries.
import { randomBytes, randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { heldFrom, heldRange, holdPart, releaseHeld } from './multipart-join.js';

async function* from(pieces: Uint8Array[]): AsyncGenerator<Uint8Array> {
  yield* pieces;
}

describe('held parts', () => {
  it('keep the request pieces by reference and pass every piece on unchanged', async () => {
    const pieces = [randomBytes(10), randomBytes(1), randomBytes(7000)];
    const held = holdPart(7011);
    expect(held).not.toBeNull();
    const passed: Uint8Array[] = [];
    for await (const p of heldFrom(from(pieces), held!)) passed.push(p);
    expect(passed).toEqual(pieces);
    for (const [i, p] of held!.pieces.entries()) expect(p).toBe(pieces[i]); // the same objects: nothing copied
    releaseHeld(held!);
  });

  it('cut any range exactly across piece boundaries', async () => {
    const size = 100_003;
    const whole = randomBytes(size);
    const pieces: Uint8Array[] = [];
    for (let at = 0; at < size;) {
      const n = Math.min(size - at, randomInt(0, 9000));
      pieces.push(whole.subarray(at, at + n));
      at += n;
    }
    const held = holdPart(size)!;
    for await (const p of heldFrom(from(pieces), held)) void p;
    const cases: Array<[number, number]> = [[0, size], [0, 0], [size, size], [1, size - 1], [8999, 9001]];
    for (let i = 0; i < 50; i++) {
      const a = randomInt(0, size + 1);
      cases.push([a, randomInt(a, size + 1)]);
    }
    for (const [a, b] of cases) expect(Buffer.concat(heldRange(held, a, b)).equals(whole.subarray(a, b)), `${a}..${b}`).toBe(true);
    releaseHeld(held);
  });

  it('keep nothing beyond the announced size (the store refuses a longer body)', async () => {
    const held = holdPart(5)!;
    for await (const p of heldFrom(from([Buffer.from('abc'), Buffer.from('defg')]), held)) void p;
    expect(Buffer.concat(held.pieces).toString()).toBe('abc');
    releaseHeld(held);
  });
});
