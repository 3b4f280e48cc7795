// The tools researchers use, unchanged, against the S3 endpoint: the AWS CLI, boto3 and rclone, each trusting
// only the endpoint's pinned certificate, every byte they move checked by SHA-256 (issue 10 point 5). The S3
// stack under them is real: the storage service on loopback, sealed chunks, SigV4 with sealed access keys.
// In CI (CI=true) a missing client fails these tests; elsewhere they are skipped with the reason.
import { execFile, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startS3TestEnv, type S3TestEnv } from '../../enclave/s3/test-env.js';

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

let env: S3TestEnv;
let creds: { id: string; secret: string };
/** The environment every client runs in: no CA but the endpoint's pinned certificate. */
let clientEnv: NodeJS.ProcessEnv;

beforeAll(async () => {
  env = await startS3TestEnv();
  creds = await env.accessKey('alice');
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
});

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
