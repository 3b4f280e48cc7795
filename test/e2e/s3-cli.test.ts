// The S3 endpoint through the real `coffer` command: `coffer serve` + `coffer s3 serve` as processes, access
// keys made, listed and revoked with `coffer access-key`, requests signed by the AWS SDK signer over https
// trusting only the certificate the endpoint printed.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliProcess, spawnCli, startServerProcess } from '../../bench/cli-process.js';
import { S3TestClient } from '../../enclave/s3/test-client.js';

let work: string;
let dataDir: string;
let storage: Awaited<ReturnType<typeof startServerProcess>>;
let s3: { url: string; cert: string; stop(): Promise<void> };

async function ok(args: string[]): Promise<string> {
  const r = await runCliProcess(args);
  if (r.code !== 0) throw new Error(`coffer ${args.join(' ')} → ${r.code}: ${r.stderr}`);
  return r.stdout;
}

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'coffer-s3-cli-'));
  dataDir = path.join(work, 'data');
  storage = await startServerProcess(['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--default-root-role', 'write']);
  const child = spawnCli(['s3', 'serve', '--data-dir', dataDir, '--server', storage.url, '--listen', '127.0.0.1:0']);
  s3 = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`coffer s3 serve did not start: ${out}`)), 60_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /S3 endpoint: (https:\/\/\S+) .*certificate to pin: (\S+)\)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1] as string, cert: m[2] as string, stop: () => new Promise<void>((r) => { child.once('close', () => r()); child.kill('SIGTERM'); }) });
      }
    });
    child.on('close', (code) => reject(new Error(`coffer s3 serve exited with ${code}: ${out}`)));
  });
}, 120_000);

afterAll(async () => {
  await s3?.stop();
  await storage?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('coffer access-key and coffer s3 serve', () => {
  it('a key made by the CLI works until it is revoked; its secret is stored only sealed', async () => {
    const made = JSON.parse(await ok(['access-key', 'create', '--data-dir', dataDir, '--user', 'alice', '--json'])) as { accessKeyId: string; secretAccessKey: string };
    expect(made.accessKeyId).toMatch(/^CFR[A-Z2-7]{17}$/);
    const stored = await readFile(path.join(dataDir, 's3', 'access-keys.json'), 'utf8');
    expect(stored).toContain(made.accessKeyId);
    expect(stored).not.toContain(made.secretAccessKey);
    const listed = JSON.parse(await ok(['access-key', 'list', '--data-dir', dataDir, '--json'])) as { keys: Array<{ id: string; user: string }> };
    expect(listed.keys).toContainEqual(expect.objectContaining({ id: made.accessKeyId, user: 'alice' }));
    expect(JSON.stringify(listed)).not.toContain(made.secretAccessKey);

    const client = new S3TestClient(s3.url, await readFile(s3.cert, 'utf8'), { id: made.accessKeyId, secret: made.secretAccessKey });
    expect((await client.send('PUT', '/cli-bucket')).status).toBe(200);
    expect((await client.send('PUT', '/cli-bucket/hello.txt', { body: 'hello' })).status).toBe(200);
    expect((await client.send('GET', '/cli-bucket/hello.txt')).text).toBe('hello');
    // the same file through the native API
    expect((await ok(['ls', '/cli-bucket', '--server', storage.url, '--token', (await ok(['token', '--data-dir', dataDir, '--user', 'alice'])).trim()]))).toContain('hello.txt');

    await ok(['access-key', 'revoke', made.accessKeyId, '--data-dir', dataDir]);
    expect((await client.send('GET', '/cli-bucket/hello.txt')).code).toBe('InvalidAccessKeyId');
    const again = await runCliProcess(['access-key', 'revoke', made.accessKeyId, '--data-dir', dataDir]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('NOT_FOUND');
  });

  it('refuses a user name the vault refuses', async () => {
    const r = await runCliProcess(['access-key', 'create', '--data-dir', dataDir, '--user', ':system']);
    expect(r.code).not.toBe(0);
  });

  it('the endpoint certificate is what curl needs, and nothing else', () => {
    const pinned = spawnSync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', s3.cert, `${s3.url}/`]);
    expect(pinned.stdout.toString()).toBe('403'); // reached, TLS verified, anonymous refused
    const system = spawnSync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', '/etc/ssl/certs/ca-certificates.crt', `${s3.url}/`]);
    expect(system.stdout.toString()).toBe('000'); // not trusted without the pin
  });
});
