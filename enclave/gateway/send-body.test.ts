// webBody (send-body.ts): the fallback body for callers with no Node response. The reader reuses one buffer for
// every piece, as FileOps' pooled chunk buffers do, so a body that did not copy would come out wrong.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { webBody, type BodyOutcome, type BodyReader } from './send-body.js';

/** Yields `data` in pieces of `size` bytes, each written into the same reused buffer (wiped after the sink settles). */
function reusingReader(data: Buffer, size: number, reads: { count: number }): BodyReader {
  return async (sink) => {
    reads.count++;
    const buf = Buffer.alloc(size);
    for (let off = 0; off < data.length; off += size) {
      const n = data.copy(buf, 0, off, Math.min(off + size, data.length));
      await sink(buf.subarray(0, n));
      buf.fill(0);
    }
  };
}

describe('webBody', () => {
  it('copies every piece out of the reused buffer (1 MiB slices), reads nothing before the first pull, ends with done', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const reads = { count: 0 };
    const outcomes: BodyOutcome[] = [];
    const body = webBody(reusingReader(data, 2 * 1024 * 1024, reads), (o) => outcomes.push(o));
    await new Promise((r) => setTimeout(r, 20));
    expect(reads.count).toBe(0);
    const got = Buffer.from(await new Response(body).arrayBuffer());
    expect(got.equals(data)).toBe(true);
    expect(reads.count).toBe(1);
    expect(outcomes).toEqual([{ started: true }]);
  });

  it('a cancel stops the reader (done with its error); a cancel before any pull reads nothing and is done', async () => {
    const data = randomBytes(4 * 1024 * 1024);
    const outcomes: BodyOutcome[] = [];
    const reads = { count: 0 };
    const body = webBody(reusingReader(data, 1024 * 1024, reads), (o) => outcomes.push(o));
    const reader = body.getReader();
    expect((await reader.read()).value?.length).toBe(1024 * 1024);
    await reader.cancel();
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]?.error).toBeDefined();

    const never: BodyOutcome[] = [];
    const reads2 = { count: 0 };
    await webBody(reusingReader(data, 1024 * 1024, reads2), (o) => never.push(o)).cancel();
    expect([reads2.count, never]).toEqual([0, [{ started: false }]]);
  });

  it('a reader that fails errors the stream', async () => {
    const outcomes: BodyOutcome[] = [];
    const body = webBody(async (sink) => {
      await sink(Buffer.from('ok'));
      throw new Error('bad chunk');
    }, (o) => outcomes.push(o));
    await expect(new Response(body).arrayBuffer()).rejects.toThrow('bad chunk');
    expect(outcomes[0]?.error).toBeInstanceOf(Error);
  });
});
