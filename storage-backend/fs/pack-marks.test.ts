// Pack dead marks (docs/format.md "Pack dead marks v1"; ./pack-marks.ts): the bytes of a mark file, deletions of
// packed chunks that hold across a restart (a second pass deletes and counts nothing), a writer killed between
// marking and deleting (or anywhere in a run of deletions) never losing a live chunk, and torn, garbled or
// foreign mark files ignored, never making a live chunk dead.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, rm, truncate, writeFile, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newBlobId } from '../contract.case.js';
import { openFsChunkStore, type FsChunkStore } from './index.js';
import { decodePackMarks, encodePackMarks } from './pack-marks.js';
import { CHILD, REPO, sha256, tempRoot } from './test-util.js';

type Ref = { blobId: string; index: number };
const chunksOf = (n: number): Array<{ ref: Ref; data: Buffer }> =>
  Array.from({ length: n }, (_, i) => ({ ref: { blobId: newBlobId(), index: 0 }, data: randomBytes(64 + i * 17) }));

async function listed(store: FsChunkStore): Promise<string[]> {
  const out: string[] = [];
  for await (const id of store.listBlobs()) out.push(id);
  return out.sort();
}

describe('pack dead marks', () => {
  let root: string;
  let store: FsChunkStore;
  beforeEach(async () => {
    root = await tempRoot();
    store = await openFsChunkStore({ root });
  });
  afterEach(async () => {
    await store.close();
    await rm(root, { recursive: true, force: true });
  });

  const packFile = (packId: string): string => join(root, 'packs', packId.slice(0, 2), packId);

  it('writes <pack>.dead: CFD1, version 1, the pack id, n, the dead count, the bitmap, SHA-256 of all before', async () => {
    const chunks = chunksOf(10);
    const { packId } = await store.putPack(chunks);
    await store.deleteBlob(chunks[0]!.ref.blobId);
    await store.delete(chunks[9]!.ref);
    const bytes = await readFile(`${packFile(packId)}.dead`);
    expect(bytes.subarray(0, 32).toString('hex')).toBe(`434644310100000${'0'}${packId}0000000a00000002`);
    expect(bytes.subarray(32, 34).toString('hex')).toBe('0102'); // entries 0 and 9, least significant bit first
    expect(bytes.subarray(34)).toEqual(createHash('sha256').update(bytes.subarray(0, 34)).digest());
    expect(bytes.length).toBe(66);
    expect(await readdir(join(root, 'packs', packId.slice(0, 2)))).toEqual([packId, `${packId}.dead`].sort());
  });

  it('deletions hold across a restart: a fresh store lists, counts and deletes none of them again', async () => {
    const chunks = chunksOf(10);
    const { packId } = await store.putPack(chunks);
    for (const c of chunks.slice(0, 4)) await store.deleteBlob(c.ref.blobId);
    const fresh = await openFsChunkStore({ root });
    try {
      expect(await listed(fresh)).toEqual(chunks.slice(4).map((c) => c.ref.blobId).sort());
      for (const c of chunks.slice(0, 4)) {
        expect(await fresh.stat(c.ref)).toBeNull();
        expect(await fresh.list(c.ref.blobId)).toEqual([]);
      }
      for (const c of chunks.slice(4)) expect(await fresh.readInto(c.ref, Buffer.alloc(c.data.length))).toEqual(c.data);
      const before = await readFile(`${packFile(packId)}.dead`);
      for (const c of chunks.slice(0, 4)) await fresh.deleteBlob(c.ref.blobId); // nothing to do: the file stays as it was
      expect(await readFile(`${packFile(packId)}.dead`)).toEqual(before);
      for (const c of chunks.slice(4)) await fresh.deleteBlob(c.ref.blobId);
      expect(await readdir(join(root, 'packs', packId.slice(0, 2)))).toEqual([]); // the pack, then its marks
    } finally {
      await fresh.close();
    }
  });

  it('a torn, garbled or foreign mark file is ignored (every chunk of the pack live), and the next deletion rewrites it', async () => {
    const chunks = chunksOf(12);
    const other = chunksOf(3);
    const { packId } = await store.putPack(chunks);
    const { packId: otherId } = await store.putPack(other);
    await store.deleteBlob(chunks[0]!.ref.blobId);
    await store.deleteBlob(other[0]!.ref.blobId);
    const marks = `${packFile(packId)}.dead`;
    const good = await readFile(marks);
    const damage: Array<[string, () => Promise<void>]> = [
      ['torn', () => truncate(marks, 40)],
      ['empty', () => truncate(marks, 0)],
      ['a live entry flipped to dead (checksum)', async () => writeFile(marks, Buffer.from(good).fill(0xff, 32, 33))],
      ['another pack\'s marks', () => copyFile(`${packFile(otherId)}.dead`, marks)],
      ['bits past the last entry, checksum recomputed', async () => {
        const b = Buffer.from(good);
        b[33] = 0xf0;
        b.writeUInt32BE(5, 28);
        createHash('sha256').update(b.subarray(0, 34)).digest().copy(b, 34);
        await writeFile(marks, b);
      }],
    ];
    for (const [what, harm] of damage) {
      await harm();
      const fresh = await openFsChunkStore({ root });
      try {
        expect(fresh.packs.marks.ignored, what).toBe(1);
        // chunk 0 is back (garbage again: the next prune or GC deletes it); no live chunk went missing
        for (const c of chunks) expect(await fresh.readInto(c.ref, Buffer.alloc(c.data.length)), what).toEqual(c.data);
        await fresh.deleteBlob(chunks[0]!.ref.blobId);
        expect(decodePackMarks(await readFile(marks), packId, 12), what).toEqual({ bitmap: new Uint8Array([1, 0]) });
      } finally {
        await fresh.close();
      }
    }
  });

  it('on the run index (one run per blob): a run split by deleting chunks in its middle marks exactly those entries', async () => {
    // entries 0..5: blob a's chunks 0..3 (one run), then blob b's chunks 0..1
    const a = newBlobId();
    const b = newBlobId();
    const chunks = [0, 1, 2, 3].map((index) => ({ ref: { blobId: a, index }, data: randomBytes(70 + index) }));
    chunks.push(...[0, 1].map((index) => ({ ref: { blobId: b, index }, data: randomBytes(90 + index) })));
    const { packId } = await store.putPack(chunks);
    await store.delete({ blobId: a, index: 1 }); // splits a's run into 0 and 2..3
    await store.delete({ blobId: a, index: 3 }); // shortens the second part
    const marks = `${packFile(packId)}.dead`;
    expect(decodePackMarks(await readFile(marks), packId, 6)).toEqual({ bitmap: new Uint8Array([0b1010]) });
    await store.deleteBlob(b);
    expect(decodePackMarks(await readFile(marks), packId, 6)).toEqual({ bitmap: new Uint8Array([0b111010]) });
    const fresh = await openFsChunkStore({ root });
    try {
      expect(await fresh.list(a)).toEqual([0, 2]);
      expect(await fresh.list(b)).toEqual([]);
      for (const c of [chunks[0]!, chunks[2]!]) expect(await fresh.readInto(c.ref, Buffer.alloc(c.data.length))).toEqual(c.data);
      await fresh.deleteBlob(a);
      expect(await readdir(join(root, 'packs', packId.slice(0, 2)))).toEqual([]);
    } finally {
      await fresh.close();
    }
  });

  it('a copy of a chunk in a second pack (a retried putPack) is not marked dead while the first lives, and is after', async () => {
    const chunks = chunksOf(4);
    const { packId: first } = await store.putPack(chunks);
    const { packId: second } = await store.putPack([...chunks.slice(0, 2), ...chunksOf(1)]);
    const fresh = await openFsChunkStore({ root });
    try {
      const owner = fresh.packs.known(chunks[0]!.ref)!.packId; // the first read wins: either pack
      const copy = owner === first ? second : first;
      const n = (id: string): number => (id === first ? 4 : 3);
      await fresh.delete(chunks[1]!.ref); // in both packs: both mark it dead
      for (const id of [first, second]) expect(decodePackMarks(await readFile(`${packFile(id)}.dead`), id, n(id))).toEqual({ bitmap: new Uint8Array([2]) });
      await fresh.delete(chunks[0]!.ref); // the owner's copy dies: so does the other
      for (const id of [first, second]) expect(decodePackMarks(await readFile(`${packFile(id)}.dead`), id, n(id))).toEqual({ bitmap: new Uint8Array([3]) });
      expect(await fresh.stat(chunks[0]!.ref)).toBeNull();
      expect(copy).not.toBe(owner);
    } finally {
      await fresh.close();
    }
    const again = await openFsChunkStore({ root });
    try {
      expect(await again.stat(chunks[0]!.ref)).toBeNull();
      expect(await again.stat(chunks[1]!.ref)).toBeNull();
      expect(await again.readInto(chunks[2]!.ref, Buffer.alloc(chunks[2]!.data.length))).toEqual(chunks[2]!.data);
    } finally {
      await again.close();
    }
  });

  it('decodePackMarks checks every rule; encodePackMarks refuses bad ids and counts', () => {
    const id = randomBytes(16).toString('hex');
    const ok = encodePackMarks(id, 3, (i) => i === 1);
    expect(decodePackMarks(ok, id, 3)).toEqual({ bitmap: new Uint8Array([2]) });
    expect(decodePackMarks(ok, id, 4)).toMatchObject({ invalid: expect.stringMatching(/entry count/) });
    expect(decodePackMarks(ok, randomBytes(16).toString('hex'), 3)).toMatchObject({ invalid: 'marks of another pack' });
    const version = Buffer.from(ok);
    version[4] = 2;
    createHash('sha256').update(version.subarray(0, 33)).digest().copy(version, 33);
    expect(decodePackMarks(version, id, 3)).toMatchObject({ invalid: 'bad magic or version' });
    const count = Buffer.from(ok);
    count.writeUInt32BE(2, 28);
    createHash('sha256').update(count.subarray(0, 33)).digest().copy(count, 33);
    expect(decodePackMarks(count, id, 3)).toMatchObject({ invalid: 'dead count does not match the bitmap' });
    expect(() => encodePackMarks('XY', 3, () => false)).toThrow(/bad pack id/);
    expect(() => encodePackMarks(id, 0, () => false)).toThrow(/1\.\.65536/);
  });

  it('sweepTemporary removes a mark file whose pack is gone, and a pack read with every entry marked dead', async () => {
    const chunks = chunksOf(3);
    const { packId } = await store.putPack(chunks);
    await store.deleteBlob(chunks[0]!.ref.blobId);
    const orphan = `${packFile(packId).slice(0, -4)}beef.dead`;
    await copyFile(`${packFile(packId)}.dead`, orphan);
    await writeFile(`${packFile(packId)}.dead`, encodePackMarks(packId, 3, () => true));
    const fresh = await openFsChunkStore({ root });
    try {
      expect(await listed(fresh)).toEqual([]);
      expect(await fresh.sweepTemporary(60_000)).toBe(0); // too young
      expect(await fresh.sweepTemporary(0)).toBe(2); // the orphan, the all-dead pack (and its marks with it)
      expect(await readdir(join(root, 'packs', packId.slice(0, 2)))).toEqual([]);
    } finally {
      await fresh.close();
    }
  });
});

