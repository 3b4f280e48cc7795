// The enclave gateway end to end, as `npm start` runs it: startDev brings up the storage service, the embedded
// KMS, the host proxy and `coffer enclave run` as its own process (in its own network namespace when root).
// Everything goes over real TLS through the proxy: verification and pinning, byte-identical files of every
// size class, Range and conditional requests against a reference slice, multipart, a file sealed by `coffer put`
// in KMS mode read back by users with a grant, the host side holding no plaintext, and the failures of
// issue 9 point 6 (corrupted chunk, KMS unreachable, enclave killed mid-upload, a measurement the policy does
// not admit).
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliProcess } from '../../bench/cli-process.js';
import { mintDevToken } from '../../src/api/auth/index.js';
import { verifyGateway } from '../../src/client/gateway-verify.js';
import { KmsDataKeys } from '../../src/client/data-keys.js';
import { uploadTree } from '../../src/client/tree-transfer.js';
import { uploadStream } from '../../src/client/upload.js';
import { VaultClient } from '../../src/client/vault-client.js';
import { startDev, type RunningDev } from '../../src/dev.js';
import { AwsKeyService, attestedKeyPolicy, loadOrCreateCredentials, roleCredentials, startKmsServer } from '../../src/kms/index.js';
import { startService } from '../../src/service.js';
import { createLogger } from '../../src/telemetry/index.js';
import { ensureDevRoot } from '../../enclave/attestation/index.js';
import { measureEnclaveCode } from '../../enclave/runtime/bundle.js';
import { launchEnclave } from '../../enclave/runtime/launch.js';
import { startHostProxy } from '../../enclave/runtime/proxy.js';

const MiB = 1024 * 1024;
let work: string;
let dataDir: string;
let logFile: string;
let dev: RunningDev;
let ca: string;
let alice: string;
let bob: string;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The body ended before its Content-Length (the connection was cut). */
  cut: boolean;
}

function call(method: string, target: string, options: { token?: string; headers?: Record<string, string>; body?: Buffer | Readable } = {}): Promise<Answer> {
  const u = new URL(target, dev.gatewayUrl as string);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (Buffer.isBuffer(options.body)) headers['content-length'] = String(options.body.length);
    const req = httpsRequest(u, { method, headers, ca, agent: false }, (res) => {
      const parts: Buffer[] = [];
      let cut = false;
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('aborted', () => (cut = true));
      res.on('error', () => (cut = true));
      res.on('close', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts), cut: cut || !res.complete }));
    });
    req.on('error', reject);
    if (options.body instanceof Readable) options.body.pipe(req);
    else req.end(options.body);
  });
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const fileUrl = (p: string): string => `/v1/files${p.split('/').map(encodeURIComponent).join('/')}`;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'coffer-gw-'));
  dataDir = path.join(work, 'data');
  logFile = path.join(work, 'storage.log');
  const logger = createLogger({ level: 'debug', destination: createWriteStream(logFile) });
  dev = await startDev({ dataDir, listen: { host: '127.0.0.1', port: 0 }, kmsListen: '127.0.0.1:0', gatewayListen: { host: '127.0.0.1', port: 0 }, logger });
  const root = await ensureDevRoot(dataDir);
  const v = await verifyGateway({ server: dev.gatewayUrl as string, expectPcr0: dev.measurement.pcr0, root: root.trustRoot });
  ca = v.certPem;
  alice = await mintDevToken(dataDir, { user: 'alice' });
  bob = await mintDevToken(dataDir, { user: 'bob' });
}, 180_000);

