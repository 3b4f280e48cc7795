// Runs the coffer CLI as a child process (compiled output when present, otherwise the sources through tsx), so
// benchmarks and end-to-end tests exercise exactly what a user runs.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { endWithThisProcess } from '../src/child-lifetime.js';

// COFFER_BENCH_CLI=/path/to/other/bin/coffer.mjs runs another tree's CLI instead (a built checkout); the large-file
// benchmark also takes COFFER_BENCH_CLI_B to A/B two trees' put/get in one run (bench/large.ts).
export function cliCommand(cli: string | undefined = process.env.COFFER_BENCH_CLI): { command: string; args: string[] } {
  if (cli) return { command: process.execPath, args: [cli] };
  const compiled = fileURLToPath(new URL('../src/cli/run.js', import.meta.url));
  if (existsSync(compiled)) return { command: process.execPath, args: [compiled] };
  const source = fileURLToPath(new URL('../src/cli/run.ts', import.meta.url));
  return { command: process.execPath, args: ['--import', 'tsx', source] };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}, cli?: string): ChildProcess {
  const { command, args: pre } = cliCommand(cli);
  return spawn(command, [...pre, ...args], { env: { ...process.env, COFFER_NO_PROGRESS: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

export function runCliProcess(args: string[], env: NodeJS.ProcessEnv = {}, onSpawn?: (child: ChildProcess) => void, cli?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawnCli(args, env, cli);
    onSpawn?.(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/**
 * Starts `coffer serve` (or `dev`) with `cli` (default: cliCommand's) and resolves when it prints its URL. The server
 * ends with this process, however it ends (src/child-lifetime.ts): a killed benchmark or test run leaves none behind.
 */
export function startServerProcess(args: string[], env: NodeJS.ProcessEnv = {}, cli?: string): Promise<{ url: string; child: ChildProcess; stop(): Promise<void> }> {
  return new Promise((resolve, reject) => {
    const child = spawnCli(args, { ...env, ...endWithThisProcess() }, cli);
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start in time:\n${out}\n${err}`));
    }, 60_000);
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /storage service: (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({
          url: m[1] as string,
          child,
          stop: () =>
            new Promise<void>((r) => {
              if (child.exitCode !== null) return r();
              child.once('close', () => r());
              child.kill('SIGTERM');
            }),
        });
      }
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${out}\n${err}`));
    });
  });
}
