// `coffer bench gateway`: the enclave gateway against client-side sealing, in one run on this machine.
// One `coffer dev` (storage service + KMS + proxy, and the enclave process) serves both paths:
//   - `coffer put`/`coffer get` with a key file (sealing on the client, straight to the storage service), and
//   - a pinned `curl -T` up / `curl` down through the gateway (sealing inside the enclave, TLS ending there);
// the ratios are the targets (≥ 0.6). Then 16 concurrent clients upload and download mixed sizes
// through the gateway, every byte checked by SHA-256; peak RSS of the host process and of the enclave.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { request } from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { runCliProcess, spawnCli } from './cli-process.js';
import { peakRss, row, timed, type Timing } from './measure.js';

export interface GatewayBenchOptions {
  size: number;
  clients: number;
  dir?: string;
  keep?: boolean;
  log?: (line: string) => void;
}

const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(0)} MiB`;

function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${command} exited ${code}: ${err.trim()}`))));
  });
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const d of createReadStream(file, { highWaterMark: 4 * 1024 * 1024 })) h.update(d as Buffer);
  return h.digest('hex');
}

async function writeRandomFile(file: string, size: number): Promise<void> {
  const fh = await open(file, 'w');
  try {
    const block = randomBytes(16 * 1024 * 1024);
    for (let off = 0; off < size; off += block.length) {
      randomBytes(64).copy(block, 0); // no two blocks alike
      await fh.write(block, 0, Math.min(block.length, size - off));
    }
  } finally {
    await fh.close();
  }
}

interface Dev {
  gatewayUrl: string;
  storageUrl: string;
  pcr0: string;
  devRootCert: string;
  enclavePid: number;
  pid: number;
  stop(): Promise<void>;
}

function startDev(dataDir: string): Promise<Dev> {
  const child = spawnCli(['dev', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--kms-listen', '127.0.0.1:0', '--gateway-listen', '127.0.0.1:0', '--json']);
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (!out.includes('\n')) return;
      const j = JSON.parse(out.split('\n')[0] as string) as { gatewayUrl: string; storageUrl: string; enclaveMeasurement: { pcr0: string }; devRootCert: string; enclavePid: number };
      resolve({
        gatewayUrl: j.gatewayUrl, storageUrl: j.storageUrl, pcr0: j.enclaveMeasurement.pcr0, devRootCert: j.devRootCert, enclavePid: j.enclavePid, pid: child.pid as number,
        stop: () => new Promise<void>((r) => {
          if (child.exitCode !== null) return r();
          child.once('close', () => r());
          child.kill('SIGTERM');
        }),
      });
    });
    child.on('close', (code) => reject(new Error(`coffer dev exited ${code}: ${err}`)));
  });
}

