// Starts and stops the S3-compatible test server (moto's server, from PyPI) as a child process, for the S3
// chunk store's contract run, the S3 backup target and benchmarks (docs/test-servers.md "S3-compatible server").
// The child (moto_s3.py) prints `READY http://127.0.0.1:PORT` and exits when its stdin closes, so a crashed run
// leaves no orphan. Python: COFFER_TEST_S3_PYTHON, else the venv .ci/install-s3-server.sh makes
// (test/servers/moto-venv), else python3 if it can import moto.
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const serversDir = path.dirname(fileURLToPath(import.meta.url));
export const MOTO_VENV_PYTHON = path.join(serversDir, 'moto-venv', 'bin', 'python');
export const MOTO_SCRIPT = path.join(serversDir, 'moto_s3.py');

/** Credentials and region the test server accepts (moto accepts any; these are fixed for reproducibility). */
export const S3_TEST_CREDENTIALS = Object.freeze({ accessKeyId: 'coffer-test', secretAccessKey: 'coffer-test-secret' });
export const S3_TEST_REGION = 'us-east-1';

export interface S3TestServer {
  endpoint: string;
  stop(): Promise<void>;
}

/** The Python that can run moto's server. Throws with what to install when none can. */
export async function findMotoPython(): Promise<string> {
  const candidates = [process.env.COFFER_TEST_S3_PYTHON, existsSync(MOTO_VENV_PYTHON) ? MOTO_VENV_PYTHON : undefined, 'python3'].filter((c): c is string => !!c);
  const tried: string[] = [];
  for (const python of candidates) {
    try {
      await promisify(execFile)(python, ['-c', 'import moto.server'], { timeout: 60_000 });
      return python;
    } catch (e) {
      tried.push(`${python}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(`no Python with moto's server (run .ci/install-s3-server.sh, or pip install 'moto[server]'); tried ${tried.join('; ')}`);
}

/** Starts moto's S3 server on a free loopback port. Rejects when it cannot start or is not ready in time. */
export async function startS3TestServer(options: { python?: string; timeoutMs?: number } = {}): Promise<S3TestServer> {
  const python = options.python ?? (await findMotoPython());
  const child = spawn(python, [MOTO_SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-8192);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const endpoint = await new Promise<string>((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => fail(new Error(`moto's server was not ready within ${(options.timeoutMs ?? 30_000) / 1000} s; stderr: ${stderr}`)), options.timeoutMs ?? 30_000);
    const fail = (e: Error): void => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(e);
    };
    child.once('error', (e) => fail(new Error(`cannot start ${python} ${MOTO_SCRIPT}: ${e.message}`)));
    const onExit = (code: number | null): void => fail(new Error(`moto's server exited early (status ${code}); stderr: ${stderr}`));
    child.once('exit', onExit);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const m = /^READY (http:\/\/\S+)$/m.exec(stdout);
      if (m) {
        clearTimeout(timer);
        child.off('exit', onExit);
        resolve(m[1] as string);
      }
    });
  });
  return {
    endpoint,
    async stop() {
      child.stdin.end();
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
