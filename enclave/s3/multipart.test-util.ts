// Test support (not a test file): the multipart tests' shared kit (multipart-placed.test.ts,
// multipart-joined.test.ts). One S3 stack over the gateway's FileOps with record MACs on, a bucket, and the
// requests those tests repeat (Create, UploadPart, Complete) plus what they inspect (the placed blob, the
// object's blob, its bytes). `useMultipartKit` registers the env's start and stop with vitest.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, expect } from 'vitest';
import { mintDevToken } from '../../src/api/auth/index.js';
import { VaultClient } from '../../src/client/vault-client.js';
import { S3TestClient, md5Hex } from './test-client.js';
import { startS3TestEnv, type S3TestEnv } from './test-env.js';

export const MiB = 1024 * 1024;

export interface MultipartKit {
  readonly bucket: string;
  readonly alice: { user: string; admin: boolean };
  /** Set in beforeAll. */
  env: S3TestEnv;
  s3: S3TestClient;
  /** The storage service as alice's token reaches it: what the host can do to her records. */
  host: VaultClient;
  create(key: string): Promise<string>;
  part(key: string, id: string, n: number, body: Buffer, headers?: Record<string, string>): Promise<{ status: number; etag: string; code: string | null }>;
  /** Uploads parts `numbers` (1-based into `bodies`), `parallel` at a time in the order given, as rclone does. */
  parts(key: string, id: string, bodies: Buffer[], numbers: number[], parallel: number): Promise<Map<number, string>>;
  complete(key: string, id: string, list: Array<[number, string]>): Promise<{ status: number; text: string; code: string | null }>;
  /** The upload's directory of records. */
  dirOf(id: string): string;
  /** The blob the upload opened at Create (from its sealed upload.json, read through the enclave's backend). */
  placedBlobOf(id: string): Promise<string>;
  objectBlob(key: string): Promise<string | null>;
  expectObject(key: string, want: Buffer): Promise<void>;
}

/** Parts 1..count with their ETags, for Complete. */
export const all = (etags: Map<number, string>, count: number): Array<[number, string]> => Array.from({ length: count }, (_, i) => [i + 1, etags.get(i + 1) as string]);

export const multipartEtag = (bodies: Buffer[]): string => `"${createHash('md5').update(Buffer.concat(bodies.map((p) => Buffer.from(md5Hex(p), 'hex')))).digest('hex')}-${bodies.length}"`;

export function useMultipartKit(bucket: string): MultipartKit {
  const alice = { user: 'alice', admin: false };
  const k = { bucket, alice } as MultipartKit;

  beforeAll(async () => {
    k.env = await startS3TestEnv({ backend: 'gateway', macs: true, limits: { minPartSize: 1 * MiB } });
    k.s3 = new S3TestClient(k.env.url, k.env.caPem, await k.env.accessKey('alice'));
    k.host = new VaultClient({ server: k.env.storage.url, token: await mintDevToken(k.env.storage.env.dir, { user: 'alice', admin: false, ttlSeconds: 3600 }) });
    expect((await k.s3.send('PUT', `/${bucket}`)).status).toBe(200);
  }, 60_000);

  afterAll(async () => {
    k.host?.close();
    await k.env?.close();
  });

  k.create = async (key) => {
    const r = await k.s3.send('POST', `/${bucket}/${key}`, { query: { uploads: '' } });
    expect(r.status).toBe(200);
    return /<UploadId>([^<]+)</.exec(r.text)?.[1] as string;
  };
  k.part = async (key, id, n, body, headers = {}) => {
    const r = await k.s3.send('PUT', `/${bucket}/${key}`, { query: { uploadId: id, partNumber: String(n) }, body, headers });
    return { status: r.status, etag: r.headers.etag ?? '', code: r.code };
  };
  k.parts = async (key, id, bodies, numbers, parallel) => {
    const etags = new Map<number, string>();
    const queue = [...numbers];
    await Promise.all(Array.from({ length: parallel }, async () => {
      for (let n = queue.shift(); n !== undefined; n = queue.shift()) {
        const r = await k.part(key, id, n, bodies[n - 1] as Buffer);
        expect(r.status).toBe(200);
        etags.set(n, r.etag);
      }
    }));
    return etags;
  };
  k.complete = async (key, id, list) => {
    const xml = `<CompleteMultipartUpload>${list.map(([n, e]) => `<Part><PartNumber>${n}</PartNumber><ETag>${e}</ETag></Part>`).join('')}</CompleteMultipartUpload>`;
    const r = await k.s3.send('POST', `/${bucket}/${key}`, { query: { uploadId: id }, body: xml });
    return { status: r.status, text: r.text, code: r.code ?? (/<Code>([^<]+)</.exec(r.text)?.[1] ?? null) };
  };
  k.dirOf = (id) => `/${bucket}/.coffer-s3/uploads/${id}`;
  k.placedBlobOf = async (id) => {
    const { body } = await k.env.backend.read(alice, `${k.dirOf(id)}/upload.json`);
    const bytes: Buffer[] = [];
    for await (const p of body) bytes.push(Buffer.from(p));
    return (JSON.parse(Buffer.concat(bytes).toString('utf8')) as { blob: { blobId: string } }).blob.blobId;
  };
  k.objectBlob = async (key) => (await k.env.backend.stat(alice, `/${bucket}/${key}`)).blobId;
  k.expectObject = async (key, want) => {
    const g = await k.s3.send('GET', `/${bucket}/${key}`);
    expect(g.status).toBe(200);
    expect(createHash('sha256').update(g.body).digest('hex')).toBe(createHash('sha256').update(want).digest('hex'));
  };
  return k;
}