/** One client: upload `size` random bytes through the gateway, download them, compare. */
async function oneClient(url: string, ca: string, token: string, name: string, size: number): Promise<void> {
  const body = randomBytes(size);
  const want = createHash('sha256').update(body).digest('hex');
  const u = new URL(`/v1/files/bench/${name}`, url);
  await new Promise<void>((resolve, reject) => {
    const req = request(u, { method: 'PUT', ca, agent: false, headers: { authorization: `Bearer ${token}`, 'content-length': String(size) } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 201 ? resolve() : reject(new Error(`PUT ${name}: ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
  await new Promise<void>((resolve, reject) => {
    const h = createHash('sha256');
    const req = request(u, { method: 'GET', ca, agent: false, headers: { authorization: `Bearer ${token}` } }, (res) => {
      res.on('data', (d: Buffer) => h.update(d));
      res.on('end', () => (res.statusCode === 200 && h.digest('hex') === want ? resolve() : reject(new Error(`GET ${name}: ${res.statusCode} or bytes differ`))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export async function benchGateway(options: GatewayBenchOptions): Promise<Record<string, unknown>> {
  const log = options.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const work = await mkdtemp(path.join(options.dir ?? os.tmpdir(), 'coffer-bench-gw-'));
  const dataDir = path.join(work, 'data');
  const src = path.join(work, 'source.bin');
  let dev: Dev | undefined;
  try {
    log(`gateway benchmark: ${mib(options.size)} file, ${options.clients} concurrent clients, scratch ${work}`);
    await writeRandomFile(src, options.size);
    const want = await sha256File(src);
    dev = await startDev(dataDir);
    const token = (await runCliProcess(['token', '--data-dir', dataDir, '--user', 'bench'])).stdout.trim();
    const keyFile = path.join(work, 'bench.key');
    await runCliProcess(['keygen', '--out', keyFile]);
    const pem = path.join(work, 'enclave.pem');
    const verified = await runCliProcess(['enclave', 'verify', '--server', dev.gatewayUrl, '--expect-pcr0', dev.pcr0, '--root', 'dev', '--dev-root-cert', dev.devRootCert, '--out', pem]);
    if (verified.code !== 0) throw new Error(`enclave verify failed: ${verified.stderr}`);
    const env = { COFFER_SERVER: dev.storageUrl, COFFER_TOKEN: token, COFFER_KEY_FILE: keyFile, COFFER_STATE_DIR: path.join(work, 'state') };

    const check = async (file: string, what: string): Promise<void> => {
      if ((await sha256File(file)) !== want) throw new Error(`${what}: the downloaded bytes differ`);
      await rm(file);
    };
    const cliPut = await timed(options.size, async () => {
      const r = await runCliProcess(['put', src, '/cli.bin'], env);
      if (r.code !== 0) throw new Error(`coffer put: ${r.stderr}`);
    });
    const cliGet = await timed(options.size, async () => {
      const r = await runCliProcess(['get', '/cli.bin', path.join(work, 'cli.out')], env);
      if (r.code !== 0) throw new Error(`coffer get: ${r.stderr}`);
    });
    await check(path.join(work, 'cli.out'), 'coffer get');
    const auth = `Authorization: Bearer ${token}`;
    const gwPut = await timed(options.size, () => run('curl', ['-sSf', '--cacert', pem, '-H', auth, '-T', src, `${dev?.gatewayUrl}/v1/files/gateway.bin`, '-o', '/dev/null']));
    const gwGet = await timed(options.size, () => run('curl', ['-sSf', '--cacert', pem, '-H', auth, `${dev?.gatewayUrl}/v1/files/gateway.bin`, '-o', path.join(work, 'gw.out')]));
    await check(path.join(work, 'gw.out'), 'curl through the gateway');
    log(row('coffer put (sealed on the client)', cliPut));
    log(row('curl -T through the gateway (sealed inside)', gwPut, cliPut, 'of coffer put (target ≥ 0.6)'));
    log(row('coffer get (opened on the client)', cliGet));
    log(row('curl through the gateway (opened inside)', gwGet, cliGet, 'of coffer get (target ≥ 0.6)'));

    // 16 concurrent clients, mixed sizes, every byte checked
    const sizes = [1, 3 * 1024 * 1024, 8 * 1024 * 1024, 8 * 1024 * 1024 + 1, 20 * 1024 * 1024, 40 * 1024 * 1024];
    const ca = (await import('node:fs/promises')).readFile(pem, 'utf8');
    const mkdir = await runCliProcess(['mkdir', '/bench'], { COFFER_SERVER: dev.storageUrl, COFFER_TOKEN: token });
    if (mkdir.code !== 0) throw new Error(`mkdir: ${mkdir.stderr}`);
    let total = 0;
    let errors = 0;
    const concurrent: Timing = await timed(0, async () => {
      const results = await Promise.allSettled(Array.from({ length: options.clients }, (_, i) => {
        const size = sizes[i % sizes.length] as number;
        total += 2 * size;
        return ca.then((c) => oneClient(dev?.gatewayUrl as string, c, token, `c${i}.bin`, size));
      }));
      for (const r of results) if (r.status === 'rejected') {
        errors++;
        log(`  client failed: ${(r.reason as Error).message}`);
      }
    });
    log(`${options.clients} concurrent clients, mixed sizes up and down: ${errors} errors, ${mib(total)} in ${concurrent.seconds.toFixed(2)} s (${(total / concurrent.seconds / 1e6).toFixed(0)} MB/s), every byte verified`);
    const hostRss = (await peakRss(dev.pid)) ?? 0;
    const enclaveRss = (await peakRss(dev.enclavePid)) ?? 0;
    log(`peak RSS: host (storage service + KMS + proxy) ${mib(hostRss)}, enclave ${mib(enclaveRss)} (run with --size 256MiB and --size 4GiB to compare)`);
    const ratios = { up: gwPut.rate / cliPut.rate, down: gwGet.rate / cliGet.rate };
    log(`summary: gateway upload ${ratios.up.toFixed(2)}× coffer put, download ${ratios.down.toFixed(2)}× coffer get (targets ≥ 0.6); ${errors} errors in ${options.clients} concurrent clients`);
    return { size: options.size, cliPut, cliGet, gwPut, gwGet, ratios, clients: options.clients, errors, concurrent, peakRss: { host: hostRss, enclave: enclaveRss } };
  } finally {
    await dev?.stop();
    if (!options.keep) await rm(work, { recursive: true, force: true });
  }
}
