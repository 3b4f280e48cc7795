// `coffer bench gateway`: the enclave gateway against client-side sealing, in one run on this machine.
// One `coffer dev` (storage service + KMS + proxy, and the enclave process) serves both paths:
//   - `coffer put`/`coffer get` with a key file (sealing on the client, straight to the storage service), and
//   - a pinned `curl -T` up / `curl` down through the gateway (sealing inside the enclave, TLS ending there);
// the ratios are the issue's targets (≥ 0.6). The four transfers run interleaved for --rounds rounds and the
// medians count (the machine may be shared). Then N concurrent clients upload and download mixed sizes through
// the gateway, every byte checked by SHA-256. Every process's peak RSS and CPU seconds per transfer are
// printed; --compare-size runs the whole sequence again at a second size (fresh `coffer dev`) and prints peak
// RSS side by side, to show memory flat in file size.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { cliCommand, runCliProcess, spawnCli } from './cli-process.js';
import { cpuSecondsUsed, peakRss, row, type Timing } from './measure.js';

export interface GatewayBenchOptions {
  size: number;
  clients: number;
  /** Interleaved rounds of the four transfers (medians reported; default 1). */
  rounds?: number;
  /** A second file size: the whole sequence again with a fresh `coffer dev`, peak RSS of both printed. */
  compareSize?: number;
  dir?: string;
  keep?: boolean;
  log?: (line: string) => void;
}

