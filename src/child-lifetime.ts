// The lifetime of the long-running processes Coffer starts — `coffer dev`'s enclave and host proxy, the `coffer
// serve` of benchmarks and tests (bench/cli-process.ts): they must not outlive their launcher. If `coffer dev`
// dies without stopping them (SIGKILL, a crash, a signal before its handlers were installed), they
// would go on running under init, holding their ports, the channel's sockets and — the enclave — data keys in
// memory, and the next `coffer dev` on the data directory would find its ports taken. Linux's PR_SET_PDEATHSIG is
// out of reach from Node, so the child watches instead: the launcher names itself in COFFER_PARENT_PID, and the
// child checks every PARENT_POLL_MS whether it still is its parent (a dead parent's children are reparented).
// Once not, the child sends itself SIGTERM (its own orderly stop) and, should that stop hang, SIGKILL after
// PARENT_GONE_GRACE_MS. The launcher's own stop (stopChild) likewise asks with SIGTERM and ends it with SIGKILL
// if it has not exited after a grace period, so one hung child cannot keep `coffer dev` from stopping the others.
import type { ChildProcess } from 'node:child_process';
import { CofferError, ErrorCode } from './errors.js';

export const PARENT_PID_ENV = 'COFFER_PARENT_PID';
export const PARENT_POLL_MS = 500;
export const PARENT_GONE_GRACE_MS = 10_000;

/** For a launcher: the environment entry that makes the child end with this process. */
export function endWithThisProcess(): Record<string, string> {
  return { [PARENT_PID_ENV]: String(process.pid) };
}

/**
 * For a child's entry: when COFFER_PARENT_PID is set, stops this process once that process is no longer its
 * parent (at once if it already is not). The entry is removed from the environment, so processes this one starts
 * do not inherit it. Throws INVALID_ARGUMENT if it is not a process id.
 */
export function endWithParent(env: NodeJS.ProcessEnv = process.env): void {
  const raw = env[PARENT_PID_ENV];
  if (raw === undefined) return;
  delete env[PARENT_PID_ENV];
  if (!/^[1-9][0-9]{0,9}$/.test(raw)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `${PARENT_PID_ENV} must be a process id, not ${JSON.stringify(raw)}`);
  const parent = Number(raw);
  const check = (): void => {
    if (process.ppid === parent) return; // process.ppid asks the kernel each time
    clearInterval(timer);
    setTimeout(() => process.kill(process.pid, 'SIGKILL'), PARENT_GONE_GRACE_MS).unref();
    process.kill(process.pid, 'SIGTERM');
  };
  const timer = setInterval(check, PARENT_POLL_MS);
  timer.unref();
  check();
}

/**
 * For a launcher: stops `child` with SIGTERM and resolves once it exited; SIGKILL if it has not after `graceMs`.
 * Resolves at once if it already exited.
 */
export function stopChild(child: ChildProcess, graceMs = PARENT_GONE_GRACE_MS): Promise<void> {
  return new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
