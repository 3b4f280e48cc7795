// The S3 layer over the enclave gateway's FileOps (gateway-backend.ts): the same requests as a client makes,
// answered through the gateway's sealing and ranged reads (the data keys come from a key file here, not the KMS).
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3TestClient, md5Hex } from './test-client.js';
import { startS3TestEnv, type S3TestEnv } from './test-env.js';

let env: S3TestEnv;
let s3: S3TestClient;

beforeAll(async () => {
  env = await startS3TestEnv({ backend: 'gateway', macs: true, limits: { minPartSize: 1024 * 1024 } });
  s3 = new S3TestClient(env.url, env.caPem, await env.accessKey('alice'));
  expect((await s3.send('PUT', '/gwb')).status).toBe(200);
});

afterAll(async () => {
  await env?.close();
});

describe('S3 over the gateway FileOps', () => {
  const big = randomBytes(9 * 1024 * 1024 + 3);

  it('put, get, ranges across a chunk boundary, metadata, list, delete', async () => {
    const put = await s3.send('PUT', '/gwb/d/big.bin', { body: big, headers: { 'x-amz-meta-a': 'b', 'content-type': 'application/x-b' } });
    expect(put.headers.etag).toBe(`"${md5Hex(big)}"`);
    const g = await s3.send('GET', '/gwb/d/big.bin');
    expect(g.body.equals(big)).toBe(true);
    expect([g.headers['x-amz-meta-a'], g.headers['content-type']]).toEqual(['b', 'application/x-b']);
    const from = 8 * 1024 * 1024 - 5;
    const r = await s3.send('GET', '/gwb/d/big.bin', { headers: { range: `bytes=${from}-${from + 9}` } });
    expect(r.body.equals(big.subarray(from, from + 10))).toBe(true);
    expect((await s3.send('GET', '/gwb', { query: { 'list-type': '2' } })).text).toContain('<Key>d/big.bin</Key>');
    expect((await s3.send('PUT', '/gwb/d/big.bin', { body: 'x', headers: { 'if-none-match': '*' } })).code).toBe('PreconditionFailed');
    expect((await s3.send('DELETE', '/gwb/d/big.bin')).status).toBe(204);
    expect((await s3.send('GET', '/gwb/d/big.bin')).code).toBe('NoSuchKey');
  });

  it('a GET opens the object once: few storage requests before the first byte', async () => {
    const body = randomBytes(100_000);
    await s3.send('PUT', '/gwb/count.bin', { body });
    const log: string[] = [];
    const onRequest = (req: IncomingMessage): void => void log.push(`${req.method} ${(req.url ?? '').split('?')[0]}`);
    env.storage.server.server.on('request', onRequest);
    try {
      const count = async (method: string, headers: Record<string, string> = {}): Promise<string[]> => {
        log.length = 0;
        const r = await s3.send(method, '/gwb/count.bin', { headers });
        expect(r.status).toBeLessThan(300);
        if (method === 'GET') expect(r.body.equals(body)).toBe(true);
        return [...log];
      };
      await count('GET'); // the sidecar is read (and cached) once
      // with record MACs: the user's status, the manifest (with its node), the access records, then the chunk;
      // it was 7 when a GET stat-ed, then opened the file (records admitted and fetched twice)
      const get = await count('GET');
      expect(get.filter((r) => r === 'GET /v1/fs/manifest')).toHaveLength(1);
      expect(get.filter((r) => r.startsWith('GET /v1/blobs/'))).toHaveLength(1);
      expect(get).toHaveLength(4);
      // a HEAD needs no manifest (so no data key): user status, access, stat
      const head = await count('HEAD');
      expect(head).toEqual(['GET /v1/integrity/user', 'GET /v1/integrity/access', 'GET /v1/fs/stat']);
    } finally {
      env.storage.server.server.off('request', onRequest);
    }
  });

  it('a chunk corrupted on disk: an S3 error before the first byte, a cut connection after it, never a wrong byte', async () => {
    const bytes = randomBytes(2 * 8 * 1024 * 1024);
    expect((await s3.send('PUT', '/gwb/corrupt.bin', { body: bytes })).status).toBe(200);
    const blobId = (await env.backend.stat({ user: 'alice', admin: false }, '/gwb/corrupt.bin')).blobId as string;
    const chunk1 = path.join(env.storage.env.dir, 'store', 'chunks', blobId.slice(0, 2), blobId.slice(2, 4), blobId, '00000001');
    const sealed = await readFile(chunk1);
    sealed[1000] = (sealed[1000] as number) ^ 0x01;
    await writeFile(chunk1, sealed);
    const early = await s3.send('GET', '/gwb/corrupt.bin', { headers: { range: 'bytes=0-999' } });
    expect(early.body.equals(bytes.subarray(0, 1000))).toBe(true);
    // the body is sent only once its first chunk opened: a bad first chunk is still an S3 error document
    const late = await s3.send('GET', '/gwb/corrupt.bin', { headers: { range: `bytes=${8 * 1024 * 1024}-` } });
    expect([late.status, late.code]).toEqual([500, 'InternalError']);
    // the whole object: the good chunk's bytes went out, then the connection is cut (the client sees an error)
    await expect(s3.send('GET', '/gwb/corrupt.bin')).rejects.toThrow();
  });

  it('multipart upload and copy', async () => {
    const id = /<UploadId>([^<]+)</.exec((await s3.send('POST', '/gwb/mp', { query: { uploads: '' } })).text)?.[1] as string;
    const a = big.subarray(0, 1024 * 1024);
    const b = big.subarray(1024 * 1024, 1024 * 1024 + 10);
    const e2 = (await s3.send('PUT', '/gwb/mp', { query: { uploadId: id, partNumber: '2' }, body: b })).headers.etag;
    const e1 = (await s3.send('PUT', '/gwb/mp', { query: { uploadId: id, partNumber: '1' }, body: a })).headers.etag;
    const xml = `<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>${e1}</ETag></Part><Part><PartNumber>2</PartNumber><ETag>${e2}</ETag></Part></CompleteMultipartUpload>`;
    expect((await s3.send('POST', '/gwb/mp', { query: { uploadId: id }, body: xml })).status).toBe(200);
    expect((await s3.send('GET', '/gwb/mp')).body.equals(Buffer.concat([a, b]))).toBe(true);
    expect((await s3.send('PUT', '/gwb/mp-copy', { headers: { 'x-amz-copy-source': '/gwb/mp' } })).status).toBe(200);
    expect((await s3.send('GET', '/gwb/mp-copy')).body.equals(Buffer.concat([a, b]))).toBe(true);
  });
});