const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(0)} MiB`;

/** What one client process cost: its peak RSS and CPU seconds (from /usr/bin/time). */
interface ProcessCost {
  maxRss: number;
  cpu: number;
}

/** Runs a command under /usr/bin/time; resolves to its peak RSS and CPU time. Rejects unless it exits 0. */
function run(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<ProcessCost> {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/time', ['-f', 'RUSAGE %M %U %S', command, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, COFFER_NO_PROGRESS: '1', ...env } });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const m = /RUSAGE (\d+) ([\d.]+) ([\d.]+)/.exec(err);
      if (code !== 0 || !m) return reject(new Error(`${command} exited ${code}: ${err.trim()}`));
      resolve({ maxRss: Number(m[1]) * 1024, cpu: Number(m[2]) + Number(m[3]) });
    });
  });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

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
  /** The host proxy's own process (null: an older `coffer dev` that ran it inside the host process). */
  proxyPid: number | null;
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
      const j = JSON.parse(out.split('\n')[0] as string) as { gatewayUrl: string; storageUrl: string; enclaveMeasurement: { pcr0: string }; devRootCert: string; enclavePid: number; proxyPid?: number | null };
      resolve({
        gatewayUrl: j.gatewayUrl, storageUrl: j.storageUrl, pcr0: j.enclaveMeasurement.pcr0, devRootCert: j.devRootCert, enclavePid: j.enclavePid, proxyPid: j.proxyPid ?? null, pid: child.pid as number,
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
  const u = new URL(`/v1/files/home/bench/${name}`, url);
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

/** One transfer: wall time, and CPU seconds of the client, the host process, the proxy and the enclave. */
interface Transfer {
  timing: Timing;
  client: ProcessCost;
  hostCpu: number;
  proxyCpu: number;
  enclaveCpu: number;
}

async function transfer(dev: Dev, bytes: number, fn: () => Promise<ProcessCost>): Promise<Transfer> {
  const cpus = (): Promise<number[]> => Promise.all([dev.pid, dev.proxyPid ?? 0, dev.enclavePid].map((p) => (p ? cpuSecondsUsed(p) : Promise.resolve(0))));
  const [h0, p0, e0] = (await cpus()) as [number, number, number];
  const t0 = process.hrtime.bigint();
  const client = await fn();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const [h1, p1, e1] = (await cpus()) as [number, number, number];
  return { timing: { seconds, bytes, rate: bytes / seconds }, client, hostCpu: h1 - h0, proxyCpu: p1 - p0, enclaveCpu: e1 - e0 };
}

const PATHS = ['coffer put', 'gateway up', 'coffer get', 'gateway down'] as const;
type PathName = typeof PATHS[number];

interface SizeResult {
  size: number;
  medians: Record<PathName, Transfer>;
  ratios: { up: number; down: number };
  errors: number;
  concurrent: Timing & { total: number };
  peakRss: Record<string, number>;
}

/** The whole sequence at one size with a fresh `coffer dev`. */
async function benchOneSize(options: GatewayBenchOptions, size: number, log: (l: string) => void): Promise<SizeResult> {
  const work = await mkdtemp(path.join(options.dir ?? os.tmpdir(), 'coffer-bench-gw-'));
  const dataDir = path.join(work, 'data');
  const src = path.join(work, 'source.bin');
  const rounds = options.rounds ?? 1;
  let dev: Dev | undefined;
  try {
    log(`gateway benchmark: ${mib(size)} file, ${rounds} interleaved round(s), ${options.clients} concurrent clients, scratch ${work}`);
    await writeRandomFile(src, size);
    const want = await sha256File(src);
    dev = await startDev(dataDir);
    const token = (await runCliProcess(['token', '--data-dir', dataDir, '--user', 'bench'])).stdout.trim();
    const keyFile = path.join(work, 'bench.key');
    await runCliProcess(['keygen', '--out', keyFile]);
    const pem = path.join(work, 'enclave.pem');
    const verified = await runCliProcess(['enclave', 'verify', '--server', dev.gatewayUrl, '--expect-pcr0', dev.pcr0, '--root', 'dev', '--dev-root-cert', dev.devRootCert, '--out', pem]);
    if (verified.code !== 0) throw new Error(`enclave verify failed: ${verified.stderr}`);
    const env = { COFFER_SERVER: dev.storageUrl, COFFER_TOKEN: token, COFFER_KEY_FILE: keyFile, COFFER_STATE_DIR: path.join(work, 'state') };
    const cli = cliCommand();
    const d = dev;

    const check = async (file: string, what: string): Promise<void> => {
      if ((await sha256File(file)) !== want) throw new Error(`${what}: the downloaded bytes differ`);
      await rm(file);
    };
    const auth = `Authorization: Bearer ${token}`;
    const steps: Record<PathName, () => Promise<Transfer>> = {
      'coffer put': () => transfer(d, size, () => run(cli.command, [...cli.args, 'put', '--force', src, '/home/bench/cli.bin'], env)),
      'gateway up': () => transfer(d, size, () => run('curl', ['-sSf', '--cacert', pem, '-H', auth, '-T', src, `${d.gatewayUrl}/v1/files/home/bench/gateway.bin`, '-o', '/dev/null'])),
      'coffer get': async () => {
        const t = await transfer(d, size, () => run(cli.command, [...cli.args, 'get', '/home/bench/cli.bin', path.join(work, 'cli.out')], env));
        await check(path.join(work, 'cli.out'), 'coffer get');
        return t;
      },
      'gateway down': async () => {
        const t = await transfer(d, size, () => run('curl', ['-sSf', '--cacert', pem, '-H', auth, `${d.gatewayUrl}/v1/files/home/bench/gateway.bin`, '-o', path.join(work, 'gw.out')]));
        await check(path.join(work, 'gw.out'), 'curl through the gateway');
        return t;
      },
    };
    const all: Record<PathName, Transfer[]> = { 'coffer put': [], 'gateway up': [], 'coffer get': [], 'gateway down': [] };
    for (let r = 0; r < rounds; r++) {
      for (const name of PATHS) {
        const t = await steps[name]();
        all[name].push(t);
        if (rounds > 1) log(`  round ${r + 1} ${name.padEnd(12)} ${t.timing.seconds.toFixed(2)} s  ${(t.timing.rate / 1e6).toFixed(0)} MB/s`);
      }
    }
    const pick = (name: PathName): Transfer => {
      const ts = all[name];
      const m = median(ts.map((t) => t.timing.seconds));
      return ts.reduce((a, b) => (Math.abs(b.timing.seconds - m) < Math.abs(a.timing.seconds - m) ? b : a));
    };
    const medians = Object.fromEntries(PATHS.map((n) => [n, pick(n)])) as Record<PathName, Transfer>;
    const cpuNote = (t: Transfer, client: string): string =>
      `CPU s: ${client} ${t.client.cpu.toFixed(1)}, host ${t.hostCpu.toFixed(1)}, proxy ${t.proxyCpu.toFixed(1)}, enclave ${t.enclaveCpu.toFixed(1)}`;
    log(row('coffer put (sealed on the client)', medians['coffer put'].timing, undefined, cpuNote(medians['coffer put'], 'coffer')));
    log(row('curl -T through the gateway (sealed inside)', medians['gateway up'].timing, medians['coffer put'].timing, `of coffer put (target ≥ 0.6); ${cpuNote(medians['gateway up'], 'curl')}`));
    log(row('coffer get (opened on the client)', medians['coffer get'].timing, undefined, cpuNote(medians['coffer get'], 'coffer')));
    log(row('curl through the gateway (opened inside)', medians['gateway down'].timing, medians['coffer get'].timing, `of coffer get (target ≥ 0.6); ${cpuNote(medians['gateway down'], 'curl')}`));

    // N concurrent clients, mixed sizes, every byte checked
    const sizes = [1, 3 * 1024 * 1024, 8 * 1024 * 1024, 8 * 1024 * 1024 + 1, 20 * 1024 * 1024, 40 * 1024 * 1024];
    const ca = readFile(pem, 'utf8');
    let total = 0;
    let errors = 0;
    const t0 = process.hrtime.bigint();
    const results = await Promise.allSettled(Array.from({ length: options.clients }, (_, i) => {
      const n = sizes[i % sizes.length] as number;
      total += 2 * n;
      return ca.then((c) => oneClient(d.gatewayUrl, c, token, `c${i}.bin`, n));
    }));
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    for (const r of results) if (r.status === 'rejected') {
      errors++;
      log(`  client failed: ${(r.reason as Error).message}`);
    }
    log(`${options.clients} concurrent clients, mixed sizes up and down: ${errors} errors, ${mib(total)} in ${seconds.toFixed(2)} s (${(total / seconds / 1e6).toFixed(0)} MB/s), every byte verified`);
    const peak = (name: PathName): number => Math.max(...all[name].map((t) => t.client.maxRss));
    const peakRssByProcess: Record<string, number> = {
      'host (storage service + KMS)': (await peakRss(dev.pid)) ?? 0,
      proxy: dev.proxyPid ? ((await peakRss(dev.proxyPid)) ?? 0) : 0,
      enclave: (await peakRss(dev.enclavePid)) ?? 0,
      'coffer put': peak('coffer put'),
      'curl -T': peak('gateway up'),
      'coffer get': peak('coffer get'),
      curl: peak('gateway down'),
    };
    log(`peak RSS at ${mib(size)}: ${Object.entries(peakRssByProcess).map(([k, v]) => `${k} ${mib(v)}`).join(', ')}`);
    const ratios = { up: medians['gateway up'].timing.rate / medians['coffer put'].timing.rate, down: medians['gateway down'].timing.rate / medians['coffer get'].timing.rate };
    log(`summary at ${mib(size)}: gateway upload ${ratios.up.toFixed(2)}× coffer put, download ${ratios.down.toFixed(2)}× coffer get (targets ≥ 0.6; medians of ${rounds}); ${errors} errors in ${options.clients} concurrent clients`);
    return { size, medians, ratios, errors, concurrent: { seconds, bytes: total, rate: total / seconds, total }, peakRss: peakRssByProcess };
  } finally {
    await dev?.stop();
    if (!options.keep) await rm(work, { recursive: true, force: true });
  }
}

export async function benchGateway(options: GatewayBenchOptions): Promise<Record<string, unknown>> {
  const log = options.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const results = [await benchOneSize(options, options.size, log)];
  if (options.compareSize !== undefined) {
    results.push(await benchOneSize(options, options.compareSize, log));
    const [a, b] = results as [SizeResult, SizeResult];
    log(`peak RSS by process, ${mib(a.size)} vs ${mib(b.size)} (flat in file size):`);
    for (const k of Object.keys(a.peakRss)) log(`  ${k.padEnd(38)} ${mib(a.peakRss[k] ?? 0).padStart(8)}  ${mib(b.peakRss[k] ?? 0).padStart(8)}`);
  }
  return { results };
}
