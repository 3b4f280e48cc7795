// `coffer dev` starts the enclave and the host proxy as processes of their own; they end with it, however it
// ends (src/child-lifetime.ts). Real processes: `coffer dev` killed with SIGKILL (no handler runs) leaves neither
// child running; a SIGTERM sent the moment its banner arrives stops all three, in order, with exit code 0. The
// `coffer serve` a benchmark or a test starts (bench/cli-process.ts startServerProcess) ends with its launcher too.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { spawnCli } from '../../bench/cli-process.js';
import { PARENT_GONE_GRACE_MS, PARENT_POLL_MS } from '../../src/child-lifetime.js';
import { processEnded, waitEnded } from '../support/process-gone.js';

vi.setConfig({ testTimeout: 180_000 });

const started: Array<{ dev: ChildProcess; pids: number[]; work: string }> = [];

/** Starts `coffer dev --json` on free ports; resolves with it and its enclave's and proxy's process ids. */
async function startDev(): Promise<{ dev: ChildProcess; enclavePid: number; proxyPid: number }> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'coffer-dev-lifetime-'));
  const dev = spawnCli(['dev', '--json', '--data-dir', path.join(work, 'data'), '--listen', '127.0.0.1:0', '--kms-listen', '127.0.0.1:0', '--gateway-listen', '127.0.0.1:0']);
  const entry = { dev, pids: [] as number[], work };
  started.push(entry);
  let out = '';
  let err = '';
  dev.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const info = await new Promise<{ enclavePid: number; proxyPid: number }>((resolve, reject) => {
    dev.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line && out.includes('\n')) resolve(JSON.parse(line) as { enclavePid: number; proxyPid: number });
    });
    dev.on('exit', (code) => reject(new Error(`coffer dev exited ${code}: ${err}`)));
  });
  expect(info.enclavePid).toBeGreaterThan(0);
  expect(info.proxyPid).toBeGreaterThan(0);
  entry.pids.push(info.enclavePid, info.proxyPid);
  return { dev, ...info };
}

afterEach(async () => {
  // whatever a failed test left: nothing of it outlives the run
  for (const { dev, pids, work } of started.splice(0)) {
    for (const pid of [dev.pid as number, ...pids]) {
      try {
        if (!processEnded(pid)) process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    await rm(work, { recursive: true, force: true });
  }
});

describe('processes end with the process that started them', () => {
  it('killed with SIGKILL (no handler of its own runs): both children stop within a poll and their own stop', async () => {
    const { dev, enclavePid, proxyPid } = await startDev();
    expect(processEnded(enclavePid) || processEnded(proxyPid)).toBe(false);
    const exited = new Promise((r) => dev.once('exit', r));
    dev.kill('SIGKILL');
    await exited;
    // each notices within PARENT_POLL_MS and stops itself (SIGKILL after the grace period if that hangs)
    expect(await waitEnded([enclavePid, proxyPid], PARENT_POLL_MS + PARENT_GONE_GRACE_MS + 5_000)).toEqual([]);
  });

  it('a SIGTERM the moment its banner arrives stops the children first, then coffer dev itself, with exit code 0', async () => {
    const { dev, enclavePid, proxyPid } = await startDev();
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => dev.once('exit', (code, signal) => r({ code, signal })));
    dev.kill('SIGTERM');
    expect(await exited).toEqual({ code: 0, signal: null });
    // dev.close() waited for both before it returned: nothing left to wait for
    expect(await waitEnded([enclavePid, proxyPid], 1_000)).toEqual([]);
  });

  it("the `coffer serve` of startServerProcess ends with its launcher when that is killed", async () => {
    const work = await mkdtemp(path.join(os.tmpdir(), 'coffer-dev-lifetime-'));
    const cliProcess = new URL('../../bench/cli-process.ts', import.meta.url).href;
    const script = `import { startServerProcess } from ${JSON.stringify(cliProcess)}; const s = await startServerProcess(['serve', '--data-dir', ${JSON.stringify(path.join(work, 'data'))}, '--listen', '127.0.0.1:0']); process.stdout.write(s.child.pid + '\\n'); setInterval(() => {}, 1000);`;
    const launcher = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const entry = { dev: launcher, pids: [] as number[], work };
    started.push(entry);
    const servePid = await new Promise<number>((resolve, reject) => {
      launcher.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
      launcher.once('exit', (code) => reject(new Error(`the launcher exited ${code}`)));
    });
    entry.pids.push(servePid);
    expect(processEnded(servePid)).toBe(false);
    launcher.kill('SIGKILL');
    expect(await waitEnded([servePid], PARENT_POLL_MS + PARENT_GONE_GRACE_MS + 5_000)).toEqual([]);
  });
});
