// Tests of the S3-compatible ChunkStore against a real S3 server (moto's, started by test/setup/global.ts): the
// shared contract suite, then what only S3 has: the object layout, multipart uploads for large objects and
// abandoned ones swept, a missing bucket, and faults injected by a proxy (500/503 answers and dropped
// connections retried with backoff, then a clear error). Mandatory in CI: fails instead of skipping.
import { randomBytes } from 'node:crypto';
import { CreateMultipartUploadCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startFaultProxy, type FaultProxy } from '../../test/servers/fault-proxy.js';
import { expectCode, newBlobId, pieces, runChunkStoreContract, sha256 } from '../contract.case.js';
import { openChunkStore } from '../index.js';
import { dropBucket, freshBucket, openTestS3Store, testS3Client } from './test-util.js';
import { S3_TEST_CREDENTIALS, S3_TEST_REGION } from '../../test/servers/s3-server.js';

const endpoint = inject('s3Endpoint');
if (!endpoint && process.env.CI === 'true') throw new Error(`no S3-compatible test server in CI: ${inject('s3UnavailableReason')}`);
const MiB = 1024 * 1024;

describe.skipIf(!endpoint)('S3 chunk store', () => {
  const url = endpoint as string;

  runChunkStoreContract('s3 (moto)', async () => {
    const store = await openTestS3Store(url);
    return { store, cleanup: () => dropBucket(url, store.bucket) };
  }, { packs: false }); // no putPack on S3: docs/storage-backend.md "Packs"

  describe('on S3', () => {
    it('lays chunks out as <prefix>chunks/<hex[0:2]>/<hex[2:4]>/<blob>/<index as 8 hex>, like the fs store', async () => {
      const store = await openTestS3Store(url, { prefix: 'team/a' });
      try {
        const blobId = `ab12${randomBytes(14).toString('hex')}`;
        await store.put({ blobId, index: 0x1f }, pieces(randomBytes(10)));
        const client = testS3Client(url);
        const keys = (await client.send(new ListObjectsV2Command({ Bucket: store.bucket }))).Contents?.map((c) => c.Key);
        client.destroy();
        expect(keys).toEqual([`team/a/chunks/ab/12/${blobId}/0000001f`]);
      } finally {
        await store.close();
      }
    });

    it('stores an object above 16 MiB as a multipart upload, and sweepTemporary aborts abandoned uploads', async () => {
      const store = await openTestS3Store(url);
      try {
        const ref = { blobId: newBlobId(), index: 0 };
        const data = randomBytes(17 * MiB + 5);
        expect((await store.put(ref, pieces(data, MiB))).sha256).toBe(sha256(data));
        expect(sha256(await buffer(await store.get(ref)))).toBe(sha256(data));
        expect(await store.sweepTemporary(0)).toBe(0);
        // a crash mid-upload leaves an unfinished multipart upload: invisible, and swept
        const client = testS3Client(url);
        await client.send(new CreateMultipartUploadCommand({ Bucket: store.bucket, Key: store.keyOf({ blobId: ref.blobId, index: 1 }) }));
        client.destroy();
        expect(await store.list(ref.blobId)).toEqual([0]);
        // (moto reports no initiation time, so "old enough" is not testable here: a missing time counts as old)
        expect(await store.sweepTemporary(0)).toBe(1);
        expect(await store.sweepTemporary(0)).toBe(0);
      } finally {
        await store.close();
      }
    }, 60_000);

    it('refuses a bucket that does not exist (UNAVAILABLE) and bad options (INVALID_ARGUMENT)', async () => {
      const base = { kind: 's3' as const, endpoint: url, region: S3_TEST_REGION, forcePathStyle: true, credentials: S3_TEST_CREDENTIALS };
      const e = await expectCode(openChunkStore({ ...base, bucket: 'no-such-bucket-here' }), 'UNAVAILABLE');
      expect(e.message).toMatch(/does not exist/);
      await expectCode(openChunkStore({ ...base, bucket: 'Bad_Bucket' }), 'INVALID_ARGUMENT');
      await expectCode(openChunkStore({ ...base, bucket: 'fine-bucket', prefix: '/abs' }), 'INVALID_ARGUMENT');
      await expectCode(openChunkStore({ ...base, bucket: 'fine-bucket', colour: 'red' } as never), 'INVALID_ARGUMENT');
    });
  });

  describe('faults between the store and the server', () => {
    let proxy: FaultProxy;
    let bucket: string;
    beforeAll(async () => {
      proxy = await startFaultProxy(url);
      bucket = await freshBucket(url);
    });
    afterAll(async () => {
      await proxy?.close();
    });

    it('retries 500, 503 and dropped connections with backoff and succeeds', async () => {
      const store = await openTestS3Store(proxy.url, { bucket, maxAttempts: 5 });
      try {
        const ref = { blobId: newBlobId(), index: 0 };
        const data = randomBytes(300_000);
        proxy.inject(503, 2, 'PUT');
        proxy.inject('drop', 1, 'PUT');
        const before = proxy.requests;
        expect((await store.put(ref, pieces(data))).sha256).toBe(sha256(data));
        expect(proxy.requests - before).toBe(4); // three failures, then the PUT that landed
        proxy.inject(500, 2, 'GET');
        expect(sha256(await store.readInto(ref, Buffer.alloc(400_000)))).toBe(sha256(data));
        proxy.inject('drop', 1, 'HEAD');
        expect(await store.stat(ref)).toEqual({ size: data.byteLength });
      } finally {
        await store.close();
      }
    }, 60_000);

    it('gives up after maxAttempts with a clear, retryable UNAVAILABLE, and loses nothing', async () => {
      const store = await openTestS3Store(proxy.url, { bucket, maxAttempts: 3 });
      try {
        const ref = { blobId: newBlobId(), index: 0 };
        const old = randomBytes(1000);
        await store.put(ref, pieces(old));
        proxy.outage(503);
        const e = await expectCode(store.put(ref, pieces(randomBytes(2000))), 'UNAVAILABLE');
        expect(e.retryable).toBe(true);
        expect(e.message).toMatch(/after 3 attempts.*503/);
        proxy.outage('drop');
        expect((await expectCode(store.stat(ref), 'UNAVAILABLE')).retryable).toBe(true);
        proxy.outage(null);
        expect(await buffer(await store.get(ref))).toEqual(old);
      } finally {
        proxy.outage(null);
        await store.close();
      }
    }, 60_000);
  });
});
