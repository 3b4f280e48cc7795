// What the S3 benchmarks (s3.ts, s3-concurrent.ts) share: Coffer started as `npm start` runs it (storage service and
// KMS in this process; the enclave, with the S3 listener inside it, and the host proxy as processes; the gateway's
// attested certificate pinned by verification; an access key made through the gateway), moto's S3 server, the
// clients' environment, and file helpers (random source files, SHA-256).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { open, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ensureDevRoot } from '../enclave/attestation/index.js';
import { mintDevToken } from '../src/api/auth/index.js';
import { verifyGateway } from '../src/client/gateway-verify.js';
import { startDev } from '../src/dev.js';
import { createLogger } from '../src/telemetry/index.js';
import { runCliProcess } from './cli-process.js';

export interface S3Target {
  name: 'coffer' | 'moto';
  url: string;
  id: string;
  secret: string;
  /** The pinned certificate (PEM file) for https; none for moto's plain http. */
  ca?: string;
}

/** A command that ran past its time bound and was killed (run's `timeoutMs`). */
export class StalledCommand extends Error {
  constructor(readonly command: string, readonly seconds: number) {
    super(`${command}: still running after ${seconds} s, killed`);
  }
}

/** Runs a command; rejects with its stderr, or with StalledCommand when it runs past `timeoutMs` (then killed). */
export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 0): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env, maxBuffer: 16 * 1024 * 1024, timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, _out, stderr) => {
      if (!err) resolve();
      else if (timeoutMs > 0 && err.killed) reject(new StalledCommand(`${cmd} ${args.join(' ')}`, timeoutMs / 1000));
      else reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`));
    });
  });
}

/** Wall seconds of `fn`. */
export async function timed(fn: () => Promise<void>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const b of createReadStream(file)) h.update(b as Buffer);
  return h.digest('hex');
}

/** Writes `size` random bytes to `file` (8 MiB at a time); returns their SHA-256. */
export async function writeRandomFile(file: string, size: number): Promise<string> {
  const h = createHash('sha256');
  const fh = await open(file, 'w');
  try {
    for (let done = 0; done < size; done += 8 * 1024 * 1024) {
      const b = randomBytes(Math.min(8 * 1024 * 1024, size - done));
      h.update(b);
      await fh.write(b);
    }
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}

export function startMoto(python: string): Promise<{ target: S3Target; stop(): Promise<void> }> {
  const script = [
    'import sys, threading', 'from moto.server import ThreadedMotoServer',
    's = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)', 's.start()',
    'h, p = s.get_host_and_port()', 'print(f"READY http://{h}:{p}", flush=True)', 'sys.stdin.read()', 's.stop()',
  ].join('\n');
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(python, ['-c', script], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /READY (\S+)/.exec(out);
      if (m) {
        resolve({
          target: { name: 'moto', url: m[1] as string, id: 'testing', secret: 'testing' },
          stop: () => new Promise((done) => {
            if (child.exitCode !== null) return done();
            child.once('close', () => done());
            child.stdin?.end();
          }),
        });
      }
    });
    child.on('close', (code) => reject(new Error(`moto exited with ${code}: ${out}`)));
  });
}

/**
 * Coffer as `npm start` runs it, with an access key for user `bench`. `s3Pid`: the enclave process (S3 listener);
 * `proxyPid`: the host proxy (every byte crosses it twice).
 */
export async function startCofferS3(work: string): Promise<{ target: S3Target; s3Pid: number; proxyPid: number | null; stop(): Promise<void> }> {
  const dataDir = path.join(work, 'data');
  const dev = await startDev({
    dataDir, listen: { host: '127.0.0.1', port: 0 }, kmsListen: '127.0.0.1:0', gatewayListen: { host: '127.0.0.1', port: 0 }, s3Listen: { host: '127.0.0.1', port: 0 }, defaultRootRole: 'write',
    logger: createLogger({ level: 'warn' }),
  });
  try {
    const verified = await verifyGateway({ server: dev.gatewayUrl as string, expectPcr0: dev.measurement.pcr0, root: (await ensureDevRoot(dataDir)).trustRoot });
    const certFile = path.join(work, 'enclave.pem');
    await writeFile(certFile, verified.certPem);
    const keyOut = await runCliProcess(['access-key', 'create', '--server', dev.gatewayUrl as string, '--ca-cert', certFile, '--token', await mintDevToken(dataDir, { user: 'bench-admin', admin: true }), '--user', 'bench', '--json']);
    const key = JSON.parse(keyOut.stdout) as { accessKeyId: string; secretAccessKey: string };
    return { target: { name: 'coffer', url: dev.s3Url as string, id: key.accessKeyId, secret: key.secretAccessKey, ca: certFile }, s3Pid: dev.enclave?.pid as number, proxyPid: dev.proxy?.pid ?? null, stop: () => dev.close() };
  } catch (e) {
    await dev.close();
    throw e;
  }
}

/** The AWS CLI's environment for a target: no config or credential files of the machine's, the pin as AWS_CA_BUNDLE. */
export function awsEnv(work: string, t: S3Target, configFile?: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env, AWS_DEFAULT_REGION: 'us-east-1', AWS_CONFIG_FILE: configFile ?? path.join(work, 'none'), AWS_SHARED_CREDENTIALS_FILE: path.join(work, 'none'),
    AWS_ACCESS_KEY_ID: t.id, AWS_SECRET_ACCESS_KEY: t.secret,
  };
  delete env.AWS_CA_BUNDLE;
  if (t.ca) env.AWS_CA_BUNDLE = t.ca;
  return env;
}

/** rclone's remote `b:` for a target (from the environment) and its common flags. */
export function rcloneEnv(work: string, t: S3Target): { env: NodeJS.ProcessEnv; flags: string[] } {
  const env: NodeJS.ProcessEnv = {
    ...process.env, RCLONE_CONFIG_B_TYPE: 's3', RCLONE_CONFIG_B_PROVIDER: 'Other', RCLONE_CONFIG_B_ENDPOINT: t.url, RCLONE_CONFIG_B_ACCESS_KEY_ID: t.id,
    RCLONE_CONFIG_B_SECRET_ACCESS_KEY: t.secret, RCLONE_CONFIG_B_FORCE_PATH_STYLE: 'true',
  };
  delete env.AWS_CA_BUNDLE;
  return { env, flags: ['--config', path.join(work, 'rclone.conf'), ...(t.ca ? ['--ca-cert', t.ca] : [])] };
}

export const AWS_CLI = existsSync('/usr/bin/aws') ? '/usr/bin/aws' : 'aws';

/** Python with moto[server]: test/servers/moto-venv if present, else python3. */
export function motoPython(): string {
  const venv = path.resolve('test/servers/moto-venv/bin/python');
  return existsSync(venv) ? venv : 'python3';
}
