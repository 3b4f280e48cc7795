// The tools researchers use, unchanged, against `npm start`'s S3 endpoint — the enclave's own listener behind the
// host proxy: the AWS CLI, boto3 and rclone, each trusting only the enclave's attested certificate as `coffer
// enclave verify` pinned it, every byte they move checked by SHA-256 (issue 10). The stack under them is the
// product: storage service, embedded KMS, the enclave process (access keys sealed under a KMS-released key,
// storage calls with tokens it signs for the key's user), and the host side is scanned for plaintext.
// In CI (CI=true) a missing client fails these tests; elsewhere they are skipped with the reason.
import { execFile, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWriteStream } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import os from 'node:os';
import { mkdtemp, rm as rmrf } from 'node:fs/promises';
import { ensureDevRoot } from '../../enclave/attestation/index.js';
import { mintDevToken } from '../../src/api/auth/index.js';
import { verifyGateway } from '../../src/client/gateway-verify.js';
import { startDev, type RunningDev } from '../../src/dev.js';
import { createLogger } from '../../src/telemetry/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CI = process.env.CI === 'true';
// .ci/install-s3-clients.sh: the AWS CLI v2 from Debian, boto3 in a venv; else whatever is on PATH
const AWS = process.env.COFFER_AWS_CLI ?? (existsSync('/usr/bin/aws') ? '/usr/bin/aws' : 'aws');
const venvPython = path.join(here, '..', 'servers', 's3-clients-venv', 'bin', 'python');
const PYTHON = existsSync(venvPython) ? venvPython : 'python3';

function has(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
}
const tools = {
  aws: has(AWS, ['--version']),
  boto3: has(PYTHON, ['-c', 'import boto3']),
  rclone: has('rclone', ['version']),
};
/** In CI a missing client is a failure, not a skip. */
function need(tool: keyof typeof tools): boolean {
  if (!tools[tool] && CI) throw new Error(`${tool} is not installed (run .ci/install-s3-clients.sh)`);
  return tools[tool];
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 600_000): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const b of createReadStream(file)) h.update(b as Buffer);
  return h.digest('hex');
}

/** name → SHA-256 of every file under dir. */
async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const full = path.join(e.parentPath, e.name);
    out[path.relative(dir, full)] = await sha256File(full);
  }
  return out;
}

async function writeRandom(file: string, size: number): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const fh = await import('node:fs/promises').then((m) => m.open(file, 'w'));
  try {
    for (let done = 0; done < size;) {
      const n = Math.min(8 * 1024 * 1024, size - done);
      await fh.write(randomBytes(n));
      done += n;
    }
  } finally {
    await fh.close();
  }
}

/** `npm start`'s product in this process: storage service, KMS, the enclave (its own process) and the proxy. */
interface EnclaveS3Env {
  /** The enclave's S3 listener through the proxy. */
  url: string;
  gatewayUrl: string;
  /** The certificate `coffer enclave verify` accepted (the enclave's attested one), and its file. */
  caPem: string;
  caFile: string;
  work: string;
  dataDir: string;
  logFile: string;
  dev: RunningDev;
  close(): Promise<void>;
}

async function startEnclaveS3Env(): Promise<EnclaveS3Env> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'coffer-s3e-'));
  const dataDir = path.join(work, 'data');
  const logFile = path.join(work, 'storage.log');
  const logger = createLogger({ level: 'debug', destination: createWriteStream(logFile) });
  // buckets are top-level directories: every user may write on / here, as in `coffer serve --default-root-role write`
  const dev = await startDev({
    dataDir, listen: { host: '127.0.0.1', port: 0 }, kmsListen: '127.0.0.1:0', gatewayListen: { host: '127.0.0.1', port: 0 }, s3Listen: { host: '127.0.0.1', port: 0 }, defaultRootRole: 'write', logger,
  }).catch(async (e: unknown) => {
    await rmrf(work, { recursive: true, force: true }); // nothing left behind when the product does not start
    throw e;
  });
  const root = await ensureDevRoot(dataDir);
  // the client trusts only what the verification pinned (coffer enclave verify … --out enclave.pem)
  const verified = await verifyGateway({ server: dev.gatewayUrl as string, expectPcr0: dev.measurement.pcr0, root: root.trustRoot });
  const caFile = path.join(work, 'enclave.pem');
  await writeFile(caFile, verified.certPem);
  return {
    url: dev.s3Url as string, gatewayUrl: dev.gatewayUrl as string, caPem: verified.certPem, caFile, work, dataDir, logFile, dev,
    close: async () => {
      await dev.close();
      await rmrf(work, { recursive: true, force: true });
    },
  };
}

