// FileBatcher against the real service: files of mixed sizes, sealed into pooled buffers, are copied into
// reused batch payloads (a file larger than a batch goes alone in its own), each file's buffer is given back
// once, and every file reads back whole and authenticated; concurrent adders never start a batch while a full one
// waits for a slot (the (BATCHES_IN_FLIGHT + 1) x BATCH_BYTES bound).
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BufferPool } from '../buffer-pool.js';
import { sealedSize } from '../crypto/index.js';
import { BATCHES_IN_FLIGHT, FileBatcher } from './file-batcher.js';
import { SmallFileReader } from './small-file-read.js';
import { fetchSmallFile, prepareSmallFile } from './small-file.js';
import { startClientTestEnv, type ClientTestEnv } from './test-env.js';
import type { VaultClient } from './vault-client.js';

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

  it('concurrent adders start no new batch while a full one waits for a slot: at most BATCHES_IN_FLIGHT + 1 batches are filled', async () => {
    const perBatch = 2;
    let open!: () => void;
    const held = new Promise<void>((r) => (open = r));
    let sent = 0;
    // the real service, answering only once the test lets it: the batches in flight stay in flight meanwhile
    const client = {
      putSmallFiles: async (files: Parameters<VaultClient['putSmallFiles']>[0]) => {
        sent++;
        await held;
        return env.client.putSmallFiles(files);
      },
    } as unknown as VaultClient;
    const batcher = new FileBatcher(client, perBatch, 1024 * 1024);
    const reader = new SmallFileReader({ buffers: new BufferPool(32 * 1024, 4) });
    const sealedBuffers = new BufferPool(sealedSize(32 * 1024), 64);
    await env.client.mkdir('/c', true);
    const count = 10 * perBatch;
    const data = Array.from({ length: count }, () => randomBytes(100));
    const prepared = await Promise.all(data.map(async (bytes, i) => {
      const local = path.join(env.work, `c${i}`);
      await writeFile(local, bytes);
      return prepareSmallFile(env.client, local, { path: `/c/c${i}`, keys: env.keys, reader, sealedBuffers });
    }));
    let copied = 0;
    const settled: string[] = [];
    const adds = prepared.map((p) => batcher.add({
      prepared: { ...p, release: () => { copied++; p.release?.(); } },
      settle: (o) => settled.push('error' in o ? o.error.message : o.node.path),
    }));
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(sent).toBe(BATCHES_IN_FLIGHT);
    // the batches in flight, and one full batch waiting for a slot; no file copied into a batch after that
    expect(copied).toBe((BATCHES_IN_FLIGHT + 1) * perBatch);
    open();
    await Promise.all(adds);
    await batcher.finish();
    expect(copied).toBe(count);
    expect(settled.sort()).toEqual(data.map((_, i) => `/c/c${i}`).sort());
  });
});
