// Starts `coffer enclave proxy` as its own process (what `coffer dev` does), as on Nitro where the proxy runs on
// the parent instance beside — not inside — the storage service. Why a process of its own: every byte of a
// gateway transfer crosses the proxy twice (client TLS records in, sealed chunks out); in the storage service's
// process those copies shared its event loop and, worse, its garbage collector — profiles of a 256 MiB upload
// showed half of that process's time in GC, triggered by the proxy's read buffers against the service's large
// heap. In a small process of its own the same buffers cost a few milliseconds of GC.
import { spawn } from 'node:child_process';
import { CofferError, ErrorCode } from '../../src/errors.js';
import { cliInvocation } from './launch.js';

export interface ProxyProcessOptions {
  channelDir: string;
  listen: { host: string; port: number };
  storageUrl: string;
  kmsUrl: string;
  /** How long to wait for the proxy's URL line (default 60 s). */
  timeoutMs?: number;
}

export interface ProxyProcess {
  /** https://host:port of the gateway as clients reach it. */
  url: string;
  pid: number;
  close(): Promise<void>;
}

/** Spawns the proxy and resolves once it listens. Throws CofferError UNAVAILABLE with the proxy's last words. */
export function launchHostProxy(options: ProxyProcessOptions): Promise<ProxyProcess> {
  const host = options.listen.host.includes(':') ? `[${options.listen.host}]` : options.listen.host;
  const [node, ...cli] = [
    ...cliInvocation(), 'enclave', 'proxy', '--channel', options.channelDir, '--listen', `${host}:${options.listen.port}`,
    '--storage', options.storageUrl, '--kms', options.kmsUrl,
  ];
  const child = spawn(node as string, cli, { stdio: ['ignore', 'pipe', 'pipe'] });
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
        pid: child.pid as number,
        close: () => new Promise<void>((r) => {
          if (child.exitCode !== null || child.signalCode !== null) return r();
          child.once('exit', () => r());
          child.kill('SIGTERM');
        }),
      });
    });
  });
}
