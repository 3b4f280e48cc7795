// `coffer bench s3`: the AWS CLI (and rclone) copying one file up and down through Coffer's S3 endpoint
// (the enclave's S3 listener as `npm start` runs it — enclave and host proxy as processes: sealed on the way in,
// opened and authenticated on the way out, https with the attested certificate pinned) against the same client on moto's S3 server (plain, unencrypted, not
// attested; PyPI moto[server]) in the same run. Every download is SHA-256 checked. Figures, never pass/fail.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ensureDevRoot } from '../enclave/attestation/index.js';
import { mintDevToken } from '../src/api/auth/index.js';
import { verifyGateway } from '../src/client/gateway-verify.js';
import { startDev } from '../src/dev.js';
import { createLogger } from '../src/telemetry/index.js';
import { runCliProcess } from './cli-process.js';
import { peakRss } from './measure.js';

export interface S3BenchOptions {
  size: number;
  /** Python with moto[server] (default: test/servers/moto-venv if present, else python3). */
  python?: string;
  clients?: Array<'aws' | 'rclone'>;
  log?: (line: string) => void;
}

export interface S3BenchRow { client: string; server: string; upMBs: number; downMBs: number; upS: number; downS: number }

const MB = 1e6;

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env, maxBuffer: 16 * 1024 * 1024 }, (err, _out, stderr) => (err ? reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`)) : resolve()));
  });
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const b of createReadStream(file)) h.update(b as Buffer);
  return h.digest('hex');
}

function startMoto(python: string): Promise<{ url: string; child: ChildProcess }> {
  const script = [
    'import sys, threading', 'from moto.server import ThreadedMotoServer',
    's = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)', 's.start()',
    'h, p = s.get_host_and_port()', 'print(f"READY http://{h}:{p}", flush=True)', 'sys.stdin.read()', 's.stop()',
  ].join('\n');
  return new Promise((resolve, reject) => {
    const child = spawn(python, ['-c', script], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /READY (\S+)/.exec(out);
      if (m) resolve({ url: m[1] as string, child });
    });
    child.on('close', (code) => reject(new Error(`moto exited with ${code}: ${out}`)));
  });
}

export async function benchS3(options: S3BenchOptions): Promise<S3BenchRow[]> {
  const log = options.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const clients = options.clients ?? ['aws', 'rclone'];
  const aws = existsSync('/usr/bin/aws') ? '/usr/bin/aws' : 'aws';
  const venv = path.resolve('test/servers/moto-venv/bin/python');
  const python = options.python ?? (existsSync(venv) ? venv : 'python3');
  const work = await mkdtemp(path.join(os.tmpdir(), 'coffer-bench-s3-'));
  const stops: Array<() => Promise<void>> = [];
  try {
    const src = path.join(work, 'src.bin');
    const fh = await open(src, 'w');
    for (let done = 0; done < options.size; done += 8 * 1024 * 1024) await fh.write(randomBytes(Math.min(8 * 1024 * 1024, options.size - done)));
    await fh.close();
    const srcSha = await sha256File(src);

    // Coffer as `npm start` runs it: storage service + KMS here, the enclave and the host proxy as processes; the
    // S3 listener inside the enclave, its certificate pinned by verification
    const dataDir = path.join(work, 'data');
    const dev = await startDev({
      dataDir, listen: { host: '127.0.0.1', port: 0 }, kmsListen: '127.0.0.1:0', gatewayListen: { host: '127.0.0.1', port: 0 }, s3Listen: { host: '127.0.0.1', port: 0 }, defaultRootRole: 'write',
      logger: createLogger({ level: 'warn' }),
    });
    stops.push(() => dev.close());
    const verified = await verifyGateway({ server: dev.gatewayUrl as string, expectPcr0: dev.measurement.pcr0, root: (await ensureDevRoot(dataDir)).trustRoot });
    const certFile = path.join(work, 'enclave.pem');
    await writeFile(certFile, verified.certPem);
    const coffer = { url: dev.s3Url as string, cert: certFile };
    const keyOut = await runCliProcess(['access-key', 'create', '--server', dev.gatewayUrl as string, '--ca-cert', certFile, '--token', await mintDevToken(dataDir, { user: 'bench-admin', admin: true }), '--user', 'bench', '--json']);
    const key = JSON.parse(keyOut.stdout) as { accessKeyId: string; secretAccessKey: string };
    const moto = await startMoto(python);
    stops.push(async () => { moto.child.stdin?.end(); });

    const servers = [
      { name: 'coffer', url: coffer.url, id: key.accessKeyId, secret: key.secretAccessKey, ca: coffer.cert },
      { name: 'moto', url: moto.url, id: 'testing', secret: 'testing', ca: undefined as string | undefined },
    ];
    const rows: S3BenchRow[] = [];
    const s3Pid = dev.enclave?.pid as number;
    const storagePid = process.pid;
    const rssAtStart = { s3: (await peakRss(s3Pid)) ?? 0, storage: (await peakRss(storagePid)) ?? 0 };
    const baseEnv = { ...process.env, AWS_DEFAULT_REGION: 'us-east-1', AWS_CONFIG_FILE: path.join(work, 'none'), AWS_SHARED_CREDENTIALS_FILE: path.join(work, 'none') };
    for (const client of clients) {
      for (const s of servers) {
        const env: NodeJS.ProcessEnv = { ...baseEnv, AWS_ACCESS_KEY_ID: s.id, AWS_SECRET_ACCESS_KEY: s.secret };
        delete env.AWS_CA_BUNDLE;
        if (s.ca) env.AWS_CA_BUNDLE = s.ca;
        const back = path.join(work, `back-${client}-${s.name}.bin`);
        const bucket = `bench-${client}`;
        let upS: number;
        let downS: number;
        if (client === 'aws') {
          await run(aws, ['--endpoint-url', s.url, 's3', 'mb', `s3://${bucket}`], env);
          upS = await timed(() => run(aws, ['--endpoint-url', s.url, 's3', 'cp', '--no-progress', src, `s3://${bucket}/f.bin`], env));
          downS = await timed(() => run(aws, ['--endpoint-url', s.url, 's3', 'cp', '--no-progress', `s3://${bucket}/f.bin`, back], env));
        } else {
          delete env.AWS_CA_BUNDLE;
          Object.assign(env, {
            RCLONE_CONFIG_B_TYPE: 's3', RCLONE_CONFIG_B_PROVIDER: 'Other', RCLONE_CONFIG_B_ENDPOINT: s.url, RCLONE_CONFIG_B_ACCESS_KEY_ID: s.id,
            RCLONE_CONFIG_B_SECRET_ACCESS_KEY: s.secret, RCLONE_CONFIG_B_FORCE_PATH_STYLE: 'true',
          });
          const rc = ['--config', path.join(work, 'rclone.conf'), ...(s.ca ? ['--ca-cert', s.ca] : [])];
          await run('rclone', [...rc, 'mkdir', `b:${bucket}`], env);
          upS = await timed(() => run('rclone', [...rc, 'copyto', src, `b:${bucket}/f.bin`], env));
          downS = await timed(() => run('rclone', [...rc, 'copyto', `b:${bucket}/f.bin`, back], env));
        }
        if ((await sha256File(back)) !== srcSha) throw new Error(`${client} against ${s.name}: the downloaded file differs`);
        await rm(back);
        const row = { client, server: s.name, upS, downS, upMBs: options.size / MB / upS, downMBs: options.size / MB / downS };
        rows.push(row);
        log(`${client.padEnd(6)} ${s.name.padEnd(6)} up ${row.upMBs.toFixed(1).padStart(7)} MB/s (${upS.toFixed(1)} s)   down ${row.downMBs.toFixed(1).padStart(7)} MB/s (${downS.toFixed(1)} s)   sha256 ok`);
      }
      const c = rows.find((r) => r.client === client && r.server === 'coffer');
      const m = rows.find((r) => r.client === client && r.server === 'moto');
      if (c && m) log(`${client.padEnd(6)} coffer/moto: up ×${(c.upMBs / m.upMBs).toFixed(2)}, down ×${(c.downMBs / m.downMBs).toFixed(2)}`);
    }
    // VmHWM: the highest resident set each process reached over the whole run (flat memory: independent of --size)
    const s3Peak = (await peakRss(s3Pid)) ?? 0;
    const storagePeak = (await peakRss(storagePid)) ?? 0;
    log(`peak RSS: the enclave (S3 listener) ${(s3Peak / 2 ** 20).toFixed(0)} MiB (${(rssAtStart.s3 / 2 ** 20).toFixed(0)} MiB after start), storage service + KMS + bench (one process) ${(storagePeak / 2 ** 20).toFixed(0)} MiB (${(rssAtStart.storage / 2 ** 20).toFixed(0)} MiB after start)`);
    return rows;
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  }
}