afterAll(async () => {
  await dev?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('verification', () => {
  it('every command prints the one measurement: dev, the bundle, the running enclave, the document', async () => {
    const m = await measureEnclaveCode();
    expect(dev.measurement.pcr0).toBe(m.pcr0);
    expect(dev.enclave?.pcr0).toBe(m.pcr0);
    const root = await ensureDevRoot(dataDir);
    const v = await verifyGateway({ server: dev.gatewayUrl as string, expectPcr0: m.pcr0, root: root.trustRoot });
    expect(v.pcr0).toBe(m.pcr0);
    expect(v.spkiSha256).toBe(dev.enclave?.spkiSha256);
  });

  it('refuses another measurement, the AWS root for a dev enclave, and a plain http URL', async () => {
    const root = await ensureDevRoot(dataDir);
    await expect(verifyGateway({ server: dev.gatewayUrl as string, expectPcr0: 'ab'.repeat(48), root: root.trustRoot })).rejects.toMatchObject({ code: 'ATTESTATION_POLICY' });
    await expect(verifyGateway({ server: dev.gatewayUrl as string, expectPcr0: dev.measurement.pcr0, root: { kind: 'aws' } })).rejects.toMatchObject({ code: 'ATTESTATION_INVALID' });
    await expect(verifyGateway({ server: dev.storageUrl, expectPcr0: dev.measurement.pcr0, root: root.trustRoot })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('a fresh document per nonce; no token needed for it, one needed for everything else', async () => {
    const a = await call('GET', '/v1/attestation?nonce=00ff');
    expect(a.status).toBe(200);
    expect(a.headers['content-type']).toBe('application/cbor');
    expect((await call('GET', '/v1/attestation?nonce=zz')).status).toBe(400);
    const denied = await call('GET', '/v1/fs/list?path=/');
    expect(denied.status).toBe(401);
    expect(JSON.parse(denied.body.toString()).error.code).toBe('UNAUTHENTICATED');
  });

  it('/readyz and /metrics like the storage service: ready through the channel; counts only, no path or user', async () => {
    const ready = await call('GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body.toString())).toEqual({ status: 'ready' });
    const secretName = `metrics-${randomBytes(6).toString('hex')}.bin`;
    expect((await call('PUT', fileUrl(`/${secretName}`), { token: alice, body: randomBytes(1000) })).status).toBe(201);
    expect((await call('GET', fileUrl(`/${secretName}`), { token: alice })).status).toBe(200);
    const m = await call('GET', '/metrics');
    expect(m.status).toBe(200);
    expect(m.headers['content-type']).toMatch(/^text\/plain/);
    const text = m.body.toString();
    expect(text).toMatch(/coffer_gateway_http_requests_total\{method="PUT",route="\/v1\/files\/\*",status="201"\} [1-9]/);
    expect(text).toMatch(/coffer_gateway_bytes_sealed_total [1-9]\d{3,}/);
    expect(text).toMatch(/coffer_gateway_bytes_opened_total [1-9]\d{3,}/);
    expect(text).toMatch(/coffer_gateway_process_resident_memory_bytes/);
    expect(text).not.toContain(secretName);
    expect(text).not.toContain('alice');
  });

  it('the enclave runs in a network namespace of its own: a TCP connect to the storage service from inside fails', () => {
    if (process.getuid?.() !== 0 || process.platform !== 'linux') {
      expect(dev.enclave?.isolated).toBe(false);
      return;
    }
    const pid = dev.enclave?.pid as number;
    expect(dev.enclave?.isolated).toBe(true);
    expect(spawnSync('readlink', [`/proc/${pid}/ns/net`]).stdout.toString()).not.toBe(spawnSync('readlink', ['/proc/self/ns/net']).stdout.toString());
    const port = new URL(dev.storageUrl).port;
    const probe = `require('net').connect(${port},'127.0.0.1').on('connect',()=>{console.log('CONNECTED');process.exit(0)}).on('error',e=>{console.log(e.code);process.exit(3)})`;
    const inside = spawnSync('nsenter', ['-t', String(pid), '-n', process.execPath, '-e', probe], { encoding: 'utf8', timeout: 20_000 });
    expect(inside.stdout.trim()).not.toBe('CONNECTED');
    expect(inside.status).toBe(3);
    const outside = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8', timeout: 20_000 });
    expect(outside.stdout.trim()).toBe('CONNECTED'); // the same probe from the host reaches it: the namespace is what stops it
  });
});

describe('plaintext files through the gateway', () => {
  it.each([0, 1, 8 * MiB, 8 * MiB + 1, 100 * MiB])('%i bytes come back byte-identical', async (size) => {
    const bytes = randomBytes(size);
    const p = `/sizes/f-${size}.bin`;
    await call('POST', '/v1/fs/mkdir', { token: alice, headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify({ path: '/sizes', parents: true })) });
    const put = await call('PUT', fileUrl(p), { token: alice, body: bytes });
    expect(put.status, put.body.toString()).toBe(201);
    expect(JSON.parse(put.body.toString())).toMatchObject({ path: p, size });
    const got = await call('GET', fileUrl(p), { token: alice });
    expect(got.status).toBe(200);
    expect(got.cut).toBe(false);
    expect(Number(got.headers['content-length'])).toBe(size);
    expect(sha(got.body)).toBe(sha(bytes));
  }, 180_000);

  it('a body of unknown length (chunked transfer encoding) is sealed as it streams', async () => {
    const bytes = randomBytes(9 * MiB + 7);
    const pieces = Readable.from((function* () {
      for (let o = 0; o < bytes.length; o += 1_000_000) yield bytes.subarray(o, o + 1_000_000);
    })());
    const put = await call('PUT', fileUrl('/streamed.bin'), { token: alice, body: pieces });
    expect(put.status, put.body.toString()).toBe(201);
    expect(sha((await call('GET', fileUrl('/streamed.bin'), { token: alice })).body)).toBe(sha(bytes));
  });

  describe('Range and conditional requests against a reference slice', () => {
    const size = 2 * 8 * MiB + 1000;
    let ref: Buffer;
    let etag: string;
    beforeAll(async () => {
      ref = randomBytes(size);
      const put = await call('PUT', fileUrl('/range.bin'), { token: alice, body: ref });
      etag = put.headers.etag as string;
    });
    it.each([
      ['bytes=0-0', 0, 0],
      ['bytes=0-99', 0, 99],
      [`bytes=${8 * MiB - 10}-${8 * MiB + 9}`, 8 * MiB - 10, 8 * MiB + 9],
      [`bytes=${8 * MiB}-${8 * MiB}`, 8 * MiB, 8 * MiB],
      [`bytes=${8 * MiB - 1}-${2 * 8 * MiB}`, 8 * MiB - 1, 2 * 8 * MiB],
      [`bytes=${size - 1}-`, size - 1, size - 1],
      ['bytes=-500', size - 500, size - 1],
      [`bytes=-${size + 10}`, 0, size - 1],
      [`bytes=100-${size + 5000}`, 100, size - 1],
      ['bytes=5-', 5, size - 1],
    ])('%s', async (range, start, end) => {
      const r = await call('GET', fileUrl('/range.bin'), { token: alice, headers: { range } });
      expect(r.status).toBe(206);
      expect(r.headers['content-range']).toBe(`bytes ${start}-${end}/${size}`);
      expect(r.body.equals(ref.subarray(start, end + 1))).toBe(true);
    });
    it('unsatisfiable, invalid and conditional ranges', async () => {
      const past = await call('GET', fileUrl('/range.bin'), { token: alice, headers: { range: `bytes=${size}-` } });
      expect(past.status).toBe(416);
      expect(past.headers['content-range']).toBe(`bytes */${size}`);
      expect((await call('GET', fileUrl('/range.bin'), { token: alice, headers: { range: 'bytes=-0' } })).status).toBe(416);
      const invalid = await call('GET', fileUrl('/range.bin'), { token: alice, headers: { range: 'bytes=9-3' } });
      expect(invalid.status).toBe(200);
      expect(invalid.body.equals(ref)).toBe(true);
      const stale = await call('GET', fileUrl('/range.bin'), { token: alice, headers: { range: 'bytes=0-9', 'if-range': '"not-it"' } });
      expect(stale.status).toBe(200);
      const fresh = await call('GET', fileUrl('/range.bin'), { token: alice, headers: { range: 'bytes=0-9', 'if-range': etag } });
      expect(fresh.status).toBe(206);
      expect((await call('GET', fileUrl('/range.bin'), { token: alice, headers: { 'if-none-match': etag } })).status).toBe(304);
      expect((await call('GET', fileUrl('/range.bin'), { token: alice, headers: { 'if-match': '"other"' } })).status).toBe(412);
      const head = await call('HEAD', fileUrl('/range.bin'), { token: alice });
      expect(head.status).toBe(200);
      expect(Number(head.headers['content-length'])).toBe(size);
      expect(head.body.length).toBe(0);
    });
  });

  it('a multipart form upload stores every file part under the directory', async () => {
    await call('POST', '/v1/fs/mkdir', { token: alice, headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify({ path: '/form' })) });
    const a = randomBytes(3 * MiB);
    const b = Buffer.from('hello, form');
    const boundary = 'coffer-test-boundary';
    const part = (name: string, bytes: Buffer): Buffer => Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\nContent-Type: application/octet-stream\r\n\r\n`), bytes, Buffer.from('\r\n'),
    ]);
    const body = Buffer.concat([part('a.bin', a), part('b.txt', b), Buffer.from(`--${boundary}--\r\n`)]);
    const r = await call('POST', fileUrl('/form'), { token: alice, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` }, body });
    expect(r.status, r.body.toString()).toBe(201);
    expect(JSON.parse(r.body.toString()).files).toEqual([{ path: '/form/a.bin', size: a.length }, { path: '/form/b.txt', size: b.length }]);
    expect((await call('GET', fileUrl('/form/a.bin'), { token: alice })).body.equals(a)).toBe(true);
    expect((await call('GET', fileUrl('/form/b.txt'), { token: alice })).body.equals(b)).toBe(true);
  });

  it('tree operations keep the storage service API shapes; If-None-Match: * never replaces', async () => {
    const json = { 'content-type': 'application/json' };
    await call('PUT', fileUrl('/tree/x.txt'), { token: alice, body: Buffer.from('x') }).then((r) => expect(r.status).toBe(404)); // no parent
    expect((await call('POST', '/v1/fs/mkdir', { token: alice, headers: json, body: Buffer.from(JSON.stringify({ path: '/tree' })) })).status).toBe(201);
    expect((await call('PUT', fileUrl('/tree/x.txt'), { token: alice, body: Buffer.from('x') })).status).toBe(201);
    expect((await call('PUT', fileUrl('/tree/x.txt'), { token: alice, headers: { 'if-none-match': '*' }, body: Buffer.from('y') })).status).toBe(409);
    expect((await call('POST', '/v1/fs/move', { token: alice, headers: json, body: Buffer.from(JSON.stringify({ from: '/tree/x.txt', to: '/tree/y.txt' })) })).status).toBe(200);
    expect((await call('POST', '/v1/fs/copy', { token: alice, headers: json, body: Buffer.from(JSON.stringify({ from: '/tree/y.txt', to: '/tree/z.txt' })) })).status).toBe(201);
    const list = JSON.parse((await call('GET', '/v1/fs/list?path=/tree', { token: alice })).body.toString()) as { items: Array<{ name: string; blobId: string }> };
    expect(list.items.map((i) => i.name)).toEqual(['y.txt', 'z.txt']);
    expect(list.items[0]?.blobId).not.toBe(list.items[1]?.blobId); // a copy is re-sealed under its own key
    expect((await call('GET', fileUrl('/tree/z.txt'), { token: alice })).body.toString()).toBe('x');
    expect((await call('DELETE', fileUrl('/tree/y.txt'), { token: alice })).status).toBe(200);
    expect((await call('GET', fileUrl('/tree/y.txt'), { token: alice })).status).toBe(404);
  });
});

describe('the coffer command against the gateway', () => {
  it('enclave verify writes the certificate; measure prints the same PCR0; put/ls/get verify by themselves', async () => {
    const pem = path.join(work, 'enclave.pem');
    const rootPem = dev.devRootCert;
    const verify = await runCliProcess(['enclave', 'verify', '--server', dev.gatewayUrl as string, '--expect-pcr0', dev.measurement.pcr0, '--root', 'dev', '--dev-root-cert', rootPem, '--out', pem, '--json']);
    expect(verify.code, verify.stderr).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ pcr0: dev.measurement.pcr0 });
    expect(await readFile(pem, 'utf8')).toBe(ca);
    const wrong = await runCliProcess(['enclave', 'verify', '--server', dev.gatewayUrl as string, '--expect-pcr0', 'cd'.repeat(48), '--root', 'dev', '--dev-root-cert', rootPem]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr.trim().split('\n')).toHaveLength(1);
    const measure = await runCliProcess(['attestation', 'measure']);
    expect(measure.stdout.trim()).toBe(dev.measurement.pcr0);

    const env = { COFFER_SERVER: dev.gatewayUrl as string, COFFER_TOKEN: alice, COFFER_EXPECT_PCR0: dev.measurement.pcr0, COFFER_ATTESTATION_ROOT: 'dev', COFFER_DEV_ROOT_CERT: rootPem };
    const src = path.join(work, 'cli-src.bin');
    const bytes = randomBytes(9 * MiB);
    await writeFile(src, bytes);
    expect((await runCliProcess(['mkdir', '/cli'], env)).code).toBe(0);
    const put = await runCliProcess(['put', src, '/cli/', '--json'], env);
    expect(put.code, put.stderr).toBe(0);
    expect(JSON.parse(put.stdout)).toMatchObject({ path: '/cli/cli-src.bin', size: bytes.length });
    const ls = await runCliProcess(['ls', '/cli'], env);
    expect(ls.stdout.trim()).toBe('cli-src.bin');
    const out = path.join(work, 'cli-copy.bin');
    const get = await runCliProcess(['get', '/cli/cli-src.bin', out], env);
    expect(get.code, get.stderr + get.stdout).toBe(0);
    expect(sha(await readFile(out))).toBe(sha(bytes));
    // a wrong measurement: one line, nothing sent
    const refused = await runCliProcess(['ls', '/'], { ...env, COFFER_EXPECT_PCR0: 'ef'.repeat(48) });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/^coffer: .*\[ATTESTATION_POLICY\]\n$/);
  }, 120_000);
});

