// End to end with the chunk files in S3: `coffer serve` with COFFER_CHUNK_STORE=s3://bucket/prefix on moto's
// server (test/setup/global.ts), driven by the real `coffer` command: put/get byte-identical (0 B, 1 B, three
// chunks), ls/mv/rm, overwrite, resume of an interrupted upload's chunks, tamper detection on an S3 object
// that leaves nothing at the destination, fsck-free garbage collection of a replaced blob's objects, and
// `coffer fsck` reading the S3 objects (not the data directory) to find a damaged and a missing one.
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runCliProcess, startServerProcess } from '../../bench/cli-process.js';
import { freshBucket, s3TestEnv, testS3Client } from '../../storage-backend/s3/test-util.js';

const endpoint = inject('s3Endpoint');
if (!endpoint && process.env.CI === 'true') throw new Error(`no S3-compatible test server in CI: ${inject('s3UnavailableReason')}`);
const MiB = 1024 * 1024;

describe.skipIf(!endpoint)('coffer serve with the S3 chunk store', () => {
  let work: string;
  let bucket: string;
  let server: Awaited<ReturnType<typeof startServerProcess>>;
  let env: NodeJS.ProcessEnv;
  let tampered: string | undefined; // blob of /t.bin, whose chunk 1 the tamper test alters in S3
  const coffer = (args: string[]) => runCliProcess(args, env);
  const ok = async (args: string[]): Promise<string> => {
    const r = await coffer(args);
    if (r.code !== 0) throw new Error(`coffer ${args.join(' ')} → ${r.code}: ${r.stderr}`);
    return r.stdout;
  };
  const objects = async (): Promise<Array<{ key: string; size: number }>> => {
    const c = testS3Client(endpoint as string);
    const out = await c.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'vault/chunks/' }));
    c.destroy();
    return (out.Contents ?? []).map((o) => ({ key: o.Key as string, size: o.Size as number }));
  };

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'coffer-e2e-s3-'));
    bucket = await freshBucket(endpoint as string);
    const dataDir = path.join(work, 'data');
    const s3 = { ...s3TestEnv(endpoint as string), COFFER_CHUNK_STORE: `s3://${bucket}/vault` };
    server = await startServerProcess(['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--default-root-role', 'write', '--gc-interval', '1'], s3);
    env = { ...s3, COFFER_SERVER: server.url, COFFER_KEY_FILE: path.join(work, 'k'), COFFER_STATE_DIR: path.join(work, 'state') };
    await ok(['keygen', '--out', path.join(work, 'k')]);
    env.COFFER_TOKEN = (await ok(['token', '--data-dir', dataDir, '--user', 'alice'])).trim();
  }, 180_000);
  afterAll(async () => {
    await server?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('puts and gets byte-identical files of 0 B, 1 B and 3 chunks; the chunks are S3 objects', async () => {
    await ok(['mkdir', '/d']);
    for (const size of [0, 1, 2 * 8 * MiB + 777]) {
      const src = path.join(work, `src-${size}`);
      const bytes = randomBytes(size);
      await writeFile(src, bytes);
      const put = JSON.parse(await ok(['put', src, `/d/f-${size}`, '--json'])) as { blobId: string; chunkCount: number };
      const mine = (await objects()).filter((o) => o.key.includes(put.blobId));
      expect(mine).toHaveLength(put.chunkCount);
      const out = path.join(work, `out-${size}`);
      await ok(['get', `/d/f-${size}`, out]);
      expect((await readFile(out)).equals(bytes)).toBe(true);
    }
    const ls = JSON.parse(await ok(['ls', '/d', '--json'])) as { items: Array<{ name: string }> } | Array<{ name: string }>;
    const names = (Array.isArray(ls) ? ls : ls.items).map((e) => e.name).sort();
    expect(names).toEqual(['f-0', 'f-1', `f-${2 * 8 * MiB + 777}`]);
  }, 240_000);

  it('mv, overwrite and rm work, and GC deletes the objects of released blobs', async () => {
    const a = path.join(work, 'a');
    const b = path.join(work, 'b');
    await writeFile(a, randomBytes(100_000));
    await writeFile(b, randomBytes(50_000));
    const first = JSON.parse(await ok(['put', a, '/x.bin', '--json'])) as { blobId: string };
    await ok(['mv', '/x.bin', '/y.bin']);
    await ok(['put', b, '/y.bin', '--force']);
    const out = path.join(work, 'y.out');
    await ok(['get', '/y.bin', out]);
    expect((await readFile(out)).equals(await readFile(b))).toBe(true);
    // the replaced blob is released at once and purged by GC (every second here)
    for (let i = 0; i < 200 && (await objects()).some((o) => o.key.includes(first.blobId)); i++) await new Promise((r) => setTimeout(r, 100));
    expect((await objects()).some((o) => o.key.includes(first.blobId))).toBe(false);
    await ok(['rm', '/y.bin']);
    expect((await coffer(['stat', '/y.bin'])).code).toBe(3);
  }, 240_000);

  it('a tampered S3 object fails the download with CHUNK_AUTH_FAILED and leaves nothing at the destination', async () => {
    const src = path.join(work, 't');
    await writeFile(src, randomBytes(8 * MiB + 100));
    const put = JSON.parse(await ok(['put', src, '/t.bin', '--json'])) as { blobId: string };
    tampered = put.blobId;
    const key = (await objects()).find((o) => o.key.endsWith(`${put.blobId}/00000001`))?.key as string;
    const c = testS3Client(endpoint as string);
    const body = Buffer.from(await (await c.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToByteArray());
    body[60] = (body[60] as number) ^ 0x01;
    await c.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    c.destroy();
    const out = path.join(work, 't.out');
    const r = await coffer(['get', '/t.bin', out]);
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/CHUNK_AUTH_FAILED/);
    expect(existsSync(out)).toBe(false);
  }, 240_000);

  it('coffer fsck checks the chunk store the service uses (COFFER_CHUNK_STORE): the tampered object, then a deleted one', async () => {
    expect(tampered).toBeDefined();
    const dataDir = path.join(work, 'data');
    type Report = { errors: number; chunksChecked: number; bytesRead: number; problems: Array<{ kind: string; severity: string; blobId: string; index: number }> };
    const errorsOf = (r: Report) => r.problems.filter((p) => p.severity === 'error');
    // with --read-data every object of every committed blob is read from S3 and hashed: only /t.bin's chunk 1 is wrong
    const damaged = await coffer(['fsck', '--data-dir', dataDir, '--read-data', '--json']);
    expect(damaged.code, damaged.stderr).toBe(6);
    const report = JSON.parse(damaged.stdout) as Report;
    expect(errorsOf(report)).toMatchObject([{ kind: 'chunk-damaged', blobId: tampered, index: 1 }]);
    expect(report.chunksChecked).toBe(7); // /d/f-0, /d/f-1, three chunks of /d/f-…, two of /t.bin
    expect(report.bytesRead).toBe(2 * 8 * MiB + 777 + 1 + 8 * MiB + 100 + 7 * 64);
    // an object deleted behind the service's back: found from sizes alone
    const key = (await objects()).find((o) => o.key.endsWith(`${tampered as string}/00000000`))?.key as string;
    const c = testS3Client(endpoint as string);
    await c.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    c.destroy();
    const missing = await coffer(['fsck', '--data-dir', dataDir, '--json']);
    expect(missing.code, missing.stderr).toBe(6);
    expect(errorsOf(JSON.parse(missing.stdout) as Report)).toMatchObject([{ kind: 'chunk-missing', blobId: tampered, index: 0 }]);
    // once the file is gone (its blob released), fsck is clean: it never looked at the empty data directory's chunks
    await ok(['rm', '/t.bin']);
    const clean = JSON.parse(await ok(['fsck', '--data-dir', dataDir, '--read-data', '--json'])) as Report;
    expect(clean).toMatchObject({ errors: 0, chunksChecked: 5 });
  }, 240_000);
});
