// Pack files on disk (docs/format.md "Pack file v2"): the layout and bytes of a pack, its index rebuilt from the
// file alone by a fresh store (and by another process's store: a replica on a shared filesystem), a damaged
// pack never half-used, and a pack removed once none of its chunks is alive.
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, readlink, realpath, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { expectCode, newBlobId } from '../contract.case.js';
import { PACK_ENTRY_SIZE, PACK_TRAILER_SIZE } from '../pack-format.js';
import { openFsChunkStore, type FsChunkStore } from './index.js';
import { MISS_RESCAN_MS } from './packs.js';
import { PACK_HANDLES_MAX } from './pack-handles.js';
import { withTempStore } from './test-util.js';

const chunksOf = (n: number): Array<{ ref: { blobId: string; index: number }; data: Buffer }> =>
  Array.from({ length: n }, (_, i) => ({ ref: { blobId: newBlobId(), index: i % 3 }, data: randomBytes(64 + i * 31) }));

describe('FsChunkStore packs on disk', () => {
  let root: string;
  let store: FsChunkStore;
  withTempStore((t) => ({ root, store } = t));

  it('writes packs/<id[0:2]>/<id>: the chunks back to back, 32-byte entries, the 48-byte trailer', async () => {
    const chunks = chunksOf(3);
    const { packId } = await store.putPack(chunks);
    expect(await readdir(join(root, 'packs'))).toEqual([packId.slice(0, 2)]);
    expect(await readdir(join(root, 'packs', packId.slice(0, 2)))).toEqual([packId]);
    const bytes = await readFile(join(root, 'packs', packId.slice(0, 2), packId));
    const body = Buffer.concat(chunks.map((c) => c.data));
    expect(bytes.length).toBe(body.length + 3 * PACK_ENTRY_SIZE + PACK_TRAILER_SIZE);
    expect(bytes.subarray(0, body.length)).toEqual(body);
    let offset = 0;
    chunks.forEach((c, i) => {
      const e = bytes.subarray(body.length + i * 32, body.length + (i + 1) * 32);
      expect(e.toString('hex', 0, 16)).toBe(c.ref.blobId);
      expect(e.readUInt32BE(16)).toBe(c.ref.index);
      expect(Number(e.readBigUInt64BE(20))).toBe(offset);
      expect(e.readUInt32BE(28)).toBe(c.data.length);
      offset += c.data.length;
    });
    const t = bytes.subarray(bytes.length - 48);
    expect(t.subarray(0, 16).toString('hex')).toBe(`43465032020000000000000300000000`);
    const digest = createHash('sha256').update(bytes.subarray(body.length, bytes.length - 32)).digest();
    expect(t.subarray(16)).toEqual(digest);
  });

  it('a fresh store (or another process) rebuilds the index from the packs alone', async () => {
    const chunks = chunksOf(20);
    await store.putPack(chunks);
    const other = await openFsChunkStore({ root });
    try {
      for (const c of chunks) expect(await other.readInto(c.ref, Buffer.alloc(c.data.length))).toEqual(c.data);
      // written after `other` opened: found by the rescan on a miss
      const later = chunksOf(2);
      await store.putPack(later);
      expect(await other.stat(later[1]!.ref)).toEqual({ size: later[1]!.data.length });
    } finally {
      await other.close();
    }
  });

  it('a damaged pack is not used at all; other packs stay readable', async () => {
    const good = chunksOf(2);
    const bad = chunksOf(2);
    await store.putPack(good);
    const { packId } = await store.putPack(bad);
    const path = join(root, 'packs', packId.slice(0, 2), packId);
    const bytes = await readFile(path);
    bytes[bytes.length - 60]! ^= 1; // inside the index: the checksum no longer matches
    await writeFile(path, bytes);
    const other = await openFsChunkStore({ root });
    try {
      for (const c of bad) await expectCode(other.get(c.ref), 'NOT_FOUND');
      for (const c of good) expect(await other.readInto(c.ref, Buffer.alloc(c.data.length))).toEqual(c.data);
    } finally {
      await other.close();
    }
  });

  it('removes a pack once none of its chunks is alive, and a partly dead pack keeps the rest', async () => {
    const chunks = chunksOf(3);
    const { packId } = await store.putPack(chunks);
    const dir = join(root, 'packs', packId.slice(0, 2));
    await store.deleteBlob(chunks[0]!.ref.blobId);
    expect(await readdir(dir)).toEqual([packId, `${packId}.dead`]); // its dead marks (pack-marks.test.ts)
    await store.deleteBlob(chunks[1]!.ref.blobId);
    await store.delete(chunks[2]!.ref);
    expect(await readdir(dir)).toEqual([]);
    const other = await openFsChunkStore({ root });
    try {
      expect(await other.stat(chunks[2]!.ref)).toBeNull();
    } finally {
      await other.close();
    }
  });

  it('a blob\'s chunks side by side, interleaved with another blob\'s, out of order or across packs: each found; a deleted middle one splits the rest', async () => {
    const a = newBlobId();
    const b = newBlobId();
    const at = (blobId: string, index: number): { ref: { blobId: string; index: number }; data: Buffer } => ({ ref: { blobId, index }, data: randomBytes(64 + index * 7 + (blobId === a ? 0 : 3)) });
    const first = [at(a, 0), at(a, 1), at(a, 2), at(b, 0), at(a, 5), at(a, 3), at(b, 1)];
    const second = [at(a, 4), at(b, 2)];
    const { packId } = await store.putPack(first);
    await store.putPack(second);
    const all = [...first, ...second];
    const readAll = async (s: FsChunkStore, chunks: typeof all): Promise<void> => {
      for (const c of chunks) expect(await s.readInto(c.ref, Buffer.alloc(c.data.length))).toEqual(c.data);
    };
    const other = await openFsChunkStore({ root });
    try {
      for (const s of [store, other]) {
        await readAll(s, all);
        expect(await s.list(a)).toEqual([0, 1, 2, 3, 4, 5]);
        expect(await s.list(b)).toEqual([0, 1, 2]);
      }
      await other.delete({ blobId: a, index: 1 });
      expect(await other.list(a)).toEqual([0, 2, 3, 4, 5]);
      expect(await other.stat({ blobId: a, index: 1 })).toBeNull();
      await readAll(other, all.filter((c) => !(c.ref.blobId === a && c.ref.index === 1)));
      await other.deleteBlob(a);
      expect(await other.list(a)).toEqual([]);
      await readAll(other, all.filter((c) => c.ref.blobId === b));
      await other.delete({ blobId: b, index: 0 });
      await other.delete({ blobId: b, index: 1 });
      expect(await readdir(join(root, 'packs', packId.slice(0, 2)))).not.toContain(packId);
      expect(await other.list(b)).toEqual([2]);
    } finally {
      await other.close();
    }
  });

  it('sweeps temporary pack files left by a crash', async () => {
    await store.putPack(chunksOf(1));
    const [fan] = await readdir(join(root, 'packs'));
    await writeFile(join(root, 'packs', fan!, '.tmp-pack-0123456789abcdef'), randomBytes(100));
    expect(await store.sweepTemporary(60_000)).toBe(0);
    expect(await store.sweepTemporary(0)).toBe(1);
  });

  it('reading and stat-ing chunk files (v1) never lists packs/', async () => {
    await store.putPack(chunksOf(2)); // packs exist, so a rescan would have something to list
    const ref = { blobId: newBlobId(), index: 0 };
    const data = randomBytes(5000);
    await store.put(ref, Readable.from([data]));
    const before = store.packs.scans;
    for (let i = 0; i < 20; i++) {
      expect(await store.readInto(ref, Buffer.alloc(data.length))).toEqual(data);
      expect(await store.stat(ref)).toEqual({ size: data.length });
      await (await store.get(ref)).toArray();
      // an absent chunk of a blob with chunk files: not found without a rescan either
      await expectCode(store.get({ ...ref, index: 1 }), 'NOT_FOUND');
    }
    expect(store.packs.scans).toBe(before);
  });

  it('misses rescan at most once per MISS_RESCAN_MS, concurrent misses sharing one rescan', async () => {
    const before = store.packs.scans;
    const absent = (): { blobId: string; index: number } => ({ blobId: newBlobId(), index: 0 });
    // 200 concurrent misses: one rescan now and one for those that arrived while it ran
    await Promise.all(Array.from({ length: 200 }, () => store.stat(absent())));
    expect(store.packs.scans - before).toBeGreaterThanOrEqual(1);
    expect(store.packs.scans - before).toBeLessThanOrEqual(2);
    // a client asking for absent chunks in a loop: bounded by elapsed time, not by the number of requests
    const start = store.packs.scans;
    const t0 = Date.now();
    let asked = 0;
    while (Date.now() - t0 < 3 * MISS_RESCAN_MS) {
      await Promise.all([store.stat(absent()), expectCode(store.get(absent()), 'NOT_FOUND'), store.stat({ blobId: '0'.repeat(32), index: 0 })]);
      asked += 3;
    }
    const elapsed = Date.now() - t0;
    expect(store.packs.scans - start).toBeLessThanOrEqual(Math.floor(elapsed / MISS_RESCAN_MS) + 1);
    expect(asked).toBeGreaterThan(store.packs.scans - start);
  });

  it('statKnown never rescans: known packs and chunk files as stat says, a pack written elsewhere since not yet', async () => {
    const mine = chunksOf(3);
    await store.putPack(mine);
    const file = { ref: { blobId: newBlobId(), index: 0 }, data: randomBytes(5000) };
    await store.put(file.ref, Readable.from([file.data]));
    const other = await openFsChunkStore({ root });
    try {
      const elsewhere = chunksOf(1);
      await other.putPack(elsewhere); // this store has not scanned since
      const before = store.packs.scans;
      const t0 = Date.now();
      // misses one after another, as an incremental backup asks of its new chunks: no rescan, no wait
      for (let i = 0; i < 20; i++) expect(await store.statKnown({ blobId: newBlobId(), index: 0 })).toBeNull();
      for (const c of [...mine, file]) expect(await store.statKnown(c.ref)).toEqual({ size: c.data.length });
      expect(await store.statKnown(elsewhere[0]!.ref)).toBeNull();
      expect(store.packs.scans).toBe(before);
      expect(Date.now() - t0).toBeLessThan(10 * MISS_RESCAN_MS); // 20 misses waited 20 x MISS_RESCAN_MS before
      // stat does look for it (a rescan)
      expect(await store.stat(elsewhere[0]!.ref)).toEqual({ size: elsewhere[0]!.data.length });
      expect(store.packs.scans).toBeGreaterThan(before);
      expect(await store.statKnown(elsewhere[0]!.ref)).toEqual({ size: elsewhere[0]!.data.length });
      await expectCode(store.statKnown({ blobId: 'XYZ', index: 0 }), 'INVALID_ARGUMENT');
    } finally {
      await other.close();
    }
  });

  it('a miss is still served by a rescan begun after it: a pack written elsewhere just before is found', async () => {
    const other = await openFsChunkStore({ root });
    try {
      for (let i = 0; i < 3; i++) {
        await other.stat({ blobId: newBlobId(), index: 0 }); // a miss just before: the next rescan must wait
        const later = chunksOf(1);
        await store.putPack(later);
        expect(await other.stat(later[0]!.ref)).toEqual({ size: later[0]!.data.length });
      }
    } finally {
      await other.close();
    }
  });
});

