// The sweep of abandoned multipart uploads without an administrator (upload-sweep.ts): per bucket, as a user who
// writes there, triggered by their write requests at most once per interval; a read-only user can sweep nothing.
// Real storage service, sealed chunks, requests signed by the AWS SDK's signer. Grants: default root role `none`;
// alice may write under `/`, bob may only read `/`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call } from '../../src/api/test-server.js';
import { uploadsDir } from './multipart.js';
import { S3TestClient } from './test-client.js';
import { startS3TestEnv, type S3TestEnv } from './test-env.js';
import { sweepBucketUploads, type SweepReport } from './upload-sweep.js';

const DAY = 24 * 3600_000;
let env: S3TestEnv;
let alice: S3TestClient;
let bob: S3TestClient;
let clock = Date.now();
const swept: Array<{ bucket: string; user: string; report: SweepReport }> = [];
const errors: Array<{ bucket: string; user: string }> = [];

beforeAll(async () => {
  env = await startS3TestEnv({
    defaultRootRole: 'none', limits: { minPartSize: 64 * 1024 },
    sweep: { now: () => clock, onSwept: (bucket, user, report) => swept.push({ bucket, user, report }), onError: (bucket, user) => errors.push({ bucket, user }) },
  });
  const admin = await env.storage.token('root', true);
  expect((await call(env.storage.url, admin, 'PUT', '/v1/grants', { path: '/', user: 'alice', role: 'write' })).ok).toBe(true);
  expect((await call(env.storage.url, admin, 'PUT', '/v1/grants', { path: '/', user: 'bob', role: 'read' })).ok).toBe(true);
  alice = new S3TestClient(env.url, env.caPem, await env.accessKey('alice'));
  bob = alice.with(await env.accessKey('bob'));
});

afterAll(async () => {
  await env?.close();
});

async function startUpload(bucket: string, key: string): Promise<string> {
  const res = await alice.send('POST', `/${bucket}/${key}`, { query: { uploads: '' } });
  expect(res.status).toBe(200);
  const id = /<UploadId>([^<]+)</.exec(res.text)?.[1] as string;
  expect((await alice.send('PUT', `/${bucket}/${key}`, { query: { uploadId: id, partNumber: '1' }, body: Buffer.alloc(1000, 7) })).status).toBe(200);
  return id;
}

const exists = async (bucket: string, key: string, id: string): Promise<boolean> =>
  (await alice.send('GET', `/${bucket}/${key}`, { query: { uploadId: id } })).status === 200;

describe('sweepBucketUploads (no administrator)', () => {
  it('as the bucket\'s writer: abandoned uploads and stuck temporary parts go, live ones stay; a reader is refused and removes nothing', async () => {
    clock = Date.now();
    expect((await alice.send('PUT', '/direct')).status).toBe(200);
    const old = await startUpload('direct', 'old.bin');
    const live = await startUpload('direct', 'live.bin');
    // a part cut off mid-body stays under its temporary name
    const temp = `${uploadsDir('direct')}/${live}/t00002-deadbeef`;
    await env.backend.put({ user: 'alice', admin: false }, temp, [Buffer.from('partial')], 7);
    const later = new Date(Date.now() + 2 * 3600_000);
    const reader = { user: 'bob', admin: false };
    await expect(sweepBucketUploads(env.backend, reader, 'direct', { maxAgeMs: 3600_000, now: later })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    expect(await exists('direct', 'old.bin', old)).toBe(true);
    // "old" is older than its limit; "live" is not, but its temporary part is older than an hour
    const writer = { user: 'alice', admin: false };
    expect(await sweepBucketUploads(env.backend, writer, 'direct', { maxAgeMs: DAY, tempAgeMs: 3600_000, now: later })).toEqual({ removedUploads: 0, removedTemps: 1 });
    await expect(env.backend.stat(writer, temp)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await exists('direct', 'live.bin', live)).toBe(true);
    expect(await sweepBucketUploads(env.backend, writer, 'direct', { maxAgeMs: 3600_000, now: later })).toEqual({ removedUploads: 2, removedTemps: 0 });
    expect(await exists('direct', 'old.bin', old)).toBe(false);
    expect((await alice.send('GET', '/direct/old.bin', { query: { uploadId: old } })).code).toBe('NoSuchUpload');
    // idempotent; a bucket without a staging area is fine
    expect(await sweepBucketUploads(env.backend, writer, 'direct', { maxAgeMs: 3600_000, now: later })).toEqual({ removedUploads: 0, removedTemps: 0 });
  });
});

describe('UploadSweeper through the S3 handler', () => {
  it('a write in a bucket sweeps it as the writer, at most once per interval; reads and refused writes trigger nothing', async () => {
    clock = Date.now();
    expect((await alice.send('PUT', '/trig')).status).toBe(200);
    await env.sweeper?.idle();
    swept.length = 0;
    const id = await startUpload('trig', 'abandoned.bin');
    await env.sweeper?.idle();
    expect(swept).toEqual([]); // swept when the bucket was made (nothing to remove); not again within the hour
    clock += 8 * DAY; // a week later by the sweeper's clock: the upload is abandoned, the interval is over
    expect((await bob.send('GET', '/trig/abandoned.bin', { query: { uploadId: id } })).status).toBe(200); // a read: no sweep
    expect((await bob.send('PUT', '/trig/x.txt', { body: 'no' })).code).toBe('AccessDenied'); // refused: no sweep
    await env.sweeper?.idle();
    expect(swept).toEqual([]);
    expect(await exists('trig', 'abandoned.bin', id)).toBe(true);
    expect((await alice.send('PUT', '/trig/x.txt', { body: 'yes' })).status).toBe(200);
    await env.sweeper?.idle();
    expect(swept).toEqual([{ bucket: 'trig', user: 'alice', report: { removedUploads: 1, removedTemps: 0 } }]);
    expect(await exists('trig', 'abandoned.bin', id)).toBe(false);
    // within the interval: no second sweep
    const again = await startUpload('trig', 'again.bin');
    expect((await alice.send('PUT', '/trig/y.txt', { body: 'yes' })).status).toBe(200);
    await env.sweeper?.idle();
    expect(swept).toHaveLength(1);
    expect(await exists('trig', 'again.bin', again)).toBe(true);
    expect(errors).toEqual([]);
  });
});
