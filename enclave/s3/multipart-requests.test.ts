// Storage round trips per UploadPart (docs/s3-api.md "Multipart: requests per part"), counted on the real storage
// service's /metrics (coffer_http_requests_total by method and route) around one part, over the gateway's FileOps
// with record MACs on (the enclave's configuration). A placed 8 MiB part and a staged 5 MiB part with Content-MD5
// are counted after the upload's first parts (which fix the geometry, start the joiner); the bounds are the
// figures this branch reached, so a change that adds round trips to the part path fails here.
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3TestClient, md5Hex } from './test-client.js';
import { startS3TestEnv, type S3TestEnv } from './test-env.js';

const MiB = 1024 * 1024;
let env: S3TestEnv;
let s3: S3TestClient;

beforeAll(async () => {
  env = await startS3TestEnv({ backend: 'gateway', macs: true });
  s3 = new S3TestClient(env.url, env.caPem, await env.accessKey('alice'));
  expect((await s3.send('PUT', '/mpr')).status).toBe(200);
}, 60_000);

afterAll(async () => {
  await env?.close();
});

/** Requests the storage service has answered, by "METHOD route". */
async function counts(): Promise<Map<string, number>> {
  const text = await (await fetch(`${env.storage.url}/metrics`)).text();
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^coffer_http_requests_total\{method="([A-Z]+)",route="([^"]+)",status="\d+"\} (\d+)/gm)) {
    if (m[2] === '/metrics') continue;
    const k = `${m[1] as string} ${m[2] as string}`;
    out.set(k, (out.get(k) ?? 0) + Number(m[3]));
  }
  return out;
}

function diff(before: Map<string, number>, after: Map<string, number>): { total: number; byRoute: Record<string, number> } {
  const byRoute: Record<string, number> = {};
  let total = 0;
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d > 0) {
      byRoute[k] = d;
      total += d;
    }
  }
  return { total, byRoute };
}

/** Waits until the storage service has seen no request for `quietMs` (the joiner's batches are done). */
async function settle(quietMs = 400): Promise<void> {
  let last = JSON.stringify([...(await counts())]);
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, quietMs));
    const now = JSON.stringify([...(await counts())]);
    if (now === last) return;
    last = now;
  }
}

async function create(key: string): Promise<string> {
  const r = await s3.send('POST', `/mpr/${key}`, { query: { uploads: '' } });
  expect(r.status).toBe(200);
  return /<UploadId>([^<]+)</.exec(r.text)?.[1] as string;
}

async function part(key: string, id: string, n: number, body: Buffer, headers: Record<string, string> = {}): Promise<string> {
  const r = await s3.send('PUT', `/mpr/${key}`, { query: { uploadId: id, partNumber: String(n) }, body, headers });
  expect(r.status, r.text).toBe(200);
  return r.headers.etag ?? '';
}

async function counted(fn: () => Promise<unknown>): Promise<{ total: number; byRoute: Record<string, number> }> {
  await settle();
  const before = await counts();
  await fn();
  return diff(before, await counts());
}

const contentMd5 = (b: Buffer): string => createHash('md5').update(b).digest('base64');

