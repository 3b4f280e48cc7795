// Joined parts (docs/s3-api.md "Joined parts", multipart-join.ts) over the gateway's FileOps with record MACs on:
// equal staged parts that are not whole chunks (rclone's 5 MiB) are joined into the placed blob while the upload
// goes on, and Complete seals only the rest. "Joined" is told by the object's blob (the one opened at Create) and
// by the `j…` records the joiner leaves before Complete; every unusual case must fall back (a new blob) or be
// refused, never give other bytes.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { md5Hex } from './test-client.js';
import { MiB, all, multipartEtag, useMultipartKit } from './multipart.test-util.js';

const k = useMultipartKit('mpj');
const { alice, create, part, parts, complete, dirOf, placedBlobOf, objectBlob, expectObject } = k;

/** The chunks joined so far (the end of the `j…` records' chain), waiting until it reaches `want` (or 20 s). */
async function joinedChunks(id: string, want: number): Promise<number> {
  let end = 0;
  for (let i = 0; i < 200; i++) {
    const names = (await k.env.backend.list(alice, dirOf(id), { limit: 1000 })).items.map((x) => x.name);
    end = Math.max(0, ...names.filter((n) => n.startsWith('j')).map((n) => Number(n.slice(9, 16))));
    if (end >= want) return end;
    await new Promise((r) => setTimeout(r, 100));
  }
  return end;
}

const random = (sizes: number[]): Buffer[] => sizes.map((n) => randomBytes(n));

