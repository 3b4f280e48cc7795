// The zero-copy multipart (docs/s3-api.md "Multipart: how parts become sealed chunks") over the gateway's FileOps
// with record MACs on: 8 MiB parts sealed straight into the object's blob, and every case that must fall back to
// the re-sealed way or be refused. "Placed" is told by the object's blob: the placed way commits the blob opened
// at CreateMultipartUpload (named in upload.json), the re-sealed way a new one.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { md5Hex } from './test-client.js';
import { MiB, multipartEtag, useMultipartKit } from './multipart.test-util.js';

const k = useMultipartKit('mpp');
const { alice, create, part, complete, placedBlobOf, objectBlob, expectObject } = k;

describe('placed multipart (zero-copy)', () => {
  it('8 MiB parts sent out of order and in parallel are sealed in place; only the last part is sealed at Complete', async () => {
    const parts = [randomBytes(8 * MiB), randomBytes(8 * MiB), randomBytes(8 * MiB), randomBytes(3 * MiB + 7)];
    const id = await create('a/placed.bin');
    const blob = await placedBlobOf(id);
    const etags = await Promise.all([3, 1, 4, 2].map(async (n) => [n, (await part('a/placed.bin', id, n, parts[n - 1] as Buffer)).etag] as const));
    const byNumber = new Map(etags);
    for (const [n, e] of byNumber) expect(e).toBe(`"${md5Hex(parts[n - 1] as Buffer)}"`);
    const list = await k.s3.send('GET', '/mpp/a/placed.bin', { query: { uploadId: id } });
    expect([...list.text.matchAll(/<Size>(\d+)</g)].map((m) => Number(m[1]))).toEqual([8 * MiB, 8 * MiB, 8 * MiB, 3 * MiB + 7]);
    const done = await complete('a/placed.bin', id, [1, 2, 3, 4].map((n) => [n, byNumber.get(n) as string]));
    expect(done.status).toBe(200);
    expect(done.text).toContain(multipartEtag(parts).replace(/"/g, '&quot;'));
    expect(await objectBlob('a/placed.bin')).toBe(blob);
    await expectObject('a/placed.bin', Buffer.concat(parts));
    const r = await k.s3.send('GET', '/mpp/a/placed.bin', { headers: { range: `bytes=${8 * MiB - 3}-${8 * MiB + 2}` } });
    expect(r.body.equals(Buffer.concat(parts).subarray(8 * MiB - 3, 8 * MiB + 3))).toBe(true);
    expect((await k.s3.send('HEAD', '/mpp/a/placed.bin')).headers.etag).toBe(multipartEtag(parts));
  }, 120_000);

  it('a last part of 8 MiB is placed too: its last chunk is sealed again with FINAL', async () => {
    const parts = [randomBytes(8 * MiB), randomBytes(8 * MiB)];
    const id = await create('whole.bin');
    const blob = await placedBlobOf(id);
    const e = [await part('whole.bin', id, 1, parts[0] as Buffer), await part('whole.bin', id, 2, parts[1] as Buffer)];
    expect((await complete('whole.bin', id, [[1, e[0]?.etag as string], [2, e[1]?.etag as string]])).status).toBe(200);
    expect(await objectBlob('whole.bin')).toBe(blob);
    await expectObject('whole.bin', Buffer.concat(parts));
  }, 120_000);

  it('a part uploaded again with the same bytes (a retry) keeps the placed way; with other bytes it falls back, and the newest bytes win', async () => {
    const parts = [randomBytes(8 * MiB), randomBytes(8 * MiB), randomBytes(1 * MiB)];
    const id = await create('again.bin');
    const blob = await placedBlobOf(id);
    const e1 = await part('again.bin', id, 1, parts[0] as Buffer);
    await part('again.bin', id, 2, parts[1] as Buffer);
    const e2 = await part('again.bin', id, 2, parts[1] as Buffer); // the retry is staged, the placed copy stays
    const e3 = await part('again.bin', id, 3, parts[2] as Buffer);
    expect((await complete('again.bin', id, [[1, e1.etag], [2, e2.etag], [3, e3.etag]])).status).toBe(200);
    expect(await objectBlob('again.bin')).toBe(blob);
    await expectObject('again.bin', Buffer.concat(parts));

    const id2 = await create('again2.bin');
    const blob2 = await placedBlobOf(id2);
    const f1 = await part('again2.bin', id2, 1, parts[0] as Buffer);
    await part('again2.bin', id2, 2, parts[1] as Buffer);
    const other = randomBytes(8 * MiB);
    const f2 = await part('again2.bin', id2, 2, other);
    const f3 = await part('again2.bin', id2, 3, parts[2] as Buffer);
    expect((await complete('again2.bin', id2, [[1, f1.etag], [2, f2.etag], [3, f3.etag]])).status).toBe(200);
    expect(await objectBlob('again2.bin')).not.toBe(blob2);
    await expectObject('again2.bin', Buffer.concat([parts[0] as Buffer, other, parts[2] as Buffer]));
  }, 180_000);

  it('5 MiB parts are joined into the placed blob (multipart-joined.test.ts); mixed sizes (a 16 MiB part after 8 MiB ones) fall back to the re-sealed way', async () => {
    const five = [randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(100)];
    const id = await create('five.bin');
    const blob = await placedBlobOf(id);
    const e = [];
    for (const [i, p] of five.entries()) e.push([i + 1, (await part('five.bin', id, i + 1, p)).etag] as [number, string]);
    expect((await complete('five.bin', id, e)).status).toBe(200);
    expect(await objectBlob('five.bin')).toBe(blob);
    await expectObject('five.bin', Buffer.concat(five));

    const mixed = [randomBytes(8 * MiB), randomBytes(16 * MiB), randomBytes(8 * MiB)];
    const id2 = await create('mixed.bin');
    const m: Array<[number, string]> = [];
    const blob2 = await placedBlobOf(id2);
    for (const [i, p] of mixed.entries()) m.push([i + 1, (await part('mixed.bin', id2, i + 1, p)).etag]);
    expect((await complete('mixed.bin', id2, m)).status).toBe(200);
    expect(await objectBlob('mixed.bin')).not.toBe(blob2);
    await expectObject('mixed.bin', Buffer.concat(mixed));
  }, 180_000);

  it('a part whose body failed its check after its chunks were sealed (a cut-off attempt) leaves its claim: the retry is staged, Complete falls back', async () => {
    const parts = [randomBytes(8 * MiB), randomBytes(8 * MiB)];
    const id = await create('cut.bin');
    const blob = await placedBlobOf(id);
    const bad = await part('cut.bin', id, 1, parts[0] as Buffer, { 'content-md5': Buffer.alloc(16).toString('base64') });
    expect(bad.code).toBe('BadDigest');
    const e1 = await part('cut.bin', id, 1, parts[0] as Buffer);
    const e2 = await part('cut.bin', id, 2, parts[1] as Buffer);
    expect((await complete('cut.bin', id, [[1, e1.etag], [2, e2.etag]])).status).toBe(200);
    expect(await objectBlob('cut.bin')).not.toBe(blob);
    await expectObject('cut.bin', Buffer.concat(parts));
  }, 120_000);

  it('Complete cut short after the commit (the move onto the key fails) shows nothing; a retried Complete finishes it', async () => {
    const parts = [randomBytes(8 * MiB), randomBytes(2 * MiB)];
    const id = await create('blocked/obj');
    const blob = await placedBlobOf(id);
    const e1 = await part('blocked/obj', id, 1, parts[0] as Buffer);
    const e2 = await part('blocked/obj', id, 2, parts[1] as Buffer);
    await k.env.backend.mkdir(alice, '/mpp/blocked/obj/in-the-way', true); // the key is a non-empty directory now
    const first = await complete('blocked/obj', id, [[1, e1.etag], [2, e2.etag]]);
    expect(first.code).not.toBeNull();
    expect((await k.env.backend.stat(alice, '/mpp/blocked/obj')).type).toBe('dir');
    expect((await k.s3.send('GET', '/mpp', { query: { 'list-type': '2', prefix: 'blocked/' } })).text).not.toContain(`<Size>${10 * MiB}<`);
    await k.env.backend.remove(alice, '/mpp/blocked/obj', true);
    expect((await complete('blocked/obj', id, [[1, e1.etag], [2, e2.etag]])).status).toBe(200);
    expect(await objectBlob('blocked/obj')).toBe(blob);
    await expectObject('blocked/obj', Buffer.concat(parts));
  }, 120_000);

  it('abort removes the staging directory and abandons the placed upload', async () => {
    const id = await create('aborted.bin');
    const blob = await placedBlobOf(id);
    await part('aborted.bin', id, 1, randomBytes(8 * MiB));
    expect((await k.s3.send('DELETE', '/mpp/aborted.bin', { query: { uploadId: id } })).status).toBe(204);
    expect((await part('aborted.bin', id, 2, randomBytes(8 * MiB))).code).toBe('NoSuchUpload');
    await expect(k.host.uploadState(blob)).resolves.toMatchObject({ state: expect.not.stringMatching(/^uploading$/) as unknown });
    expect((await k.s3.send('HEAD', '/mpp/aborted.bin')).status).toBe(404);
  }, 60_000);

  it('a part record forged or renamed on the host is refused (left out), never used: Complete answers InvalidPart', async () => {
    const parts = [randomBytes(8 * MiB), randomBytes(1 * MiB)];
    const id = await create('forged.bin');
    const dir = `/mpp/.coffer-s3/uploads/${id}`;
    const e1 = await part('forged.bin', id, 1, parts[0] as Buffer);
    const e2 = await part('forged.bin', id, 2, parts[1] as Buffer);
    const real = (await k.host.list(dir)).items.find((i) => i.name.startsWith('d00001-'));
    expect(real).toBeDefined();
    // the host renames the placed record to claim other bytes (an MD5 the client will present)
    const lie = md5Hex(randomBytes(8));
    await k.host.move(`${dir}/${real?.name as string}`, `${dir}/d00001-00001-${lie}`, false);
    expect((await complete('forged.bin', id, [[1, `"${lie}"`], [2, e2.etag]])).code).toBe('InvalidPart');
    expect((await complete('forged.bin', id, [[1, e1.etag], [2, e2.etag]])).code).toBe('InvalidPart');
    expect((await k.s3.send('HEAD', '/mpp/forged.bin')).status).toBe(404);
  }, 60_000);
});