/** An access key made inside the enclave through the gateway's admin route, as `coffer access-key create` does. */
async function createAccessKey(e: EnclaveS3Env, user: string): Promise<{ id: string; secret: string }> {
  const admin = await mintDevToken(e.dataDir, { user: 'root-admin', admin: true });
  const r = await fetchPinned(e, 'POST', '/v1/s3/access-keys', admin, JSON.stringify({ user }));
  expect(r.status).toBe(201);
  const k = JSON.parse(r.body) as { accessKeyId: string; secretAccessKey: string };
  return { id: k.accessKeyId, secret: k.secretAccessKey };
}

function fetchPinned(e: EnclaveS3Env, method: string, route: string, token: string, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(new URL(route, e.gatewayUrl), {
      method, ca: e.caPem, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

let env: EnclaveS3Env;
let creds: { id: string; secret: string };
/** The environment every client runs in: no CA but the endpoint's pinned certificate. */
let clientEnv: NodeJS.ProcessEnv;

beforeAll(async () => {
  env = await startEnclaveS3Env();
  creds = await createAccessKey(env, 'alice');
  const awsConfig = path.join(env.work, 'aws-config');
  await writeFile(awsConfig, '[default]\nregion = us-east-1\ns3 =\n  signature_version = s3v4\n  addressing_style = path\n');
  const { AWS_CA_BUNDLE: _a, REQUESTS_CA_BUNDLE: _r, CURL_CA_BUNDLE: _c, SSL_CERT_FILE: _s, SSL_CERT_DIR: _d, AWS_PROFILE: _p, ...rest } = process.env;
  clientEnv = {
    ...rest,
    AWS_CONFIG_FILE: awsConfig, AWS_SHARED_CREDENTIALS_FILE: path.join(env.work, 'none'),
    AWS_ACCESS_KEY_ID: creds.id, AWS_SECRET_ACCESS_KEY: creds.secret, AWS_DEFAULT_REGION: 'us-east-1',
    SSL_CERT_FILE: env.caFile, SSL_CERT_DIR: path.join(env.work, 'no-ca-dir'),
    HOME: env.work, PYTHONDONTWRITEBYTECODE: '1',
  };
}, 180_000);

afterAll(async () => {
  await env?.close();
});

describe('AWS CLI', () => {
  it.skipIf(!tools.aws && !CI)('cp (multipart ≥ 100 MiB), sync, ls, presign, rm: every byte verified', async () => {
    need('aws');
    const e = { ...clientEnv, AWS_CA_BUNDLE: env.caFile };
    const aws = (...args: string[]): Promise<{ stdout: string }> => run(AWS, ['--endpoint-url', env.url, ...args, ...(['cp', 'sync'].includes(args[1] ?? '') ? ['--no-progress'] : [])], e);
    const src = path.join(env.work, 'aws-src');
    await writeRandom(path.join(src, 'big.bin'), 110 * 1024 * 1024 + 777);
    await writeRandom(path.join(src, 'sub dir', 'a.bin'), 300_000);
    await writeRandom(path.join(src, 'sub dir', 'deeper', 'b.txt'), 17);
    await writeRandom(path.join(src, 'empty.bin'), 0);
    await aws('s3', 'mb', 's3://awscli');
    await aws('s3', 'cp', path.join(src, 'big.bin'), 's3://awscli/single/big.bin');
    const back = path.join(env.work, 'aws-back.bin');
    await aws('s3', 'cp', 's3://awscli/single/big.bin', back);
    expect(await sha256File(back)).toBe(await sha256File(path.join(src, 'big.bin')));

    await aws('s3', 'sync', src, 's3://awscli/tree');
    const ls = (await aws('s3', 'ls', '--recursive', 's3://awscli/tree/')).stdout;
    expect(ls.trim().split('\n').map((l) => l.trim().split(/\s+/).slice(3).join(' ')).sort()).toEqual(['tree/big.bin', 'tree/empty.bin', 'tree/sub dir/a.bin', 'tree/sub dir/deeper/b.txt']);
    const down = path.join(env.work, 'aws-down');
    await aws('s3', 'sync', 's3://awscli/tree', down);
    expect(await tree(down)).toEqual(await tree(src));
    // a second sync has nothing to do
    expect((await aws('s3', 'sync', src, 's3://awscli/tree')).stdout.trim()).toBe('');

    const url = (await aws('s3', 'presign', 's3://awscli/tree/sub dir/a.bin', '--expires-in', '120')).stdout.trim();
    const u = new URL(url);
    const { S3TestClient } = await import('../../enclave/s3/test-client.js');
    const got = await new S3TestClient(env.url, env.caPem, creds).raw('GET', `${u.pathname}${u.search}`, { host: u.host });
    expect(got.status).toBe(200);
    expect(createHash('sha256').update(got.body).digest('hex')).toBe(await sha256File(path.join(src, 'sub dir', 'a.bin')));
    const tampered = await new S3TestClient(env.url, env.caPem, creds).raw('GET', `${u.pathname}${u.search.replace('X-Amz-Expires=120', 'X-Amz-Expires=121')}`, { host: u.host });
    expect(tampered.code).toBe('SignatureDoesNotMatch');

    await aws('s3', 'rm', '--recursive', 's3://awscli/tree');
    expect((await aws('s3', 'ls', '--recursive', 's3://awscli/tree/').catch(() => ({ stdout: '' }))).stdout.trim()).toBe('');
  }, 900_000);
});

describe('boto3', () => {
  it.skipIf(!tools.boto3 && !CI)('upload_file/download_file with concurrency, paginators, ranged get, checksums', async () => {
    need('boto3');
    const { stdout } = await run(PYTHON, [path.join(here, 's3', 'boto3_client.py'), env.url, env.caFile, creds.id, creds.secret, env.work], clientEnv);
    const r = JSON.parse(stdout.trim().split('\n').pop() as string) as Record<string, unknown>;
    expect(r.big_sha_match).toBe(true);
    expect(r.big_etag).toMatch(/^"[0-9a-f]{32}-6"$/); // 40 MiB + in 8 MiB parts
    expect(r.big_meta).toEqual({ project: 'coffer' });
    expect(r.big_type).toBe('application/x-test');
    expect(r.big_size).toBe(40 * 1024 * 1024 + 12345);
    expect(r.small_etag_is_md5).toBe(true);
    expect(r.range_ok).toBe(true);
    expect(r.if_none_match).toBe(304);
    expect(r.bad_checksum).toBe('BadDigest');
    expect(r.bad_stored).toBe(false);
    const expected = Array.from({ length: 25 }, (_, i) => `many/k${String(i).padStart(2, '0')}`);
    expect(r.paginated_keys).toEqual(expected);
    expect(r.pages).toBe(4);
    expect(r.v1_keys).toEqual(expected);
    expect(r.missing).toBe('NoSuchKey');
    expect(r.versioning).toBe('NotImplemented');
  }, 600_000);
});

describe('rclone', () => {
  it.skipIf(!tools.rclone && !CI)('copy, check, sync, cat --offset --count, multipart (5 MiB parts) then HEAD ?versionId=null', async () => {
    need('rclone');
    const e: NodeJS.ProcessEnv = {
      ...clientEnv,
      RCLONE_CONFIG_C_TYPE: 's3', RCLONE_CONFIG_C_PROVIDER: 'Other', RCLONE_CONFIG_C_ENDPOINT: env.url,
      RCLONE_CONFIG_C_ACCESS_KEY_ID: creds.id, RCLONE_CONFIG_C_SECRET_ACCESS_KEY: creds.secret, RCLONE_CONFIG_C_FORCE_PATH_STYLE: 'true',
    };
    const rclone = (...args: string[]): Promise<{ stdout: string; stderr: string }> => run('rclone', ['--config', path.join(env.work, 'rclone.conf'), '--ca-cert', env.caFile, ...args], e);
    const src = path.join(env.work, 'rc-src');
    await writeRandom(path.join(src, 'mp.bin'), 23 * 1024 * 1024 + 5); // above the cutoff: 5 parts of 5 MiB
    await writeRandom(path.join(src, 'x', 'one.bin'), 123_456);
    await writeRandom(path.join(src, 'x', 'two.bin'), 1);
    await rclone('mkdir', 'c:rclone');
    await rclone('copy', '--s3-upload-cutoff', '5M', '--s3-chunk-size', '5M', src, 'c:rclone/d');
    await rclone('check', src, 'c:rclone/d');
    const down = path.join(env.work, 'rc-down');
    await rclone('copy', 'c:rclone/d', down);
    expect(await tree(down)).toEqual(await tree(src));
    const whole = await readFile(path.join(src, 'mp.bin'));
    const cat = await run('sh', ['-c', `rclone --config ${path.join(env.work, 'rclone.conf')} --ca-cert ${env.caFile} cat --offset 8388600 --count 20 c:rclone/d/mp.bin | sha256sum`], e);
    expect(cat.stdout.split(' ')[0]).toBe(createHash('sha256').update(whole.subarray(8388600, 8388620)).digest('hex'));
    await rm(path.join(src, 'x', 'two.bin'));
    await rclone('sync', src, 'c:rclone/d');
    await rclone('check', src, 'c:rclone/d');
    const listed = (await rclone('lsf', '-R', 'c:rclone/d')).stdout.trim().split('\n').sort();
    expect(listed).toEqual(['mp.bin', 'x/', 'x/one.bin']);
  }, 600_000);
});

async function rm(file: string): Promise<void> {
  await import('node:fs/promises').then((m) => m.rm(file));
}

describe('the S3 listener inside the enclave', () => {
  it('answers only over the attested certificate; the host proxy forwards bytes and holds no key', async () => {
    const { S3TestClient } = await import('../../enclave/s3/test-client.js');
    const s3 = new S3TestClient(env.url, env.caPem, creds);
    expect((await s3.send('PUT', '/enc')).status).toBe(200);
    expect((await s3.send('PUT', '/enc/hello.txt', { body: 'hello' })).status).toBe(200);
    expect((await s3.send('GET', '/enc/hello.txt')).text).toBe('hello');
    const pinned = spawnSync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', env.caFile, `${env.url}/`]);
    expect(pinned.stdout.toString()).toBe('403'); // reached, TLS verified against the pin, anonymous refused
    const system = spawnSync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', '/etc/ssl/certs/ca-certificates.crt', `${env.url}/`]);
    expect(system.stdout.toString()).toBe('000'); // not trusted without the pin
  });

  it('an S3 request acts as the key\'s user: the object is that user\'s file on the native API', async () => {
    const { S3TestClient } = await import('../../enclave/s3/test-client.js');
    const alice = new S3TestClient(env.url, env.caPem, creds);
    expect((await alice.send('PUT', '/alices')).status).toBe(200);
    expect((await alice.send('PUT', '/alices/a.txt', { body: 'a-bytes' })).status).toBe(200);
    const token = await mintDevToken(env.dataDir, { user: 'alice' });
    const viaGateway = await fetchPinned(env, 'GET', '/v1/files/alices/a.txt', token);
    expect([viaGateway.status, viaGateway.body]).toEqual([200, 'a-bytes']);
    const st = JSON.parse((await fetchPinned(env, 'GET', '/v1/fs/stat?path=/alices', token)).body) as { owner?: string };
    expect(st.owner).toBe('alice');
  });

  it('access keys: made inside the enclave for an administrator only, stored sealed, an edited record is refused, a revoked key stops', async () => {
    const { S3TestClient } = await import('../../enclave/s3/test-client.js');
    const user = await mintDevToken(env.dataDir, { user: 'alice' });
    expect((await fetchPinned(env, 'POST', '/v1/s3/access-keys', user, JSON.stringify({ user: 'alice' }))).status).toBe(403);
    const admin = await mintDevToken(env.dataDir, { user: 'root-admin', admin: true });
    expect((await fetchPinned(env, 'POST', '/v1/s3/access-keys', admin, JSON.stringify({ user: 'alice', extra: 1 }))).status).toBe(400);
    const dave = await createAccessKey(env, 'dave');
    const file = path.join(env.dataDir, 'enclave', 's3-access-keys.json');
    const stored = await readFile(file, 'utf8');
    expect(stored).toContain(dave.id);
    expect(stored).not.toContain(dave.secret);
    // no sealing key on the host: only the KMS-wrapped one
    expect(existsSync(path.join(env.dataDir, 's3', 'sealing.key'))).toBe(false);
    expect(existsSync(path.join(env.dataDir, 'enclave', 's3-access-keys.key.wrapped'))).toBe(true);
    const client = new S3TestClient(env.url, env.caPem, dave);
    expect((await client.send('GET', '/')).status).toBe(200);
    // the host moves dave's key to alice: the record no longer opens, the key is unknown
    const data = JSON.parse(stored) as { keys: Array<{ id: string; user: string }> };
    (data.keys.find((r) => r.id === dave.id) as { user: string }).user = 'alice';
    await writeFile(file, JSON.stringify(data));
    expect((await client.send('GET', '/alices/a.txt')).code).toBe('InvalidAccessKeyId');
    await writeFile(file, stored);
    expect((await client.send('GET', '/')).status).toBe(200);
    const listed = JSON.parse((await fetchPinned(env, 'GET', '/v1/s3/access-keys', admin)).body) as { keys: Array<{ id: string; user: string }> };
    expect(listed.keys).toContainEqual(expect.objectContaining({ id: dave.id, user: 'dave' }));
    expect(JSON.stringify(listed)).not.toContain(dave.secret);
    expect((await fetchPinned(env, 'DELETE', `/v1/s3/access-keys/${dave.id}`, admin)).status).toBe(200);
    expect((await client.send('GET', '/')).code).toBe('InvalidAccessKeyId');
  });

  it('the storage service refuses enclave tokens not signed by the attested issuer key', async () => {
    const { SignJWT, generateKeyPair } = await import('jose');
    const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    const forged = await new SignJWT({ admin: false }).setProtectedHeader({ alg: 'EdDSA' }).setIssuer('coffer-enclave').setAudience('coffer-storage')
      .setSubject('alice').setIssuedAt().setExpirationTime('60s').sign(privateKey);
    const r = await fetch(`${env.dev.storageUrl}/v1/fs/list?path=/`, { headers: { authorization: `Bearer ${forged}` } });
    expect(r.status).toBe(401);
  });

  it('the host side (data directory, metadata database, logs) holds no plaintext byte of an object uploaded through S3', async () => {
    const { S3TestClient } = await import('../../enclave/s3/test-client.js');
    const s3 = new S3TestClient(env.url, env.caPem, creds);
    const MiB = 1024 * 1024;
    const bytes = randomBytes(12 * MiB);
    expect((await s3.send('PUT', '/enc/secret.bin', { body: bytes })).status).toBe(200);
    const probes = [0, 4096, 8 * MiB - 16, 8 * MiB + 100, 12 * MiB - 32].map((o) => bytes.subarray(o, o + 32));
    const files = [env.logFile];
    for (const e of await readdir(env.dataDir, { recursive: true, withFileTypes: true })) if (e.isFile()) files.push(path.join(e.parentPath, e.name));
    expect(files.some((f) => f.endsWith('.sqlite') || f.endsWith('.db'))).toBe(true);
    let scanned = 0;
    for (const f of files) {
      const content = await readFile(f).catch(() => Buffer.alloc(0)); // sockets and files removed meanwhile
      scanned += content.length;
      for (const p of probes) expect(content.indexOf(p), `${f} holds plaintext`).toBe(-1);
    }
    expect(scanned).toBeGreaterThan(12 * MiB);
  });
});
