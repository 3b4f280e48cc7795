import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm, symlink, utimes, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { partialPath, sweepDeadPartials } from './partial-files.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'coffer-partials-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

/** The pid of a process that has already exited (and, just now, was not reused). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '']);
  return child.pid as number;
}

describe('partial download files', () => {
  it('names say host and process, and stay short', () => {
    const name = path.basename(partialPath(dir));
    expect(name).toMatch(new RegExp(`^\\.coffer-partial-[0-9a-f]{8}-${process.pid}-[0-9a-f]{8}$`));
    expect(name.length).toBeLessThanOrEqual(48);
  });

  it('sweeps files whose process is gone under this tag or that nobody wrote for an hour, and only regular files', async () => {
    const mine = path.basename(partialPath(dir)); // this (live) process
    const host = mine.split('-')[2] as string;
    const dead = `.coffer-partial-${host}-${deadPid()}-0123abcd`;
    const otherHost = `.coffer-partial-${host === 'ffffffff' ? 'eeeeeeee' : 'ffffffff'}-${deadPid()}-0123abcd`;
    const oldFormat = '.coffer-partial-0123456789ab';
    for (const n of [mine, dead, otherHost, oldFormat, 'data.bin']) await writeFile(path.join(dir, n), 'x');
    const deadDir = `.coffer-partial-${host}-${deadPid()}-aaaabbbb`;
    await mkdir(path.join(dir, deadDir));
    const deadLink = `.coffer-partial-${host}-${deadPid()}-ccccdddd`;
    await symlink('data.bin', path.join(dir, deadLink));
    // another machine's (or boot's) file: nobody has written it for over an hour, so its download is gone too
    const stale = `.coffer-partial-${host === 'ffffffff' ? 'eeeeeeee' : 'ffffffff'}-${deadPid()}-5678abcd`;
    await writeFile(path.join(dir, stale), 'x');
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    await utimes(path.join(dir, stale), twoHoursAgo, twoHoursAgo);
    // this tag's file of a live process (a download stopped with Ctrl-Z): kept however old
    const mineOld = path.basename(partialPath(dir));
    await writeFile(path.join(dir, mineOld), 'x');
    await utimes(path.join(dir, mineOld), twoHoursAgo, twoHoursAgo);
    expect(await sweepDeadPartials(dir)).toBe(2);
    expect((await readdir(dir)).sort()).toEqual([mine, mineOld, otherHost, oldFormat, deadDir, deadLink, 'data.bin'].sort());
    expect(await sweepDeadPartials(path.join(dir, 'missing'))).toBe(0);
  });

  it('names are distinct across many calls (past a block of random bytes) and carry this process\'s pid', () => {
    const names = Array.from({ length: 3000 }, () => path.basename(partialPath(dir)));
    expect(new Set(names).size).toBe(names.length);
    for (const n of names) expect(n).toMatch(new RegExp(`^\\.coffer-partial-[0-9a-f]{8}-${process.pid}-[0-9a-f]{8}$`));
  });
});