interface Packed {
  refs: Ref[];
  sha256: string[];
}

/** Runs test-child.ts killmarks and kills it (SIGKILL) once `killWhen` accepts a line it printed. */
async function killedChild(root: string, count: number, stopAt: number, killWhen: (line: Record<string, unknown>) => boolean): Promise<{ packed: Packed; deleted: number[] }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, 'killmarks', root, String(count), '16448', String(stopAt)], { stdio: ['ignore', 'pipe', 'inherit'], cwd: REPO });
  const closed = new Promise((resolve) => child.once('close', resolve)); // after every line it printed was read
  let packed: Packed | undefined;
  const deleted: number[] = [];
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const lines = out.split('\n');
      out = lines.pop() ?? '';
      for (const l of lines) {
        const msg = JSON.parse(l) as Record<string, unknown>;
        if (msg.packed) packed = msg.packed as Packed;
        if (typeof msg.deleted === 'number') deleted.push(msg.deleted);
        if (killWhen(msg)) {
          child.kill('SIGKILL');
          resolve();
        }
      }
    });
    child.on('exit', (code, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error(`child exited (${code})`))));
  });
  await closed;
  return { packed: packed as Packed, deleted };
}

async function expectSurvivors(root: string, packed: Packed, dead: Set<number>, either: Set<number>): Promise<void> {
  const fresh = await openFsChunkStore({ root });
  try {
    const ids = new Set(await listed(fresh));
    for (const [i, ref] of packed.refs.entries()) {
      if (either.has(i)) continue;
      if (dead.has(i)) {
        expect(await fresh.stat(ref), `chunk ${i}`).toBeNull();
        expect(ids.has(ref.blobId)).toBe(false);
      } else {
        expect(sha256(await fresh.readInto(ref, Buffer.alloc(16448))), `chunk ${i}`).toBe(packed.sha256[i]);
        expect(ids.has(ref.blobId)).toBe(true);
      }
    }
  } finally {
    await fresh.close();
  }
}

