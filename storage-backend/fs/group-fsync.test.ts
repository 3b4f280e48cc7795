// Group commit of directory fsyncs (group-fsync.ts): a caller is never served by an fsync that began before it
// asked, callers that arrive together share one fsync, errors reach every caller an fsync served; and in the
// real store, many concurrent puts into one directory need far fewer directory fsyncs than puts.
import { randomBytes } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { openFsChunkStore } from './index.js';
import { GroupFsync } from './group-fsync.js';
import { tempRoot } from './test-util.js';

/** A real directory fsync that the test can hold open, recording when each one starts and ends. */
function heldFsync(): { group: GroupFsync; log: string[]; release(): void; started(): number } {
  const log: string[] = [];
  let releases: Array<() => void> = [];
  let n = 0;
  const group = new GroupFsync(async (d) => {
    const id = ++n;
    log.push(`start ${id}`);
    await new Promise<void>((r) => releases.push(r));
    const h = await open(d, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
    log.push(`end ${id}`);
  });
  return {
    group, log,
    release() {
      const r = releases;
      releases = [];
      for (const f of r) f();
    },
    started: () => n,
  };
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 5));

describe('GroupFsync', () => {
  it('serves a caller only with an fsync begun after it asked, and shares that fsync among the callers waiting', async () => {
    const dir = await tempRoot();
    try {
      const h = heldFsync();
      const done: string[] = [];
      const a = h.group.sync(dir).then(() => done.push(`a after ${h.log.at(-1)}`));
      await tick();
      expect(h.started()).toBe(1);
      // b and c arrive while fsync 1 runs: it may have begun before their changes, so it must not serve them
      const b = h.group.sync(dir).then(() => done.push(`b after ${h.log.at(-1)}`));
      const c = h.group.sync(dir).then(() => done.push(`c after ${h.log.at(-1)}`));
      await tick();
      expect(h.started()).toBe(1);
      h.release();
      await a;
      expect(done).toEqual(['a after end 1']);
      await tick();
      expect(h.started()).toBe(2); // one more fsync, for both b and c
      h.release();
      await Promise.all([b, c]);
      expect(done).toEqual(['a after end 1', 'b after end 2', 'c after end 2']);
      expect(h.log).toEqual(['start 1', 'end 1', 'start 2', 'end 2']);
      expect(h.group.stats).toEqual({ fsyncs: 2, callers: 3 });
      // nothing running: the next caller gets its own fsync at once
      const d = h.group.sync(dir);
      await tick();
      expect(h.started()).toBe(3);
      h.release();
      await d;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('gives every caller an fsync served the error of that fsync, and the next caller a fresh one', async () => {
    let fail = true;
    const group = new GroupFsync(async () => {
      await tick();
      if (fail) throw Object.assign(new Error('EIO'), { code: 'EIO' });
    });
    const first = group.sync('/x');
    const second = group.sync('/x');
    const third = group.sync('/x');
    await expect(first).rejects.toThrow('EIO');
    await expect(second).rejects.toThrow('EIO');
    await expect(third).rejects.toThrow('EIO');
    fail = false;
    await expect(group.sync('/x')).resolves.toBeUndefined();
  });
});

describe('fs chunk store: batched directory fsyncs', () => {
  it('64 concurrent puts into one blob directory: every chunk stored and readable, with fewer directory fsyncs than puts', async () => {
    const root = await tempRoot();
    const store = await openFsChunkStore({ root, concurrency: 16 });
    try {
      const blobId = randomBytes(16).toString('hex');
      const chunks = Array.from({ length: 64 }, () => randomBytes(1000 + Math.floor(Math.random() * 1000)));
      const dirFsyncsBefore = store.directoryFsyncs.fsyncs;
      await Promise.all(chunks.map((c, index) => store.put({ blobId, index }, (async function* () { yield c; })())));
      const stats = store.directoryFsyncs;
      expect(stats.callers).toBeGreaterThanOrEqual(64);
      expect(stats.fsyncs - dirFsyncsBefore).toBeLessThan(64);
      expect(await store.list(blobId)).toEqual(chunks.map((_, i) => i));
      const buf = Buffer.alloc(4096);
      for (const [index, c] of chunks.entries()) expect((await store.readInto({ blobId, index }, buf)).equals(c)).toBe(true);
    } finally {
      await store.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
