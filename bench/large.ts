// The large-file half of `coffer bench files`: one random file, `rounds` interleaved rounds of `coffer put`,
// `restic backup` (fresh repository), `age` encrypt, `coffer get`, `age` decrypt, all on the same disk, the page
// cache dropped before each (when this process may: root), medians and the ratios the targets name.
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import path from 'node:path';
import { runCliProcess } from './cli-process.js';

export interface LargeBenchOptions {
  size: number;
  rounds: number;
  work: string;
  env: NodeJS.ProcessEnv;
  log: (line: string) => void;
}

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** Drops the page cache (so reads come from the disk); false when not permitted. */
function dropCaches(): boolean {
  spawnSync('sync');
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '3');
    return true;
  } catch {
    return false;
  }
}

function timed(fn: () => void): number {
  dropCaches();
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function timedAsync(fn: () => Promise<void>): Promise<number> {
  dropCaches();
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): void {
  const r = spawnSync(cmd, args, { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args[0]} failed: ${r.stderr}`);
}

async function coffer(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const r = await runCliProcess(args, env);
  if (r.code !== 0) throw new Error(`coffer ${args.join(' ')} failed: ${r.stderr}`);
}

export async function benchLarge(o: LargeBenchOptions): Promise<Record<string, unknown>> {
  const source = path.join(o.work, 'large.bin');
  const fh = await open(source, 'w');
  const buf = Buffer.allocUnsafe(8 * 1024 * 1024);
  for (let off = 0; off < o.size; off += buf.length) {
    randomFillSync(buf);
    await fh.write(buf, 0, Math.min(buf.length, o.size - off));
  }
  await fh.sync();
  await fh.close();
  const restic = has('restic');
  const age = has('age') && has('age-keygen');
  const dropped = dropCaches();
  o.log(`large file: ${(o.size / 2 ** 20).toFixed(0)} MiB, ${o.rounds} interleaved rounds; page cache ${dropped ? 'dropped before each step' : 'NOT dropped (needs root)'}${restic ? '' : '; restic not installed'}${age ? '' : '; age not installed (apt-get install age)'}`);
  let recipient = '';
  const ageKey = path.join(o.work, 'age.key');
  if (age) {
    run('age-keygen', ['-o', ageKey]);
    recipient = spawnSync('age-keygen', ['-y', ageKey], { encoding: 'utf8' }).stdout.trim();
  }
  const rows: Array<Record<string, number | null>> = [];
  for (let r = 0; r < o.rounds; r++) {
    const put = await timedAsync(() => coffer(['put', source, `/large-${r}.bin`], o.env));
    const repo = path.join(o.work, `restic-large-${r}`);
    const renv = { ...process.env, RESTIC_PASSWORD: 'coffer-bench', RESTIC_REPOSITORY: repo };
    if (restic) run('restic', ['--quiet', 'init'], renv);
    const resticBackup = restic ? timed(() => run('restic', ['--quiet', 'backup', source], renv)) : null;
    const sealed = path.join(o.work, 'large.age');
    const ageEncrypt = age ? timed(() => run('age', ['-r', recipient, '-o', sealed, source])) : null;
    const out = path.join(o.work, 'large.out');
    const get = await timedAsync(() => coffer(['get', `/large-${r}.bin`, out, '--force'], o.env));
    const ageOut = path.join(o.work, 'large.age.out');
    const ageDecrypt = age ? timed(() => run('age', ['-d', '-i', ageKey, '-o', ageOut, sealed])) : null;
    await Promise.all([repo, sealed, out, ageOut].map((p) => rm(p, { recursive: true, force: true })));
    const mbs = (s: number | null): string => (s === null ? 'n/a' : `${(o.size / s / 1e6).toFixed(0)} MB/s`);
    o.log(`round ${r + 1}: coffer put ${mbs(put)}, restic backup ${mbs(resticBackup)}, age encrypt ${mbs(ageEncrypt)}, coffer get ${mbs(get)}, age decrypt ${mbs(ageDecrypt)}`);
    rows.push({ put, resticBackup, ageEncrypt, get, ageDecrypt });
  }
  const med = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    const m = Math.floor(s.length / 2);
    return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
  };
  const ratio = (num: string, den: string): number | null =>
    rows.every((x) => x[num] !== null && x[den] !== null) ? med(rows.map((x) => (x[den] as number) / (x[num] as number))) : null;
  const summary = {
    largeSize: o.size,
    putMBps: o.size / med(rows.map((x) => x.put as number)) / 1e6,
    getMBps: o.size / med(rows.map((x) => x.get as number)) / 1e6,
    putVsResticBackup: ratio('put', 'resticBackup'),
    putVsAgeEncrypt: ratio('put', 'ageEncrypt'),
    getVsAgeDecrypt: ratio('get', 'ageDecrypt'),
  };
  const f = (v: number | null): string => (v === null ? 'n/a' : `${v.toFixed(2)}×`);
  o.log(`large-file ratios (medians of ${o.rounds}): coffer put ${f(summary.putVsResticBackup)} restic backup (target ≥ 2), ${f(summary.putVsAgeEncrypt)} age (target ≥ 1.0); coffer get ${f(summary.getVsAgeDecrypt)} age decrypt (target ≥ 1.4); put ${summary.putMBps.toFixed(0)} MB/s, get ${summary.getMBps.toFixed(0)} MB/s`);
  o.log('note: coffer put/get fsync what they write (service: chunks; get: the file); age and restic restore do not fsync their output.');
  await rm(source, { force: true });
  return summary;
}