describe('storage requests per UploadPart', () => {
  it('a placed 8 MiB part, and a staged 5 MiB part with Content-MD5', async () => {
    const placed = [randomBytes(8 * MiB), randomBytes(8 * MiB), randomBytes(8 * MiB)];
    const id = await create('placed.bin');
    await part('placed.bin', id, 1, placed[0] as Buffer); // fixes the upload's geometry
    const p = await counted(() => part('placed.bin', id, 2, placed[1] as Buffer));
    await part('placed.bin', id, 3, placed[2] as Buffer);

    const staged = [randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(1 * MiB)];
    const sid = await create('staged.bin');
    await part('staged.bin', sid, 1, staged[0] as Buffer, { 'content-md5': contentMd5(staged[0] as Buffer) });
    await part('staged.bin', sid, 2, staged[1] as Buffer, { 'content-md5': contentMd5(staged[1] as Buffer) }); // chunk 0 joined after it
    // part 3 completes no further chunk (15 MiB < 16): the joiner has nothing to do, so the count is the part's own
    const s = await counted(() => part('staged.bin', sid, 3, staged[2] as Buffer, { 'content-md5': contentMd5(staged[2] as Buffer) }));
    await part('staged.bin', sid, 4, staged[3] as Buffer, { 'content-md5': contentMd5(staged[3] as Buffer) });
    console.log(`placed 8 MiB part: ${p.total} requests ${JSON.stringify(p.byRoute)}`);
    console.log(`staged 5 MiB part: ${s.total} requests ${JSON.stringify(s.byRoute)}`);

    // both objects still complete whole (the counted parts are real parts)
    for (const [key, uid, parts] of [['placed.bin', id, placed], ['staged.bin', sid, staged]] as const) {
      const xml = `<CompleteMultipartUpload>${parts.map((b, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>"${md5Hex(b)}"</ETag></Part>`).join('')}</CompleteMultipartUpload>`;
      const done = await s3.send('POST', `/mpr/${key}`, { query: { uploadId: uid }, body: xml });
      expect(done.status, done.text).toBe(200);
      const g = await s3.send('GET', `/mpr/${key}`);
      expect(createHash('sha256').update(g.body).digest('hex')).toBe(createHash('sha256').update(Buffer.concat(parts)).digest('hex'));
    }

    expect(p.byRoute['PUT /v1/uploads/:blobId/chunks/:index']).toBe(1);
    // the user's status is checked once per S3 request (FileOps' Caller.session), not once per storage call
    expect(p.byRoute['GET /v1/integrity/user']).toBe(1);
    expect(s.byRoute['GET /v1/integrity/user']).toBe(1);
    // a new part file is made as a new file: the role on the staging directory decides, its name is not looked up
    expect(s.byRoute['GET /v1/integrity/access']).toBe(1);
    expect(p.total).toBeLessThanOrEqual(PLACED_MAX);
    expect(s.total).toBeLessThanOrEqual(STAGED_MAX);
  }, 120_000);
});

describe('joined parts', () => {
  it('are joined from the bytes their requests held: no staged part is read back', async () => {
    const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(2 * MiB)];
    const id = await create('held.bin');
    const c = await counted(async () => {
      for (const [i, b] of parts.entries()) await part('held.bin', id, i + 1, b, { 'content-md5': contentMd5(b) });
      await settle(); // chunk 0 is joined after part 2 (10 MiB), nothing more before Complete
    });
    const reads = Object.entries(c.byRoute).filter(([k]) => k.startsWith('GET') && k.includes('chunk'));
    expect(reads).toEqual([]);
    const xml = `<CompleteMultipartUpload>${parts.map((b, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>"${md5Hex(b)}"</ETag></Part>`).join('')}</CompleteMultipartUpload>`;
    const done = await s3.send('POST', '/mpr/held.bin', { query: { uploadId: id }, body: xml });
    expect(done.status, done.text).toBe(200);
    const g = await s3.send('GET', '/mpr/held.bin');
    expect(md5Hex(g.body)).toBe(md5Hex(Buffer.concat(parts)));
  }, 120_000);
});

// the bounds reached (docs/s3-api.md "Multipart: requests per part"; before s3put: 13 and 23; before s3stage: 8 and 8)
const PLACED_MAX = 8;
const STAGED_MAX = 7;

describe('skipping the upload check stays fail-closed', () => {
  const alice = { user: 'alice', admin: false };

  it('every S3 request is admitted anew (no admission carried from one request to the next)', async () => {
    const c = await counted(async () => {
      for (let i = 0; i < 3; i++) expect((await s3.send('HEAD', '/mpr')).status).toBe(200);
    });
    expect(c.byRoute['GET /v1/integrity/user']).toBe(3);
  });

  it('a part of an upload this enclave knows, whose staging directory was removed behind its back, is NoSuchUpload and stores nothing', async () => {
    const id = await create('gone.bin');
    await part('gone.bin', id, 1, randomBytes(5 * MiB));
    const dir = `/mpr/.coffer-s3/uploads/${id}`;
    await env.backend.remove(alice, dir, true); // not through S3: the enclave still keeps the upload's record
    for (const [n, size] of [[2, 5 * MiB], [3, 8 * MiB]] as const) {
      const body = randomBytes(size);
      const r = await s3.send('PUT', '/mpr/gone.bin', { query: { uploadId: id, partNumber: String(n) }, body, headers: { 'content-md5': contentMd5(body) } });
      expect(r.status).toBe(404);
      expect(r.code).toBe('NoSuchUpload');
    }
    await expect(env.backend.stat(alice, dir)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  }, 60_000);

  it('after AbortMultipartUpload a part is NoSuchUpload; a made-up id too', async () => {
    const id = await create('aborted.bin');
    await part('aborted.bin', id, 1, randomBytes(8 * MiB));
    expect((await s3.send('DELETE', '/mpr/aborted.bin', { query: { uploadId: id } })).status).toBe(204);
    const body = randomBytes(5 * MiB);
    const r = await s3.send('PUT', '/mpr/aborted.bin', { query: { uploadId: id, partNumber: '2' }, body, headers: { 'content-md5': contentMd5(body) } });
    expect(r.code).toBe('NoSuchUpload');
    const other = `${'0'.repeat(32)}${id.slice(32)}`;
    expect((await s3.send('PUT', '/mpr/aborted.bin', { query: { uploadId: other, partNumber: '1' }, body })).code).toBe('NoSuchUpload');
  }, 60_000);

  it('a staged part written straight to its name: a wrong Content-MD5 leaves no file under either name', async () => {
    const id = await create('digest.bin');
    const body = randomBytes(5 * MiB);
    const wrong = contentMd5(randomBytes(16));
    const r = await s3.send('PUT', '/mpr/digest.bin', { query: { uploadId: id, partNumber: '1' }, body, headers: { 'content-md5': wrong } });
    expect(r.code).toBe('BadDigest');
    const page = await env.backend.list(alice, `/mpr/.coffer-s3/uploads/${id}`, { limit: 100 });
    expect(page.items.filter((i) => i.name.startsWith('p') || i.name.startsWith('t'))).toEqual([]);
    // the right body then stores it, and a re-upload of the number with other bytes replaces it (one copy left)
    await part('digest.bin', id, 1, body, { 'content-md5': contentMd5(body) });
    const again = randomBytes(5 * MiB);
    await part('digest.bin', id, 1, again, { 'content-md5': contentMd5(again) });
    const after = await env.backend.list(alice, `/mpr/.coffer-s3/uploads/${id}`, { limit: 100 });
    expect(after.items.filter((i) => i.name.startsWith('p')).map((i) => i.name)).toEqual([`p00001-${md5Hex(again)}`]);
  }, 60_000);

  it('a first copy of a part number whose name is there already (another enclave\'s copy) replaces it, before any byte is taken', async () => {
    const id = await create('there.bin');
    const body = randomBytes(5 * MiB);
    const name = `/mpr/.coffer-s3/uploads/${id}/p00001-${md5Hex(body)}`;
    const old = randomBytes(1000);
    await env.backend.put(alice, name, [old], old.length); // not through S3: this enclave has not seen part 1
    await part('there.bin', id, 1, body, { 'content-md5': contentMd5(body) });
    const tail = randomBytes(3 * MiB);
    await part('there.bin', id, 2, tail, { 'content-md5': contentMd5(tail) });
    const xml = `<CompleteMultipartUpload>${[body, tail].map((b, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>"${md5Hex(b)}"</ETag></Part>`).join('')}</CompleteMultipartUpload>`;
    expect((await s3.send('POST', '/mpr/there.bin', { query: { uploadId: id }, body: xml })).status).toBe(200);
    const g = await s3.send('GET', '/mpr/there.bin');
    expect(md5Hex(g.body)).toBe(md5Hex(Buffer.concat([body, tail])));
  }, 60_000);
});
