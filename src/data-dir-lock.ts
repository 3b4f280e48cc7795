// One service per data directory: `coffer serve` and `coffer dev` hold `<dataDir>/service.lock` while they run
// (with MongoDB metadata, one per machine: `service-HOST.lock`),
// and a second one on the same directory is refused (CONFLICT) instead of running beside it. The lock file
// names its holder (pid, the process's start time and the machine's boot id); a lock whose holder is gone — a
// kill -9, a crash, a reboot — is stale and taken over at the next start, so a crash never leaves it stuck.
// docs/architecture.md "One service per data directory" has the reasoning.
// Known limit: two starts that find the same stale lock at the same instant; the loser sees the winner's lock
// when it checks what it moved aside, puts it back and is refused, unless a third start raced in between.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, open, readFile, rename, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CofferError, ErrorCode } from './errors.js';

export const LOCK_FILE = 'service.lock';

interface Holder {
  pid: number;
  /** The process's start time in clock ticks since boot (/proc/PID/stat field 22): tells a reused pid apart. */
  started: string;
  boot: string;
  host: string;
  since: string;
}

export interface DataDirLock {
  readonly path: string;
  /** Removes the lock file if it is still this process's. Idempotent. */
  release(): Promise<void>;
}

/** Locks held by this process, counted, so `coffer dev` and the service it starts share one. */
const held = new Map<string, { count: number; content: string }>();

function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return `uptime-${Math.round(Date.now() / 1000 - os.uptime())}`; // no /proc: boot time, to a second or so
  }
}

function startTicks(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) is in parentheses and may hold spaces: count fields after its closing one
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function alive(h: Holder): boolean {
  if (h.host !== os.hostname()) return true; // another machine's process: cannot check, so assume it runs
  if (h.boot !== bootId()) return false; // the machine rebooted since
  const ticks = startTicks(h.pid);
  if (ticks !== null) return ticks === h.started;
  try {
    process.kill(h.pid, 0); // no /proc: only whether the pid exists
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parse(text: string): Holder | null {
  try {
    const h = JSON.parse(text) as Holder;
    return Number.isSafeInteger(h.pid) && typeof h.host === 'string' && typeof h.boot === 'string' ? h : null;
  } catch {
    return null; // cut short by a crash while it was written: nobody holds it
  }
}

async function tryCreate(file: string, content: string): Promise<boolean> {
  let fh;
  try {
    fh = await open(file, 'wx', 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
  try {
    await fh.writeFile(content);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return true;
}

/**
 * The lock of this machine only: with metadata in MongoDB, stateless replicas on several machines share one data
 * directory on a shared filesystem (DESIGN.md "Scale-out"), so only a second service on the same machine is a
 * mistake.
 */
export function perHostLockFile(): string {
  return `service-${os.hostname().replace(/[^A-Za-z0-9.-]/g, '_')}.lock`;
}

/**
 * Takes the data directory's lock (`perHost`: this machine's lock, see perHostLockFile). Throws CONFLICT naming the running holder, or the fs error of the
 * directory (which must exist).
 */
export async function lockDataDir(dataDir: string, options: { perHost?: boolean } = {}): Promise<DataDirLock> {
  const file = path.join(path.resolve(dataDir), options.perHost ? perHostLockFile() : LOCK_FILE);
  const mine = held.get(file);
  if (mine) {
    mine.count++;
    return handle(file);
  }
  const me: Holder = { pid: process.pid, started: startTicks(process.pid) ?? '', boot: bootId(), host: os.hostname(), since: new Date().toISOString() };
  const content = `${JSON.stringify(me)}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    if (await tryCreate(file, content)) {
      held.set(file, { count: 1, content });
      return handle(file);
    }
    const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? null : Promise.reject(e)));
    if (text === null) continue; // released meanwhile
    const holder = parse(text);
    if (holder && alive(holder)) {
      const where = holder.host === os.hostname() ? 'this machine' : `machine ${holder.host} (if it no longer runs there, remove ${file})`;
      throw new CofferError(ErrorCode.CONFLICT, `data directory ${dataDir} is in use by another coffer service (pid ${holder.pid} on ${where}, since ${holder.since}); stop it first or use another --data-dir`);
    }
    // stale: move it aside, then make sure what was moved is what was judged stale
    const aside = `${file}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await rename(file, aside);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw e;
    }
    const moved = await readFile(aside, 'utf8').catch(() => text);
    if (moved !== text) await link(aside, file).catch(() => undefined); // another start took it meanwhile: put it back
    await unlink(aside).catch(() => undefined);
  }
  throw new CofferError(ErrorCode.CONFLICT, `data directory ${dataDir}: another coffer service is starting on it at the same moment`);
}

function handle(file: string): DataDirLock {
  let released = false;
  return {
    path: file,
    async release() {
      if (released) return;
      released = true;
      const mine = held.get(file);
      if (!mine || --mine.count > 0) return;
      held.delete(file);
      const text = await readFile(file, 'utf8').catch(() => null);
      if (text === mine.content) await unlink(file).catch(() => undefined);
    },
  };
}