describe('FsChunkStore pack read handles (pack-handles.ts)', () => {
  let root: string;
  let store: FsChunkStore;
  withTempStore((t) => ({ root, store } = t));

  /** This process's open file descriptors that are pack files. */
  const openPacks = async (): Promise<string[]> => {
    const out: string[] = [];
    const real = await realpath(root);
    for (const fd of await readdir('/proc/self/fd')) {
      const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
      if (target.startsWith(`${real}/packs/`)) out.push(target);
    }
    return [...new Set(out)];
  };

  it('the chunks of one pack are read through one handle, kept open: reads go on after the pack is renamed away', async () => {
    const chunks = chunksOf(50);
    const { packId } = await store.putPack(chunks);
    const into = Buffer.alloc(4096);
    expect(Buffer.from(await store.readInto(chunks[0]!.ref, into))).toEqual(chunks[0]!.data);
    expect(store.packs.handles.size).toBe(1);
    // a second open would fail now: the remaining reads use the handle the first one opened
    const path = join(root, 'packs', packId.slice(0, 2), packId);
    await rename(path, `${path}.away`);
    for (const c of chunks.slice(1)) expect(Buffer.from(await store.readInto(c.ref, into))).toEqual(c.data);
    expect(await openPacks()).toHaveLength(1);
    await rename(`${path}.away`, path);
  });

  it('a pack whose chunks are all deleted has its handle closed; at most PACK_HANDLES_MAX packs are held open; close() closes them all', async () => {
    const packs: Array<ReturnType<typeof chunksOf>> = [];
    for (let i = 0; i < PACK_HANDLES_MAX + 4; i++) {
      const chunks = chunksOf(2);
      await store.putPack(chunks);
      packs.push(chunks);
    }
    const into = Buffer.alloc(4096);
    for (const chunks of packs) for (const c of chunks) expect(Buffer.from(await store.readInto(c.ref, into))).toEqual(c.data);
    expect(store.packs.handles.size).toBe(PACK_HANDLES_MAX);
    await new Promise((r) => setTimeout(r, 50)); // closes of evicted handles are not awaited by the reads
    expect((await openPacks()).length).toBe(PACK_HANDLES_MAX);
    const last = packs.at(-1)!;
    for (const c of last) await store.delete(c.ref);
    expect(store.packs.handles.size).toBe(PACK_HANDLES_MAX - 1);
    await new Promise((r) => setTimeout(r, 50));
    expect((await openPacks()).length).toBe(PACK_HANDLES_MAX - 1);
    await expectCode(store.readInto(last[0]!.ref, into), 'NOT_FOUND');
    await store.close();
    expect(await openPacks()).toEqual([]);
  });
});