describe('a crash while deleting packed chunks', () => {
  it('killed between marking some chunks dead and deleting the next: the marked stay dead, every other chunk is intact', async () => {
    const root = await tempRoot();
    try {
      const { packed, deleted } = await killedChild(root, 40, 7, (m) => m.stalled !== undefined);
      expect(deleted).toEqual([0, 1, 2, 3, 4, 5, 6]);
      await expectSurvivors(root, packed, new Set(deleted), new Set());
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('killed at an arbitrary point of a run of deletions: no live chunk lost, none resolved as deleted comes back', async () => {
    const root = await tempRoot();
    try {
      const { packed, deleted } = await killedChild(root, 200, -1, (m) => m.deleted === 20);
      const last = Math.max(...deleted);
      // the deletion in flight when the kill landed may have happened or not; every later one did not start
      await expectSurvivors(root, packed, new Set(deleted), new Set([last + 1]));
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('pack dead marks of a deferSync store (backup targets)', () => {
  it('are written once per pack at flush() (or close()), not at each delete', async () => {
    const root = await tempRoot();
    try {
      const store = await openFsChunkStore({ root, deferSync: true });
      const chunks = chunksOf(8);
      const { packId } = await store.putPack(chunks);
      const marks = join(root, 'packs', packId.slice(0, 2), `${packId}.dead`);
      for (const c of chunks.slice(0, 3)) await store.deleteBlob(c.ref.blobId);
      await expect(readFile(marks)).rejects.toMatchObject({ code: 'ENOENT' });
      await store.flush();
      expect(decodePackMarks(await readFile(marks), packId, 8)).toEqual({ bitmap: new Uint8Array([7]) });
      await store.deleteBlob(chunks[3]!.ref.blobId);
      await store.close(); // without flush(): close writes it
      expect(decodePackMarks(await readFile(marks), packId, 8)).toEqual({ bitmap: new Uint8Array([15]) });
      const fresh = await openFsChunkStore({ root });
      try {
        expect(await listed(fresh)).toEqual(chunks.slice(4).map((c) => c.ref.blobId).sort());
      } finally {
        await fresh.close();
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
