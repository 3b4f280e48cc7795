// The sidecar cache (object-meta-cache.ts): per user, per key and per blob id; entries expire and are bounded.
// That a replaced object never answers its old metadata through the cache is checked end to end below.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ObjectMetaCache } from './object-meta-cache.js';
import type { ObjectMeta } from './object-meta.js';
import { S3TestClient } from './test-client.js';
import { startS3TestEnv, type S3TestEnv } from './test-env.js';

const meta = (key: string, blobId: string, etag = '"e"'): ObjectMeta => ({ v: 1, key, blobId, etag, headers: {}, meta: {} });
const alice = { user: 'alice', admin: false };
const bob = { user: 'bob', admin: false };

describe('ObjectMetaCache', () => {
  it('answers only for the same user, bucket, key and blob id', () => {
    const c = new ObjectMetaCache();
    c.set(alice, 'b', 'k', meta('k', 'aa'));
    expect(c.get(alice, 'b', 'k', 'aa')?.etag).toBe('"e"');
    expect(c.get(bob, 'b', 'k', 'aa')).toBeNull();
    expect(c.get(alice, 'b2', 'k', 'aa')).toBeNull();
    expect(c.get(alice, 'b', 'k2', 'aa')).toBeNull();
    expect(c.get(alice, 'b', 'k', 'bb')).toBeNull();
    expect(c.get({ user: 'alice', admin: true }, 'b', 'k', 'aa')).toBeNull();
  });

  it('expires entries after ttlMs and keeps at most max', () => {
    let t = 0;
    const c = new ObjectMetaCache({ ttlMs: 1000, max: 2, now: () => t });
    c.set(alice, 'b', 'k1', meta('k1', 'a1'));
    c.set(alice, 'b', 'k2', meta('k2', 'a2'));
    c.set(alice, 'b', 'k3', meta('k3', 'a3'));
    expect(c.size).toBe(2);
    expect(c.get(alice, 'b', 'k1', 'a1')).toBeNull();
    expect(c.get(alice, 'b', 'k3', 'a3')).not.toBeNull();
    t = 1000;
    expect(c.get(alice, 'b', 'k3', 'a3')).toBeNull();
  });
});

describe('GET and HEAD with the cache', () => {
  let env: S3TestEnv;
  let client: S3TestClient;
  beforeAll(async () => {
    env = await startS3TestEnv({ backend: 'gateway' });
    client = new S3TestClient(env.url, env.caPem, await env.accessKey('alice'));
    expect((await client.send('PUT', '/cache')).status).toBe(200);
  });
  afterAll(async () => {
    await env?.close();
  });

  it('a replaced object answers its new ETag and headers at once; ranged GETs agree with the whole', async () => {
    const one = Buffer.alloc(100_000, 1);
    expect((await client.send('PUT', '/cache/o', { body: one, headers: { 'content-type': 'text/one' } })).status).toBe(200);
    const h1 = await client.send('HEAD', '/cache/o');
    const r1 = await client.send('GET', '/cache/o', { headers: { range: 'bytes=10-19' } });
    expect(r1.status).toBe(206);
    expect(r1.headers.etag).toBe(h1.headers.etag);
    expect(r1.headers['content-type']).toBe('text/one');
    const two = Buffer.alloc(100_000, 2);
    expect((await client.send('PUT', '/cache/o', { body: two, headers: { 'content-type': 'text/two' } })).status).toBe(200);
    const r2 = await client.send('GET', '/cache/o', { headers: { range: 'bytes=10-19' } });
    expect(r2.headers.etag).not.toBe(h1.headers.etag);
    expect(r2.headers['content-type']).toBe('text/two');
    expect(r2.body.equals(two.subarray(10, 20))).toBe(true);
    expect((await client.send('GET', '/cache/o', { headers: { 'if-match': h1.headers.etag as string } })).status).toBe(412);
  });
});
