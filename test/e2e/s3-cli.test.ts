// `coffer access-key create|list|revoke` as processes against the running product's gateway (an administrator's
// token, the gateway pinned by `coffer enclave verify --out`): the key is made and sealed inside the enclave, and
// works on the enclave's S3 listener until it is revoked.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliProcess } from '../../bench/cli-process.js';
import { mintDevToken } from '../../src/api/auth/index.js';
import { startDev, type RunningDev } from '../../src/dev.js';
import { S3TestClient } from '../../enclave/s3/test-client.js';

let work: string;
let dataDir: string;
let dev: RunningDev;
let pem: string;
let gw: string[];

async function ok(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await runCliProcess(args, env);
  if (r.code !== 0) throw new Error(`coffer ${args.join(' ')} → ${r.code}: ${r.stderr}`);
  return r.stdout;
}

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'coffer-s3-cli-'));
  dataDir = path.join(work, 'data');
  dev = await startDev({ dataDir, listen: { host: '127.0.0.1', port: 0 }, kmsListen: '127.0.0.1:0', gatewayListen: { host: '127.0.0.1', port: 0 }, defaultRootRole: 'write' });
  pem = path.join(work, 'enclave.pem');
  await ok(['enclave', 'verify', '--server', dev.gatewayUrl as string, '--expect-pcr0', dev.measurement.pcr0, '--root', 'dev', '--dev-root-cert', dev.devRootCert, '--out', pem]);
  gw = ['--server', dev.gatewayUrl as string, '--ca-cert', pem, '--token', await mintDevToken(dataDir, { user: 'root-admin', admin: true })];
}, 180_000);

afterAll(async () => {
  await dev?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('coffer access-key against the enclave gateway', () => {
  it('a key made by the CLI works on the enclave S3 listener until it is revoked; its secret is stored only sealed', async () => {
    const made = JSON.parse(await ok(['access-key', 'create', ...gw, '--user', 'alice', '--json'])) as { accessKeyId: string; secretAccessKey: string };
    expect(made.accessKeyId).toMatch(/^CFR[A-Z2-7]{17}$/);
    const stored = await readFile(path.join(dataDir, 'enclave', 's3-access-keys.json'), 'utf8');
    expect(stored).toContain(made.accessKeyId);
    expect(stored).not.toContain(made.secretAccessKey);
    const listed = JSON.parse(await ok(['access-key', 'list', ...gw, '--json'])) as { keys: Array<{ id: string; user: string }> };
    expect(listed.keys).toContainEqual(expect.objectContaining({ id: made.accessKeyId, user: 'alice' }));
    expect(JSON.stringify(listed)).not.toContain(made.secretAccessKey);

    const client = new S3TestClient(dev.s3Url as string, await readFile(pem, 'utf8'), { id: made.accessKeyId, secret: made.secretAccessKey });
    expect((await client.send('PUT', '/cli-bucket')).status).toBe(200);
    expect((await client.send('PUT', '/cli-bucket/hello.txt', { body: 'hello' })).status).toBe(200);
    expect((await client.send('GET', '/cli-bucket/hello.txt')).text).toBe('hello');

    await ok(['access-key', 'revoke', made.accessKeyId, ...gw]);
    expect((await client.send('GET', '/cli-bucket/hello.txt')).code).toBe('InvalidAccessKeyId');
    const again = await runCliProcess(['access-key', 'revoke', made.accessKeyId, ...gw]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('NOT_FOUND');
  });

  it('refuses a user name the vault refuses, a non-administrator, and an unpinned gateway', async () => {
    expect((await runCliProcess(['access-key', 'create', ...gw, '--user', ':system'])).code).not.toBe(0);
    const asAlice = [...gw.slice(0, -1), await mintDevToken(dataDir, { user: 'alice' })];
    const r = await runCliProcess(['access-key', 'create', ...asAlice, '--user', 'alice']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('PERMISSION_DENIED');
    const unpinned = await runCliProcess(['access-key', 'list', '--server', dev.gatewayUrl as string, '--token', 'x'], { COFFER_EXPECT_PCR0: '', COFFER_CA_CERT: '' });
    expect(unpinned.code).not.toBe(0);
    expect(unpinned.stderr).toContain('--ca-cert');
  });
});