describe('joined multipart (equal parts that are not whole chunks)', () => {
  it('5 MiB parts, 4 at once in order (rclone): chunks are joined before Complete, which seals only the rest', async () => {
    const bodies = random([...Array<number>(9).fill(5 * MiB), 1 * MiB + 3]); // 46 MiB: chunks 0..4 joinable
    const id = await create('r/clone.bin');
    const blob = await placedBlobOf(id);
    const etags = await parts('r/clone.bin', id, bodies, bodies.map((_, i) => i + 1), 4);
    expect(await joinedChunks(id, 5)).toBe(5);
    const done = await complete('r/clone.bin', id, all(etags, bodies.length));
    expect(done.status).toBe(200);
    expect(done.text).toContain(multipartEtag(bodies).replace(/"/g, '&quot;'));
    expect(await objectBlob('r/clone.bin')).toBe(blob);
    const whole = Buffer.concat(bodies);
    await expectObject('r/clone.bin', whole);
    const r = await k.s3.send('GET', '/mpj/r/clone.bin', { headers: { range: `bytes=${40 * MiB - 5}-${40 * MiB + 4}` } }); // joined → tail
    expect(r.body.equals(whole.subarray(40 * MiB - 5, 40 * MiB + 5))).toBe(true);
    expect((await k.s3.send('HEAD', '/mpj/r/clone.bin')).headers.etag).toBe(multipartEtag(bodies));
    await expect(k.env.backend.stat(alice, dirOf(id))).rejects.toMatchObject({ code: 'NOT_FOUND' });
  }, 180_000);

  it('parts out of order (the last first, part 1 last) are joined once part 1 is there; parts that end on a chunk boundary re-seal the last chunk FINAL', async () => {
    const bodies = random(Array<number>(8).fill(3 * MiB)); // 24 MiB = 3 whole chunks: all joined, the last again with FINAL
    const id = await create('ooo.bin');
    const blob = await placedBlobOf(id);
    const etags = await parts('ooo.bin', id, bodies, [8, 5, 6, 7, 3, 4, 2, 1], 3);
    expect(await joinedChunks(id, 2)).toBeGreaterThanOrEqual(2);
    expect((await complete('ooo.bin', id, all(etags, 8))).status).toBe(200);
    expect(await objectBlob('ooo.bin')).toBe(blob);
    await expectObject('ooo.bin', Buffer.concat(bodies));
  }, 180_000);

  it('a retried part with the same bytes keeps the joined way; with other bytes (after it was joined) Complete falls back and the newest bytes win', async () => {
    const bodies = random([3 * MiB, 3 * MiB, 3 * MiB, 1 * MiB]);
    const id = await create('retry.bin');
    const blob = await placedBlobOf(id);
    const etags = await parts('retry.bin', id, bodies, [1, 2, 3, 4], 1);
    expect(await joinedChunks(id, 1)).toBe(1);
    expect((await part('retry.bin', id, 2, bodies[1] as Buffer)).etag).toBe(etags.get(2));
    expect((await complete('retry.bin', id, all(etags, 4))).status).toBe(200);
    expect(await objectBlob('retry.bin')).toBe(blob);
    await expectObject('retry.bin', Buffer.concat(bodies));

    const id2 = await create('retry2.bin');
    const blob2 = await placedBlobOf(id2);
    const etags2 = await parts('retry2.bin', id2, bodies, [1, 2, 3, 4], 2);
    expect(await joinedChunks(id2, 1)).toBe(1);
    const other = randomBytes(3 * MiB);
    etags2.set(2, (await part('retry2.bin', id2, 2, other)).etag);
    // the older copy of part 2 is removed (only that number's entries are looked at)
    expect((await k.env.backend.list(alice, dirOf(id2), { limit: 1000 })).items.filter((i) => i.name.startsWith('p00002-')).map((i) => i.name)).toEqual([`p00002-${md5Hex(other)}`]);
    expect((await complete('retry2.bin', id2, all(etags2, 4))).status).toBe(200);
    expect(await objectBlob('retry2.bin')).not.toBe(blob2);
    await expectObject('retry2.bin', Buffer.concat([bodies[0] as Buffer, other, bodies[2] as Buffer, bodies[3] as Buffer]));
  }, 180_000);

  it('a missing middle part is InvalidPart; a list with a gap re-seals (the joined chunks hold the skipped part) and gives exactly the listed parts', async () => {
    const bodies = random([3 * MiB, 3 * MiB, 3 * MiB, 3 * MiB, 2 * MiB]);
    const id = await create('gap.bin');
    const etags = await parts('gap.bin', id, bodies, [1, 2, 4, 5], 2);
    expect((await complete('gap.bin', id, [[1, etags.get(1) as string], [2, etags.get(2) as string], [3, `"${md5Hex(bodies[2] as Buffer)}"`], [4, etags.get(4) as string], [5, etags.get(5) as string]])).code).toBe('InvalidPart');
    expect((await k.s3.send('HEAD', '/mpj/gap.bin')).status).toBe(404);

    const id2 = await create('gap2.bin');
    const blob2 = await placedBlobOf(id2);
    const etags2 = await parts('gap2.bin', id2, bodies, [1, 2, 3, 4, 5], 2);
    expect(await joinedChunks(id2, 1)).toBeGreaterThanOrEqual(1);
    expect((await complete('gap2.bin', id2, [[1, etags2.get(1) as string], [2, etags2.get(2) as string], [4, etags2.get(4) as string], [5, etags2.get(5) as string]])).status).toBe(200);
    expect(await objectBlob('gap2.bin')).not.toBe(blob2);
    await expectObject('gap2.bin', Buffer.concat([bodies[0], bodies[1], bodies[3], bodies[4]] as Buffer[]));
  }, 180_000);

  it('a part attempt that fails its check stores nothing and joins nothing; its retry is joined', async () => {
    const bodies = random([3 * MiB, 3 * MiB, 3 * MiB, 500]);
    const id = await create('bad.bin');
    const blob = await placedBlobOf(id);
    await parts('bad.bin', id, bodies, [1, 2], 1);
    const bad = await part('bad.bin', id, 3, bodies[2] as Buffer, { 'content-md5': Buffer.alloc(16).toString('base64') });
    expect(bad.code).toBe('BadDigest');
    expect(await joinedChunks(id, 0)).toBe(0); // 6 MiB staged: no whole chunk yet, and the failed part added nothing
    const etags = await parts('bad.bin', id, bodies, [3, 4], 1);
    etags.set(1, `"${md5Hex(bodies[0] as Buffer)}"`);
    etags.set(2, `"${md5Hex(bodies[1] as Buffer)}"`);
    expect(await joinedChunks(id, 1)).toBe(1);
    expect((await complete('bad.bin', id, all(etags, 4))).status).toBe(200);
    expect(await objectBlob('bad.bin')).toBe(blob);
    await expectObject('bad.bin', Buffer.concat(bodies));
  }, 180_000);

  it('a joiner batch cut off (a claim without its record) makes Complete fall back; the bytes are right', async () => {
    const bodies = random([3 * MiB, 3 * MiB, 3 * MiB, 3 * MiB, 3 * MiB, 3 * MiB, 1 * MiB]);
    const id = await create('cut.bin');
    const blob = await placedBlobOf(id);
    const etags = await parts('cut.bin', id, bodies, [1, 2, 3], 1);
    expect(await joinedChunks(id, 1)).toBe(1);
    // what a crash between the claim and the record leaves: the claim of the next range, nothing recorded
    await k.env.backend.mkdir(alice, `${dirOf(id)}/a0000001`, false);
    for (const [n, e] of await parts('cut.bin', id, bodies, [4, 5, 6, 7], 2)) etags.set(n, e);
    expect((await complete('cut.bin', id, all(etags, 7))).status).toBe(200);
    expect(await objectBlob('cut.bin')).not.toBe(blob);
    await expectObject('cut.bin', Buffer.concat(bodies));
  }, 180_000);

  it('a joined record renamed or removed on the host is not obeyed: Complete falls back to the parts\' own bytes', async () => {
    const bodies = random([3 * MiB, 3 * MiB, 3 * MiB, 3 * MiB, 2 * MiB]);
    for (const edit of ['rename', 'remove'] as const) {
      const key = `host-${edit}.bin`;
      const id = await create(key);
      const blob = await placedBlobOf(id);
      const etags = await parts(key, id, bodies, [1, 2, 3, 4, 5], 1);
      expect(await joinedChunks(id, 1)).toBe(1);
      const record = (await k.host.list(dirOf(id))).items.find((i) => i.name.startsWith('j0000000-'));
      expect(record).toBeDefined();
      // the host makes the record claim more chunks (a forged name fails its MAC and is left out), or hides it
      if (edit === 'rename') await k.host.move(`${dirOf(id)}/${record?.name as string}`, `${dirOf(id)}/j0000000-0000005-${(record?.name as string).slice(17)}`, false);
      else await k.host.remove(`${dirOf(id)}/${record?.name as string}`);
      expect((await complete(key, id, all(etags, 5))).status).toBe(200);
      expect(await objectBlob(key)).not.toBe(blob);
      await expectObject(key, Buffer.concat(bodies));
    }
  }, 180_000);

  it('Complete cut short after sealing its tail and committing (the key is a directory) shows nothing; a retried Complete finishes it the joined way', async () => {
    const bodies = random([3 * MiB, 3 * MiB, 3 * MiB, 2 * MiB]);
    const id = await create('blocked/obj');
    const blob = await placedBlobOf(id);
    const etags = await parts('blocked/obj', id, bodies, [1, 2, 3, 4], 2);
    expect(await joinedChunks(id, 1)).toBe(1);
    await k.env.backend.mkdir(alice, '/mpj/blocked/obj/in-the-way', true);
    expect((await complete('blocked/obj', id, all(etags, 4))).code).not.toBeNull();
    expect((await k.env.backend.stat(alice, '/mpj/blocked/obj')).type).toBe('dir');
    await k.env.backend.remove(alice, '/mpj/blocked/obj', true);
    expect((await complete('blocked/obj', id, all(etags, 4))).status).toBe(200);
    expect(await objectBlob('blocked/obj')).toBe(blob);
    await expectObject('blocked/obj', Buffer.concat(bodies));
  }, 120_000);

  it('abort while the joiner works removes everything and abandons the blob', async () => {
    const bodies = random(Array<number>(6).fill(3 * MiB));
    const id = await create('abort.bin');
    const blob = await placedBlobOf(id);
    await parts('abort.bin', id, bodies, [1, 2, 3, 4, 5, 6], 3);
    expect((await k.s3.send('DELETE', '/mpj/abort.bin', { query: { uploadId: id } })).status).toBe(204);
    await expect(k.host.uploadState(blob)).resolves.toMatchObject({ state: expect.not.stringMatching(/^uploading$/) as unknown });
    await expect(k.env.backend.stat(alice, dirOf(id))).rejects.toMatchObject({ code: 'NOT_FOUND' });
  }, 60_000);
});
