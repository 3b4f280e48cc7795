// A crash of the storage service at any point: `coffer serve` is killed with SIGKILL in the middle of an
// upload and started again on the same data directory and port. Every committed file stays readable, the
// half-done upload is never visible as a file, the client's retries carry the upload through the restart, and
// the audit chain and `coffer fsck --read-data` both find the vault consistent, right after the restart and at the end.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCliProcess, startServerProcess } from '../../bench/cli-process.js';
import { KeyFileDataKeys } from '../../src/client/data-keys.js';
import { uploadStream } from '../../src/client/upload.js';
import { VaultClient } from '../../src/client/vault-client.js';

const MiB = 1024 * 1024;
let work: string | undefined;
let server: Awaited<ReturnType<typeof startServerProcess>> | undefined;

afterAll(async () => {
  await server?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('coffer serve killed mid-upload', () => {
  it('keeps committed files, hides the half-done one, and lets the client finish after the restart', async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'coffer-crash-'));
    const dataDir = path.join(work, 'data');
    const keyFile = path.join(work, 'k.key');
    server = await startServerProcess(['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--default-root-role', 'write']);
    const port = new URL(server.url).port;
    const env = { COFFER_SERVER: server.url, COFFER_KEY_FILE: keyFile, COFFER_TOKEN: '' };
    expect((await runCliProcess(['keygen', '--out', keyFile])).code).toBe(0);
    env.COFFER_TOKEN = (await runCliProcess(['token', '--data-dir', dataDir, '--user', 'alice'])).stdout.trim();
    const run = (args: string[]) => runCliProcess(args, env);

    // a committed file before the crash
    const first = randomBytes(8 * MiB + 17);
    await writeFile(path.join(work, 'first.bin'), first);
    expect((await run(['put', path.join(work, 'first.bin'), '/first.bin'])).code).toBe(0);

    // an upload whose source trickles: the service is killed after two chunks are durable
    const second = randomBytes(5 * 8 * MiB + 3);
    const client = new VaultClient({ server: server.url, token: env.COFFER_TOKEN });
    const keys = await KeyFileDataKeys.open(keyFile);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    async function* trickle(): AsyncIterable<Uint8Array> {
      yield second.subarray(0, 3 * 8 * MiB); // chunks 0 and 1 go out (2 waits for look-ahead)
      await gate;
      yield second.subarray(3 * 8 * MiB);
    }
    const upload = uploadStream(client, trickle(), second.length, { path: '/second.bin', keys, concurrency: 2 });
    const firstBlob = (JSON.parse((await run(['stat', '/first.bin', '--json'])).stdout) as { blobId: string }).blobId;
    let durable = 0;
    for (let i = 0; i < 400 && durable < 2; i++) {
      await new Promise((r) => setTimeout(r, 25));
      durable = await chunkFilesOfOtherBlobs(dataDir, firstBlob);
    }
    expect(durable).toBeGreaterThanOrEqual(2);
    // mid-upload, the new file is not in the tree
    const ls = JSON.parse((await run(['ls', '/', '--json'])).stdout) as Array<{ name: string }>;
    expect(ls.map((e) => e.name)).toEqual(['first.bin']);
    server.child.kill('SIGKILL');
    await new Promise((r) => server?.child.once('close', r));
    server = await startServerProcess(['serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`, '--default-root-role', 'write']);
    // fsck, reading every chunk file: the crash left a consistent vault (the half-done upload is an
    // `uploading` blob, not a file, and not damage)
    const after = await run(['fsck', '--data-dir', dataDir, '--read-data', '--json']);
    expect(after.code, after.stderr).toBe(0);
    expect(JSON.parse(after.stdout)).toMatchObject({ problems: [], files: 1, unreachable: 0, blobs: { committed: 1, uploading: 1, deleting: 0 }, chunksChecked: 2 });
    release();
    const done = await upload;
    client.close();
    expect(done.chunkCount).toBe(6);

    const out1 = path.join(work, 'first.out');
    const out2 = path.join(work, 'second.out');
    expect((await run(['get', '/first.bin', out1])).code).toBe(0);
    expect((await run(['get', '/second.bin', out2])).code).toBe(0);
    expect((await readFile(out1)).equals(first)).toBe(true);
    expect((await readFile(out2)).equals(second)).toBe(true);
    const audit = await run(['audit', 'verify', '--data-dir', dataDir, '--json']);
    expect(audit.code, audit.stderr).toBe(0);
    const end = await run(['fsck', '--data-dir', dataDir, '--read-data', '--json']);
    expect(end.code, end.stderr).toBe(0);
    expect(JSON.parse(end.stdout)).toMatchObject({ problems: [], files: 2, blobs: { committed: 2, uploading: 0 }, chunksChecked: 8 });
  });
});

/** Chunk files (not temporaries) of every blob but one, counted in the data directory's chunk tree. */
async function chunkFilesOfOtherBlobs(dataDir: string, except: string): Promise<number> {
  let n = 0;
  const root = path.join(dataDir, 'chunks');
  for (const a of await readdir(root).catch(() => [] as string[])) {
    for (const b of await readdir(path.join(root, a)).catch(() => [] as string[])) {
      for (const blob of await readdir(path.join(root, a, b)).catch(() => [] as string[])) {
        if (blob === except) continue;
        n += (await readdir(path.join(root, a, b, blob)).catch(() => [] as string[])).filter((f) => !f.startsWith('.')).length;
      }
    }
  }
  return n;
}