describe('files sealed by coffer put in KMS mode', () => {
  it('read back through the gateway by the owner and by a user with a read grant', async () => {
    const client = new VaultClient({ server: dev.storageUrl, token: alice });
    const keys = new KmsDataKeys(new AwsKeyService({
      keyId: dev.keyArn, endpoint: dev.kmsUrl, region: dev.region, credentials: { accessKeyId: dev.sealer.accessKeyId, secretAccessKey: dev.sealer.secretAccessKey },
    }));
    const bytes = randomBytes(8 * MiB + 4321);
    // the directory and the grant through the gateway (records the enclave decides access from carry its MACs;
    // ones made at the storage service directly are refused); the file is committed at the storage service
    const json = { 'content-type': 'application/json' };
    expect((await call('POST', '/v1/fs/mkdir', { token: alice, headers: json, body: Buffer.from(JSON.stringify({ path: '/sealed-by-client', parents: true })) })).status).toBe(201);
    try {
      await uploadStream(client, [bytes], bytes.length, { path: '/sealed-by-client/f.bin', keys });
      expect((await call('PUT', '/v1/grants', { token: alice, headers: json, body: Buffer.from(JSON.stringify({ path: '/sealed-by-client', user: 'bob', role: 'read' })) })).status).toBe(200);
    } finally {
      keys.close();
      client.close();
    }
    const mine = await call('GET', fileUrl('/sealed-by-client/f.bin'), { token: alice });
    expect(mine.status, mine.body.toString()).toBe(200);
    expect(sha(mine.body)).toBe(sha(bytes));
    const bobs = await call('GET', fileUrl('/sealed-by-client/f.bin'), { token: bob, headers: { range: 'bytes=8388600-8388700' } });
    expect(bobs.status).toBe(206);
    expect(bobs.body.equals(bytes.subarray(8388600, 8388701))).toBe(true);
  });

  it('files put -r committed in batches (their chunks in one pack) read back through the gateway, whole and by range', async () => {
    const client = new VaultClient({ server: dev.storageUrl, token: alice });
    const keys = new KmsDataKeys(new AwsKeyService({
      keyId: dev.keyArn, endpoint: dev.kmsUrl, region: dev.region, credentials: { accessKeyId: dev.sealer.accessKeyId, secretAccessKey: dev.sealer.secretAccessKey },
    }));
    const tree = path.join(work, 'packed-tree');
    const files = new Map<string, Buffer>();
    const json = { 'content-type': 'application/json' };
    expect((await call('POST', '/v1/fs/mkdir', { token: alice, headers: json, body: Buffer.from(JSON.stringify({ path: '/packed', parents: true })) })).status).toBe(201);
    try {
      await rm(tree, { recursive: true, force: true });
      await mkdir(tree);
      for (let i = 0; i < 12; i++) {
        const b = randomBytes(i * 1500);
        files.set(`f${i}.bin`, b);
        await writeFile(path.join(tree, `f${i}.bin`), b);
      }
      expect(await uploadTree(client, tree, '/packed', { keys })).toMatchObject({ files: 12, failed: [] });
    } finally {
      keys.close();
      client.close();
    }
    expect((await readdir(path.join(dataDir, 'packs'))).length).toBeGreaterThan(0); // the chunks sit in a pack
    for (const [name, bytes] of files) {
      const got = await call('GET', fileUrl(`/packed/${name}`), { token: alice });
      expect(got.status, got.body.toString()).toBe(200);
      expect(got.body.equals(bytes), name).toBe(true);
    }
    const part = await call('GET', fileUrl('/packed/f11.bin'), { token: alice, headers: { range: 'bytes=100-199' } });
    expect(part.status).toBe(206);
    expect(part.body.equals(files.get('f11.bin')!.subarray(100, 200))).toBe(true);
  });

  it('a forged or foreign token is refused inside the enclave', async () => {
    const r = await call('GET', fileUrl('/sealed-by-client/f.bin'), { token: `${alice.slice(0, -4)}AAAA` });
    expect(r.status).toBe(401);
  });
});

