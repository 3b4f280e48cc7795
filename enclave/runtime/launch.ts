// Starts `coffer enclave run` as its own process (what `coffer dev` does) and waits until it serves. As root on
// Linux, development mode puts it in a network namespace of its own with only loopback (`unshare --net`), so the
// host channel's Unix sockets are its only way out: a TCP connect to the storage service's port from inside
// fails (test/e2e/gateway.test.ts checks it). Path-named Unix sockets are files, not network objects, so they
// still reach the proxy across the namespace boundary — as vsock reaches the parent instance on Nitro.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { endWithThisProcess, stopChild } from '../../src/child-lifetime.js';
import { CofferError, ErrorCode } from '../../src/errors.js';

export interface LaunchOptions {
  /** Arguments after `coffer` (e.g. ['enclave', 'run', '--channel', dir, ...]). */
  args: string[];
  env: NodeJS.ProcessEnv;
  /** 'auto' (default): a namespace of its own when root on Linux with unshare; 'on': required; 'off': never. */
  isolateNetwork?: 'auto' | 'on' | 'off';
  /** How long to wait for the ready line (default 120 s). */
  timeoutMs?: number;
}

export interface LaunchedEnclave {
  child: ChildProcess;
  pid: number;
  pcr0: string;
  spkiSha256: string;
  /** Whether it runs in a network namespace of its own. */
  isolated: boolean;
  stop(): Promise<void>;
}

/** node + arguments that run the `coffer` CLI: compiled output when this file is compiled, else the sources via tsx. */
/**
 * V8 flags of the enclave process. Every byte through the enclave passes through fresh off-heap buffers it cannot
 * avoid with Node's APIs (TLS cleartext reads of 16 KiB, `Cipher.update` output in 1 MiB slices): about 2 GiB per
 * GiB uploaded. With the small heap's default limits that churn alone started a full collection every few MiB
 * (42 per 512 MiB up); a larger initial old-space limit lets V8 collect far less often (15), at no cost in peak
 * RSS (docs/benchmarks.md, "The enclave gateway"). `--initial-old-space-size` is not accepted in NODE_OPTIONS.
 */
export const ENCLAVE_V8_FLAGS: readonly string[] = ['--initial-old-space-size=256'];

export function cliInvocation(): string[] {
  const compiled = fileURLToPath(new URL('../../src/cli/run.js', import.meta.url));
  if (existsSync(compiled)) return [process.execPath, compiled];
  // tsx resolved from here, not from the working directory the enclave happens to start in
  return [process.execPath, '--import', import.meta.resolve('tsx'), fileURLToPath(new URL('../../src/cli/run.ts', import.meta.url))];
}

export function canIsolateNetwork(): boolean {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return false;
  return spawnSync('unshare', ['--net', 'true'], { stdio: 'ignore' }).status === 0;
}

/** Spawns the enclave and resolves once it printed its ready line. Throws CofferError with the enclave's own last words. */
export function launchEnclave(options: LaunchOptions): Promise<LaunchedEnclave> {
  const mode = options.isolateNetwork ?? 'auto';
  const isolated = mode !== 'off' && canIsolateNetwork();
  if (mode === 'on' && !isolated) throw new CofferError(ErrorCode.UNAVAILABLE, 'a network namespace for the enclave needs root on Linux and unshare(1)');
  const [node, ...cli] = [...cliInvocation(), ...options.args];
  cli.unshift(...ENCLAVE_V8_FLAGS);
  const [command, args] = isolated
    ? ['unshare', ['--net', '--', 'sh', '-c', 'ip link set lo up 2>/dev/null; exec "$0" "$@"', node as string, ...cli]]
    : [node as string, cli];
  // COFFER_ENCLAVE_NODE_OPTIONS: Node flags for the enclave process only (e.g. `--cpu-prof --cpu-prof-dir=DIR` to profile it)
  const nodeOptions = process.env.COFFER_ENCLAVE_NODE_OPTIONS;
  const child = spawn(command, args, { env: { ...process.env, ...options.env, ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}), ...endWithThisProcess() }, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new CofferError(ErrorCode.TIMEOUT, `the enclave did not start in time: ${err.trim().split('\n').pop() ?? ''}`));
    }, options.timeoutMs ?? 120_000);
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.length > 64 * 1024) err = err.slice(-32 * 1024);
    });
    const onExit = (code: number | null): void => {
      clearTimeout(timer);
      const last = err.trim().split('\n').filter(Boolean).pop() ?? `exit ${code}`;
      reject(new CofferError(/KMS_ACCESS_DENIED/.test(last) ? ErrorCode.KMS_ACCESS_DENIED : ErrorCode.UNAVAILABLE, `the enclave did not start: ${last.replace(/^coffer: /, '')}`));
    };
    child.once('exit', onExit);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{"ready":true'));
      if (!line) return;
      clearTimeout(timer);
      child.off('exit', onExit);
      child.stdout?.removeAllListeners('data');
      child.stdout?.resume();
      const ready = JSON.parse(line) as { pcr0: string; spkiSha256: string };
      resolve({
        child, pid: child.pid as number, pcr0: ready.pcr0, spkiSha256: ready.spkiSha256, isolated,
        stop: () => stopChild(child),
      });
    });
  });
}
