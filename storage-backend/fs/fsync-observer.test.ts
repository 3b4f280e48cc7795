// The fsync observer (for the fsync-latency metric): told about the file and the directory fsync of every put,
// and unable to break a write by throwing.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openChunkStore } from '../index.js';

describe('fs chunk store onFsync', () => {
  it('reports a file and a directory fsync per put, and a throwing observer does not fail the put', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'coffer-fsync-'));
    const seen: string[] = [];
    const store = await openChunkStore({
      kind: 'fs',
      root,
      onFsync: (seconds, what) => {
        expect(seconds).toBeGreaterThanOrEqual(0);
        seen.push(what);
        throw new Error('observer bug');
      },
    });
    try {
      const blobId = 'ab'.repeat(16);
      const r = await store.put({ blobId, index: 0 }, (async function* () { yield new Uint8Array(100); })());
      expect(r.size).toBe(100);
      expect(seen).toEqual(['file', 'directory']);
      await expect(openChunkStore({ kind: 'fs', root, onFsync: 'no' as unknown as () => void })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    } finally {
      await store.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
