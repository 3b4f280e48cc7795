// child-lifetime.ts with real processes: stopChild ends a child that ignores SIGTERM; endWithParent refuses a
// COFFER_PARENT_PID that is not a process id, takes it out of the environment, and stops a child whose parent
// died (the whole chain: test/e2e/dev-lifetime.test.ts).
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { PARENT_PID_ENV, endWithParent, stopChild } from './child-lifetime.js';
import { isCofferError, ErrorCode } from './errors.js';
import { waitEnded } from '../test/support/process-gone.js';

describe('stopChild', () => {
  it('SIGTERM first; SIGKILL once the grace period is over', async () => {
    const polite = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    await new Promise((r) => polite.once('spawn', r));
    await stopChild(polite, 5_000);
    expect(polite.signalCode).toBe('SIGTERM');
    const stubborn = spawn(process.execPath, ['-e', "process.on('SIGTERM', () => {}); process.stdout.write('ready\\n'); setInterval(() => {}, 1000)"]);
    await new Promise((r) => stubborn.stdout.once('data', r)); // its handler is installed
    const t0 = Date.now();
    await stopChild(stubborn, 300);
    expect(stubborn.signalCode).toBe('SIGKILL');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    await stopChild(stubborn, 300); // already exited: resolves at once
  });
});

describe('endWithParent', () => {
  it('does nothing without the variable; refuses one that is not a process id; removes it from the environment', () => {
    const env: NodeJS.ProcessEnv = {};
    endWithParent(env);
    for (const bad of ['', 'abc', '0', '-1', '12x', '1e3', '99999999999']) {
      const e = { [PARENT_PID_ENV]: bad };
      let caught: unknown;
      try {
        endWithParent(e);
      } catch (err) {
        caught = err;
      }
      expect(isCofferError(caught, ErrorCode.INVALID_ARGUMENT), bad).toBe(true);
      expect(e[PARENT_PID_ENV]).toBeUndefined();
    }
  });

  it('a child whose parent dies stops itself; its own children do not inherit the variable', async () => {
    // parent → child (endWithParent, prints its pid and whether it still sees the variable) → parent exits
    const moduleUrl = new URL('./child-lifetime.ts', import.meta.url).href;
    const child = `import { endWithParent } from ${JSON.stringify(moduleUrl)}; endWithParent(); process.stdout.write(JSON.stringify({ pid: process.pid, inherited: process.env.${PARENT_PID_ENV} ?? null }) + '\\n'); setInterval(() => {}, 1000);`;
    const parent = `const { spawn } = require('node:child_process'); const c = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', ${JSON.stringify(child)}], { env: { ...process.env, ${PARENT_PID_ENV}: String(process.pid) }, stdio: ['ignore', 'pipe', 'inherit'] }); c.stdout.once('data', (d) => { process.stdout.write(d); process.exit(0); });`;
    const p = spawn(process.execPath, ['-e', parent], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise((r) => p.once('close', r));
    const { pid, inherited } = JSON.parse(out) as { pid: number; inherited: string | null };
    expect(inherited).toBeNull();
    expect(await waitEnded([pid], 10_000)).toEqual([]);
  });
});
