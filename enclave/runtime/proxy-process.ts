// Starts `coffer enclave proxy` as its own process (what `coffer dev` does), as on Nitro where the proxy runs on
// the parent instance beside — not inside — the storage service. Why a process of its own: every byte of a
// gateway transfer crosses the proxy twice (client TLS records in, sealed chunks out); in the storage service's
// process those copies shared its event loop and, worse, its garbage collector — profiles of a 256 MiB upload
// showed half of that process's time in GC, triggered by the proxy's read buffers against the service's large
// heap. In a small process of its own (proxy-main.ts loads the proxy's modules only) GC stays cheap.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { endWithThisProcess, stopChild } from '../../src/child-lifetime.js';
import { CofferError, ErrorCode } from '../../src/errors.js';

export interface ProxyProcessOptions {
  channelDir: string;
  listen: { host: string; port: number };
  /** Where S3 clients connect (the enclave's S3 listener); none when absent. */
  s3Listen?: { host: string; port: number };
  storageUrl: string;
  kmsUrl: string;
  /** How long to wait for the proxy's URL line (default 60 s). */
  timeoutMs?: number;
}

export interface ProxyProcess {
  /** https://host:port of the gateway as clients reach it. */
  url: string;
  /** https://host:port of the enclave's S3 listener (null without s3Listen). */
  s3Url: string | null;
  pid: number;
  close(): Promise<void>;
}

/** Spawns the proxy and resolves once it listens. Throws CofferError UNAVAILABLE with the proxy's last words. */
export function launchHostProxy(options: ProxyProcessOptions): Promise<ProxyProcess> {
  const config = JSON.stringify({ channelDir: options.channelDir, listen: options.listen, s3Listen: options.s3Listen, storageUrl: options.storageUrl, kmsUrl: options.kmsUrl });
  const child = spawn(process.execPath, proxyEntry(), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, COFFER_PROXY_CONFIG: config, ...endWithThisProcess() } });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new CofferError(ErrorCode.TIMEOUT, 'the host proxy did not start in time'));
    }, options.timeoutMs ?? 60_000);
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.length > 16 * 1024) err = err.slice(-8 * 1024);
    });
    const onExit = (code: number | null): void => {
      clearTimeout(timer);
      const last = err.trim().split('\n').filter(Boolean).pop() ?? `exit ${code}`;
      reject(new CofferError(ErrorCode.UNAVAILABLE, `the host proxy did not start: ${last.replace(/^coffer: /, '')}`));
    };
    child.once('exit', onExit);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /enclave gateway: (https:\/\/\S+)/.exec(out);
      if (!m) return;
      clearTimeout(timer);
      child.off('exit', onExit);
      child.stdout?.removeAllListeners('data');
      child.stdout?.resume();
      resolve({
        url: m[1] as string,
        s3Url: /enclave S3: (https:\/\/\S+)/.exec(out)?.[1] ?? null, // printed before the gateway line
        pid: child.pid as number,
        close: () => stopChild(child),
      });
    });
  });
}

/** node arguments that run proxy-main: compiled output when this file is compiled, else the source via tsx. */
function proxyEntry(): string[] {
  const compiled = fileURLToPath(new URL('./proxy-main.js', import.meta.url));
  if (existsSync(compiled)) return [compiled];
  return ['--import', import.meta.resolve('tsx'), fileURLToPath(new URL('./proxy-main.ts', import.meta.url))];
}
