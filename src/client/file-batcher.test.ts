// FileBatcher against the real service: files of mixed sizes, sealed into pooled buffers, are copied into
// reused batch payloads (a file larger than a batch goes alone in its own), each file's buffer is given back
// once, and every file reads back whole and authenticated.
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BufferPool } from '../buffer-pool.js';
import { sealedSize } from '../crypto/index.js';
import { FileBatcher } from './file-batcher.js';
import { SmallFileReader } from './small-file-read.js';
import { fetchSmallFile, prepareSmallFile } from './small-file.js';
import { startClientTestEnv, type ClientTestEnv } from './test-env.js';

let env: ClientTestEnv;
beforeAll(async () => {
  env = await startClientTestEnv('coffer-batcher-');
});
afterAll(async () => env.close());

describe('FileBatcher with reused buffers', () => {
  it('sends mixed sizes in payload-sized batches (one larger than a batch alone) and every file reads back', async () => {
    const sizes = [1000, 0, 5000, 3000, 20_000, 7, 4000, 4000, 1, 9000];
    const maxBytes = 10_000; // about two files a batch; the 20,000-byte file is over it
    const batcher = new FileBatcher(env.client, 3, maxBytes);
    const reader = new SmallFileReader({ buffers: new BufferPool(32 * 1024, 4) });
    const sealedBuffers = new BufferPool(sealedSize(32 * 1024), 4);
    await env.client.mkdir('/b', true);
    const data = sizes.map((n) => randomBytes(n));
    let released = 0;
    const settled: string[] = [];
    for (const [i, bytes] of data.entries()) {
      const local = path.join(env.work, `f${i}`);
      await writeFile(local, bytes);
      const prepared = await prepareSmallFile(env.client, local, { path: `/b/f${i}`, keys: env.keys, reader, sealedBuffers });
      const release = prepared.release;
      expect(release).toBeTypeOf('function');
      await batcher.add({
        prepared: { ...prepared, release: () => { released++; release?.(); } },
        settle: (o) => settled.push('error' in o ? `f${i}: ${o.error.message}` : o.node.path),
      });
    }
    await batcher.finish();
    expect(released).toBe(sizes.length);
    expect(settled.sort()).toEqual(sizes.map((_, i) => `/b/f${i}`).sort());
    for (const [i, bytes] of data.entries()) {
      const got = await fetchSmallFile(env.client, `/b/f${i}`, env.keys);
      expect(got.plaintext?.equals(bytes)).toBe(true);
    }
  });
});
