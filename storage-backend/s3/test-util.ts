// Test support (not a test file): fresh buckets on the S3-compatible test server from test/setup/global.ts.
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, DeleteBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { S3_TEST_CREDENTIALS, S3_TEST_REGION } from '../../test/servers/s3-server.js';
import { openS3ChunkStore, type S3ChunkStore, type S3ChunkStoreOptions } from './index.js';

export function testS3Client(endpoint: string): S3Client {
  return new S3Client({ endpoint, region: S3_TEST_REGION, forcePathStyle: true, credentials: { ...S3_TEST_CREDENTIALS } });
}

/** Creates a bucket with a fresh name and returns it. */
export async function freshBucket(endpoint: string): Promise<string> {
  const bucket = `coffer-test-${randomBytes(6).toString('hex')}`;
  const client = testS3Client(endpoint);
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
  return bucket;
}

/** Best effort: moto drops everything with the process anyway. */
export async function dropBucket(endpoint: string, bucket: string): Promise<void> {
  const client = testS3Client(endpoint);
  await client.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => undefined);
  client.destroy();
}

export async function openTestS3Store(endpoint: string, extra: Partial<S3ChunkStoreOptions> = {}): Promise<S3ChunkStore> {
  const bucket = extra.bucket ?? (await freshBucket(endpoint));
  return openS3ChunkStore({ endpoint, region: S3_TEST_REGION, forcePathStyle: true, credentials: S3_TEST_CREDENTIALS, prefix: 'vault-1/', ...extra, bucket });
}

/** Test env for processes (the CLI, the service) that take S3 settings from the environment. */
export function s3TestEnv(endpoint: string): NodeJS.ProcessEnv {
  return {
    AWS_ENDPOINT_URL_S3: endpoint, AWS_REGION: S3_TEST_REGION, COFFER_S3_FORCE_PATH_STYLE: 'true',
    AWS_ACCESS_KEY_ID: S3_TEST_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3_TEST_CREDENTIALS.secretAccessKey,
  };
}