describe('the host side holds no plaintext', () => {
  it('after a gateway upload, no 32-byte window of the file is in the data directory, the metadata DB or the logs', async () => {
    const bytes = randomBytes(12 * MiB);
    expect((await call('PUT', fileUrl('/secret.bin'), { token: alice, body: bytes })).status).toBe(201);
    const probes = [0, 4096, 8 * MiB - 16, 8 * MiB + 100, 12 * MiB - 32].map((o) => bytes.subarray(o, o + 32));
    const files: string[] = [logFile];
    const walk = async (dir: string): Promise<void> => {
      for (const e of await readdir(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else if (e.isFile()) files.push(p);
      }
    };
    await walk(dataDir);
    expect(files.some((f) => f.endsWith('.sqlite') || f.endsWith('.db'))).toBe(true);
    let scanned = 0;
    for (const f of files) {
      const content = await readFile(f);
      scanned += content.length;
      for (const p of probes) expect(content.indexOf(p), `${f} holds plaintext`).toBe(-1);
    }
    expect(scanned).toBeGreaterThan(12 * MiB); // the sealed chunks were among what was scanned
  });
});

describe('failures', () => {
  it('a chunk corrupted on disk: an integrity error, never a wrong byte', async () => {
    const bytes = randomBytes(2 * 8 * MiB);
    const put = JSON.parse((await call('PUT', fileUrl('/corrupt.bin'), { token: alice, body: bytes })).body.toString()) as { blobId: string };
    const chunk1 = path.join(dataDir, 'chunks', put.blobId.slice(0, 2), put.blobId.slice(2, 4), put.blobId, '00000001');
    const sealed = await readFile(chunk1);
    sealed[1000] = (sealed[1000] as number) ^ 0x01;
    await writeFile(chunk1, sealed);
    // a range wholly in the good chunk is served
    const early = await call('GET', fileUrl('/corrupt.bin'), { token: alice, headers: { range: 'bytes=0-999' } });
    expect(early.body.equals(bytes.subarray(0, 1000))).toBe(true);
    // a range starting in the bad chunk: nothing was sent yet, so a JSON error
    const late = await call('GET', fileUrl('/corrupt.bin'), { token: alice, headers: { range: `bytes=${8 * MiB}-` } });
    expect(late.status).toBe(422);
    expect(JSON.parse(late.body.toString()).error.code).toBe('CHUNK_AUTH_FAILED');
    // the whole file: the first chunk's bytes, all correct, then the connection is cut
    const whole = await call('GET', fileUrl('/corrupt.bin'), { token: alice });
    expect(whole.status).toBe(200);
    expect(whole.cut).toBe(true);
    expect(whole.body.length).toBeLessThan(bytes.length);
    expect(whole.body.equals(bytes.subarray(0, whole.body.length))).toBe(true);
  });

  it('a measurement the key policy does not admit: the KMS denies and the enclave refuses to start', async () => {
    // a key for another enclave build, made by the administrator; the enclave calls the KMS as its own role
    const { admin, sealer, enclave } = roleCredentials(await loadOrCreateCredentials(dataDir));
    const kms = new KMSClient({ region: dev.region, endpoint: dev.kmsUrl, credentials: { accessKeyId: admin.accessKeyId, secretAccessKey: admin.secretAccessKey } });
    const policy = attestedKeyPolicy({ admins: [admin.principalArn], sealers: [sealer.principalArn], enclaves: [enclave.principalArn], imageSha384: ['ab'.repeat(48)] });
    const other = await kms.send(new CreateKeyCommand({ Policy: policy, BypassPolicyLockoutSafetyCheck: true }));
    kms.destroy();
    const channel = await mkdtemp(path.join(os.tmpdir(), 'coffer-ch-'));
    const proxy = await startHostProxy({ channelDir: channel, listen: { host: '127.0.0.1', port: 0 }, storageUrl: dev.storageUrl, kmsUrl: dev.kmsUrl });
    try {
      const jwk = path.join(dataDir, 'enclave', 'token-issuer.jwk.json');
      await expect(launchEnclave({
        args: ['enclave', 'run', '--channel', channel, '--data-dir', dataDir, '--kms-key-id', other.KeyMetadata?.Arn as string, '--region', dev.region, '--token-jwk', jwk],
        env: { AWS_ACCESS_KEY_ID: enclave.accessKeyId, AWS_SECRET_ACCESS_KEY: enclave.secretAccessKey },
        isolateNetwork: 'off',
      })).rejects.toThrow(/key policy does not admit this enclave \(PCR0 [0-9a-f]{96}\): refusing to start/);
    } finally {
      await proxy.close();
      await rm(channel, { recursive: true, force: true });
    }
  });

  it('the storage service restarted mid-upload: the upload goes on (or fails cleanly), committed files intact', async () => {
    const committed = randomBytes(3 * MiB);
    expect((await call('PUT', fileUrl('/before-restart.bin'), { token: alice, body: committed })).status).toBe(201);
    const port = Number(new URL(dev.storageUrl).port);
    const bytes = randomBytes(40 * MiB);
    let sent = 0;
    let restarted: Promise<void> | undefined;
    const body = new Readable({
      read() {
        if (sent >= bytes.length) return void this.push(null);
        this.push(bytes.subarray(sent, sent + MiB));
        sent += MiB;
        if (sent === 12 * MiB) {
          restarted = (async () => {
            await dev.service.close();
            dev.service = await startService({ dataDir, listen: { host: '127.0.0.1', port }, defaultRootRole: 'write', logger: createLogger({ level: 'silent' }) });
          })();
        }
      },
    });
    const r = await call('PUT', fileUrl('/during-restart.bin'), { token: alice, headers: { 'content-length': String(bytes.length) }, body });
    await restarted;
    if (r.status === 201) {
      expect(sha((await call('GET', fileUrl('/during-restart.bin'), { token: alice })).body)).toBe(sha(bytes));
    } else {
      expect(r.status).toBe(503);
      expect((await call('GET', '/v1/fs/stat?path=/during-restart.bin', { token: alice })).status).toBe(404);
    }
    expect(sha((await call('GET', fileUrl('/before-restart.bin'), { token: alice })).body)).toBe(sha(committed));
  }, 120_000);

  it('KMS unreachable: 503 with Retry-After, nothing half-written; back when it is back', async () => {
    const port = new URL(dev.kmsUrl).port;
    await dev.kms.close();
    const r = await call('PUT', fileUrl('/while-kms-down.bin'), { token: alice, body: randomBytes(MiB) });
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toBe('1');
    expect((await call('GET', '/v1/fs/stat?path=/while-kms-down.bin', { token: alice })).status).toBe(404);
    const root = await ensureDevRoot(dataDir);
    dev.kms = await startKmsServer({ dataDir, listen: `127.0.0.1:${port}`, credentials: await loadOrCreateCredentials(dataDir), attestationRoot: root.trustRoot });
    expect((await call('PUT', fileUrl('/while-kms-down.bin'), { token: alice, body: randomBytes(MiB) })).status).toBe(201);
  });

  it('the enclave killed mid-upload: no visible half file', async () => {
    const enclave = dev.enclave;
    if (!enclave) throw new Error('no enclave');
    let sent = 0;
    const slow = new Readable({
      read() {
        if (sent >= 40 * MiB) return void this.push(null);
        sent += MiB;
        this.push(randomBytes(MiB));
        if (sent === 20 * MiB) enclave.child.kill('SIGKILL'); // two chunks are durable by now, or about to be
      },
    });
    const r = await call('PUT', fileUrl('/killed.bin'), { token: alice, body: slow }).catch((e: Error) => e);
    expect(r instanceof Error || r.status >= 500 || r.cut).toBe(true);
    const storage = new VaultClient({ server: dev.storageUrl, token: alice });
    try {
      await expect(storage.stat('/killed.bin')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    } finally {
      storage.close();
    }
    expect((await stat(dataDir)).isDirectory()).toBe(true);
  });
});
