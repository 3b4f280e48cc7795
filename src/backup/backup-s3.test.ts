// Backup with S3-compatible storage (moto's server from test/setup/global.ts), through the real `coffer` command:
// create / verify / list / prune / restore with an s3:// target; a vault whose own chunks live in S3
// (COFFER_CHUNK_STORE) backed up to a directory and restored; a target whose server fails (retried, then a
// clear error and a resumable state). Mandatory in CI.
import { DeleteObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runCliProcess } from '../../bench/cli-process.js';
import { freshBucket, s3TestEnv, testS3Client } from '../../storage-backend/s3/test-util.js';
import { startFaultProxy } from '../../test/servers/fault-proxy.js';
import { serveVault, workspace, type LiveVault, type Workspace } from './test-support.js';

const endpoint = inject('s3Endpoint');
if (!endpoint && process.env.CI === 'true') throw new Error(`no S3-compatible test server in CI: ${inject('s3UnavailableReason')}`);
const MiB = 1024 * 1024;

describe.skipIf(!endpoint)('backup with S3', () => {
  const url = endpoint as string;
  let ws: Workspace;
  let vault: LiveVault;
  const files = new Map<string, Buffer>();
  const env = (): NodeJS.ProcessEnv => s3TestEnv(url);
  const ok = async (args: string[], extra: NodeJS.ProcessEnv = {}): Promise<string> => {
    const r = await runCliProcess(args, { ...env(), ...extra });
    if (r.code !== 0) throw new Error(`coffer ${args.join(' ')} → ${r.code}: ${r.stderr}`);
    return r.stdout;
  };

  beforeAll(async () => {
    ws = await workspace();
    vault = await serveVault(path.join(ws.dir, 'vault'));
    await vault.client.mkdir('/d');
    files.set('/a.bin', await ws.put(vault, '/a.bin', 8 * MiB + 10));
    files.set('/d/b.bin', await ws.put(vault, '/d/b.bin', 0));
    files.set('/d/c.bin', await ws.put(vault, '/d/c.bin', 40_000));
  }, 120_000);
  afterAll(async () => {
    await vault?.close();
    await ws?.close();
  });

  it('create, verify, list, prune and restore with an s3:// target; verify names files whose chunks are gone', async () => {
    const bucket = await freshBucket(url);
    const target = `s3://${bucket}/backups/lab`;
    const first = JSON.parse(await ok(['backup', 'create', '--to', target, '--data-dir', vault.dataDir, '--json'])) as { snapshot: string; chunksCopied: number };
    expect(first.chunksCopied).toBe(4);
    const second = JSON.parse(await ok(['backup', 'create', '--to', target, '--data-dir', vault.dataDir, '--json'])) as { snapshot: string; chunksCopied: number; chunksUnchanged: number };
    expect(second).toMatchObject({ chunksCopied: 0, chunksUnchanged: 4 });
    expect(JSON.parse(await ok(['backup', 'verify', target, '--json']))).toMatchObject({ ok: true, chunksChecked: 4 });
    const list = JSON.parse(await ok(['backup', 'list', target, '--json'])) as Array<{ id: string }>;
    expect(list.map((s) => s.id)).toEqual([first.snapshot, second.snapshot]);

    const dest = path.join(ws.dir, 'from-s3');
    expect(JSON.parse(await ok(['backup', 'restore', target, '--to', dest, '--json']))).toMatchObject({ files: 3, chunksCopied: 4 });
    const restored = await serveVault(dest);
    try {
      for (const [p, bytes] of files) expect((await ws.get(restored, p)).equals(bytes), p).toBe(true);
    } finally {
      await restored.close();
    }

    expect(JSON.parse(await ok(['backup', 'prune', target, '--keep-last', '1', '--json']))).toMatchObject({ kept: [second.snapshot], chunksDeleted: 0 });
    // delete one chunk object behind the tool's back: verify names the file
    const client = testS3Client(url);
    const keys = ((await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'backups/lab/chunks/' }))).Contents ?? []).map((c) => c.Key as string);
    expect(keys).toHaveLength(4);
    const sizes = ((await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'backups/lab/chunks/' }))).Contents ?? []).map((c) => [c.Key, c.Size] as const);
    const small = sizes.find(([, size]) => size === 40_000 + 64)?.[0] as string;
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: small }));
    client.destroy();
    const bad = await runCliProcess(['backup', 'verify', target, '--json'], env());
    expect(bad.code).toBe(6);
    expect(JSON.parse(bad.stdout)).toMatchObject({ ok: false, affectedFiles: ['/d/c.bin'], problems: [{ kind: 'missing', index: 0, files: ['/d/c.bin'] }] });
  }, 180_000);

  it('a vault whose chunks live in S3 (COFFER_CHUNK_STORE) is backed up to a directory and restored back into S3', async () => {
    const bucket = await freshBucket(url);
    const s3Env = { ...env(), COFFER_CHUNK_STORE: `s3://${bucket}/vault` };
    const saved = { ...process.env };
    Object.assign(process.env, s3Env);
    let live: LiveVault | undefined;
    try {
      live = await serveVault(path.join(ws.dir, 's3-vault'));
      await live.client.mkdir('/x');
      const bytes = await ws.put(live, '/x/y.bin', 9 * MiB);
      const target = path.join(ws.dir, 'b-from-s3-vault');
      expect(JSON.parse(await ok(['backup', 'create', '--to', target, '--data-dir', live.dataDir, '--json'], s3Env))).toMatchObject({ files: 1, chunksCopied: 2 });
      await live.close();
      live = undefined;
      // restore into a fresh data dir whose chunk store is another S3 prefix
      const restoreEnv = { ...env(), COFFER_CHUNK_STORE: `s3://${bucket}/restored` };
      const dest = path.join(ws.dir, 's3-restored');
      expect(JSON.parse(await ok(['backup', 'restore', target, '--to', dest, '--json'], restoreEnv))).toMatchObject({ files: 1, chunksCopied: 2 });
      process.env.COFFER_CHUNK_STORE = restoreEnv.COFFER_CHUNK_STORE;
      live = await serveVault(dest);
      expect((await ws.get(live, '/x/y.bin')).equals(bytes)).toBe(true);
    } finally {
      await live?.close();
      for (const k of Object.keys(s3Env)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  }, 180_000);

  it('a target server that keeps failing ends the run with a clear error; the next run resumes', async () => {
    const bucket = await freshBucket(url);
    const proxy = await startFaultProxy(url);
    try {
      const proxied = { ...env(), AWS_ENDPOINT_URL_S3: proxy.url };
      const target = `s3://${bucket}/flaky`;
      proxy.inject(503, 2); // transient: retried with backoff, the run succeeds
      const first = JSON.parse(await ok(['backup', 'create', '--to', target, '--data-dir', vault.dataDir, '--json'], proxied)) as { chunksCopied: number };
      expect(first.chunksCopied).toBe(4);
      files.set('/late.bin', await ws.put(vault, '/late.bin', 3 * MiB));
      proxy.outage(500); // an outage: every attempt fails
      const failed = await runCliProcess(['backup', 'create', '--to', target, '--data-dir', vault.dataDir], proxied);
      expect(failed.code).toBe(7);
      expect(failed.stderr.trim().split('\n')).toHaveLength(1);
      expect(failed.stderr).toMatch(/failed after \d+ attempts .*HTTP 500/);
      proxy.outage(null);
      const again = JSON.parse(await ok(['backup', 'create', '--to', target, '--data-dir', vault.dataDir, '--json'], proxied)) as { chunksCopied: number; files: number };
      expect(again).toMatchObject({ files: 4, chunksCopied: 1 });
      expect(JSON.parse(await ok(['backup', 'verify', target, '--json'], proxied))).toMatchObject({ ok: true });
    } finally {
      await proxy.close();
    }
  }, 180_000);
});
