// The data-directory lock against real processes and real lock files: a live holder (another process) is
// refused, and every way a holder can be gone (dead pid, a pid reused by another process, a reboot, a file cut
// short by a crash) is taken over; a holder on another machine is never taken over.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCK_FILE, lockDataDir, perHostLockFile } from './data-dir-lock.js';

let dir: string;
const file = (): string => path.join(dir, LOCK_FILE);
const boot = (): string => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
const ticks = (pid: number): string => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] as string;
};
const holder = (h: Partial<{ pid: number; started: string; boot: string; host: string }>): string =>
  JSON.stringify({ pid: 1, started: '0', boot: boot(), host: os.hostname(), since: '2026-01-01T00:00:00.000Z', ...h });

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'coffer-lock-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('lockDataDir', () => {
  it('is refused while another live process holds it', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 100));
      await writeFile(file(), holder({ pid: child.pid as number, started: ticks(child.pid as number) }));
      await expect(lockDataDir(dir)).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(`pid ${child.pid} on this machine`) });
    } finally {
      child.kill('SIGKILL');
    }
  });

  it.each([
    ['a dead pid', () => holder({ pid: 2 ** 22 + 12345 })],
    ['a pid now used by another process (start time differs)', () => holder({ pid: 1, started: '999999999' })],
    ['a holder from before a reboot', () => holder({ pid: process.ppid, started: ticks(process.ppid), boot: 'another-boot' })],
    ['a file cut short by a crash', () => '{"pid":12'],
  ])('takes over the lock of %s', async (_what, content) => {
    await writeFile(file(), content());
    const lock = await lockDataDir(dir);
    expect(JSON.parse(await readFile(file(), 'utf8'))).toMatchObject({ pid: process.pid, host: os.hostname() });
    await lock.release();
    await expect(readFile(file())).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('never takes over the lock of another machine, and names it', async () => {
    await writeFile(file(), holder({ host: 'other-node', pid: 1 }));
    await expect(lockDataDir(dir)).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/machine other-node \(if it no longer runs there, remove/) });
    await rm(file());
  });

  it('is shared within one process (coffer dev and its service) and released by the last holder', async () => {
    const a = await lockDataDir(dir);
    const b = await lockDataDir(dir);
    await a.release();
    expect(JSON.parse(await readFile(file(), 'utf8'))).toMatchObject({ pid: process.pid });
    await b.release();
    await expect(readFile(file())).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('with MongoDB metadata, locks this machine only', async () => {
    const lock = await lockDataDir(dir, { perHost: true });
    expect(lock.path).toBe(path.join(dir, perHostLockFile()));
    expect(perHostLockFile()).toMatch(/^service-[A-Za-z0-9._-]+\.lock$/);
    await lock.release();
  });
});
