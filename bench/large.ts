// The large-file half of `coffer bench files`: one random file, `rounds` interleaved rounds of `coffer put`,
// `restic backup` (fresh repository), `age` encrypt, `coffer get`, `age` decrypt, all on the same disk, the page
// cache dropped before each (when this process may: root), medians and the ratios the targets name; CPU seconds
// per GiB of client and service for each step, peak RSS of the coffer commands and of the service. Reference rows,
// not targets: `age` encrypt and decrypt each followed by `sync FILE` (the durable comparison: coffer fsyncs).
// COFFER_BENCH_CLI_B adds put/get with another tree's CLI; with COFFER_BENCH_SERVE_B=1 those go to that tree's own
// `coffer serve` (a service A/B), otherwise to the same service (a client A/B).
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import path from 'node:path';
import { runCliProcess, startServerProcess } from './cli-process.js';
import { cpuAround, cpuSecondsUsed, peakRss, watchPeakRss } from './measure.js';

export interface LargeBenchOptions {
  size: number;
  rounds: number;
  work: string;
  env: NodeJS.ProcessEnv;
  log: (line: string) => void;
  /** `coffer serve`'s process: its CPU per step and peak RSS are reported. */
  serverPid: number;
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

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): void {
  const r = spawnSync(cmd, args, { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args[0]} failed: ${r.stderr}`);
}

/** What one step cost: wall seconds, CPU seconds of the client (the command) and of the service, peak RSS. */
interface Step {
  secs: number;
  client: number;
  server: number;
  /** Peak RSS of the client (coffer runs only; 0 for restic and age, run synchronously). */
  rss: number;
}

async function coffer(args: string[], env: NodeJS.ProcessEnv, serverPid: number, cli?: string): Promise<Step> {
  dropCaches();
  let watcher: { stop(): Promise<number> } | undefined;
  let code = 0;
  let stderr = '';
  const t0 = process.hrtime.bigint();
  const cpu = await cpuAround(serverPid, async () => {
    ({ code, stderr } = await runCliProcess(args, env, (child) => {
      watcher = watchPeakRss(child.pid as number, 20);
    }, cli));
  });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const rss = (await watcher?.stop()) ?? 0;
  if (code !== 0) throw new Error(`coffer ${args.join(' ')} failed: ${stderr}`);
  return { secs, ...cpu, rss };
}

/** `sync FILE` (fsync of that file only) right after a step that wrote it, added to the step: the durable figure. */
async function thenSync(step: Step, file: string): Promise<Step> {
  const c0 = await cpuSecondsUsed('children');
  const t0 = process.hrtime.bigint();
  run('sync', [file]);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  return { ...step, secs: step.secs + secs, client: step.client + (await cpuSecondsUsed('children')) - c0 };
}

/** B's own `coffer serve` (COFFER_BENCH_SERVE_B=1): a fresh data dir, an admin token, the same key file. */
async function startServiceB(cli: string, work: string, env: NodeJS.ProcessEnv): Promise<{ env: NodeJS.ProcessEnv; pid: number; stop(): Promise<void> }> {
  const dataDir = path.join(work, 'server-b');
  await mkdir(dataDir, { recursive: true });
  const token = await runCliProcess(['token', '--data-dir', dataDir, '--user', 'bench', '--admin'], {}, undefined, cli);
  if (token.code !== 0) throw new Error(`coffer token (B) failed: ${token.stderr}`);
  const server = await startServerProcess(['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--gc-interval', '0'], {}, cli);
  const envB = { ...env, COFFER_SERVER: server.url, COFFER_TOKEN: token.stdout.trim(), COFFER_STATE_DIR: path.join(work, 'state-b') };
  return { env: envB, pid: server.child.pid as number, stop: () => server.stop() };
}

/** restic or age, synchronously: its CPU is this process's reaped children's. */
async function other(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Step> {
  const c0 = await cpuSecondsUsed('children');
  const secs = timed(() => run(cmd, args, env));
  return { secs, client: (await cpuSecondsUsed('children')) - c0, server: 0, rss: 0 };
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
  const cliB = process.env.COFFER_BENCH_CLI_B;
  const serviceB = cliB && process.env.COFFER_BENCH_SERVE_B === '1' ? await startServiceB(cliB, o.work, o.env) : null;
  try {
    return await rounds(o, source, restic, age, cliB, serviceB);
  } finally {
    await serviceB?.stop();
    await rm(source, { force: true });
  }
}

async function rounds(o: LargeBenchOptions, source: string, restic: boolean, age: boolean, cliB: string | undefined, serviceB: { env: NodeJS.ProcessEnv; pid: number } | null): Promise<Record<string, unknown>> {
  const dropped = dropCaches();
  const againstB = serviceB ? 'against its own coffer serve' : 'against the same service';
  o.log(`large file: ${(o.size / 2 ** 20).toFixed(0)} MiB, ${o.rounds} interleaved rounds; page cache ${dropped ? 'dropped before each step' : 'NOT dropped (needs root)'}${restic ? '' : '; restic not installed'}${age ? '' : '; age not installed (apt-get install age)'}${cliB ? `; B = ${cliB} (put B, get B ${againstB})` : ''}`);
  const envB = serviceB?.env ?? o.env;
  const pidB = serviceB?.pid ?? o.serverPid;
  let recipient = '';
  const ageKey = path.join(o.work, 'age.key');
  if (age) {
    run('age-keygen', ['-o', ageKey]);
    recipient = spawnSync('age-keygen', ['-y', ageKey], { encoding: 'utf8' }).stdout.trim();
  }
  const gib = o.size / 2 ** 30;
  const rows: Array<Record<string, Step | null>> = [];
  for (let r = 0; r < o.rounds; r++) {
    const put = await coffer(['put', source, `/large-${r}.bin`], o.env, o.serverPid);
    const putB = cliB ? await coffer(['put', source, `/large-${r}-b.bin`], envB, pidB, cliB) : null;
    const repo = path.join(o.work, `restic-large-${r}`);
    const renv = { ...process.env, RESTIC_PASSWORD: 'coffer-bench', RESTIC_REPOSITORY: repo };
    if (restic) run('restic', ['--quiet', 'init'], renv);
    const resticBackup = restic ? await other('restic', ['--quiet', 'backup', source], renv) : null;
    const sealed = path.join(o.work, 'large.age');
    const ageEncrypt = age ? await other('age', ['-r', recipient, '-o', sealed, source]) : null;
    const ageEncryptSync = ageEncrypt ? await thenSync(ageEncrypt, sealed) : null;
    const out = path.join(o.work, 'large.out');
    const get = await coffer(['get', `/large-${r}.bin`, out, '--force'], o.env, o.serverPid);
    const getB = cliB ? await coffer(['get', `/large-${r}-b.bin`, out, '--force'], envB, pidB, cliB) : null;
    const ageOut = path.join(o.work, 'large.age.out');
    const ageDecrypt = age ? await other('age', ['-d', '-i', ageKey, '-o', ageOut, sealed]) : null;
    const ageDecryptSync = ageDecrypt ? await thenSync(ageDecrypt, ageOut) : null;
    await Promise.all([repo, sealed, out, ageOut].map((p) => rm(p, { recursive: true, force: true })));
    const row: Record<string, Step | null> = { put, ...(cliB ? { putB } : {}), resticBackup, ageEncrypt, ageEncryptSync, get, ...(cliB ? { getB } : {}), ageDecrypt, ageDecryptSync };
    const fmt = (name: string, s: Step | null): string => (s === null ? `${name} n/a`
      : `${name} ${(o.size / s.secs / 1e6).toFixed(0)} MB/s (CPU s/GiB: ${(s.client / gib).toFixed(2)}${s.server || name.startsWith('coffer') ? ` client, ${(s.server / gib).toFixed(2)} service` : ''}${s.rss ? `; RSS ${(s.rss / 2 ** 20).toFixed(0)} MiB` : ''})`);
    const names: Record<string, string> = { put: 'coffer put', putB: 'coffer put B', resticBackup: 'restic backup', ageEncrypt: 'age encrypt', ageEncryptSync: 'age encrypt + sync (reference)', get: 'coffer get', getB: 'coffer get B', ageDecrypt: 'age decrypt', ageDecryptSync: 'age decrypt + sync (reference)' };
    o.log(`round ${r + 1}: ${Object.entries(row).map(([k, v]) => fmt(names[k] as string, v)).join(', ')}`);
    rows.push(row);
  }
  const med = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    const m = Math.floor(s.length / 2);
    return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
  };
  const ratio = (num: string, den: string): number | null =>
    rows.every((x) => x[num] && x[den]) ? med(rows.map((x) => (x[den] as Step).secs / (x[num] as Step).secs)) : null;
  const perGib = (k: string, f: 'client' | 'server'): number | null => (rows.every((x) => x[k]) ? med(rows.map((x) => (x[k] as Step)[f])) / gib : null);
  const serverRss = (await peakRss(o.serverPid)) ?? 0;
  const summary = {
    largeSize: o.size,
    putMBps: o.size / med(rows.map((x) => (x.put as Step).secs)) / 1e6,
    getMBps: o.size / med(rows.map((x) => (x.get as Step).secs)) / 1e6,
    putVsResticBackup: ratio('put', 'resticBackup'),
    putVsAgeEncrypt: ratio('put', 'ageEncrypt'),
    getVsAgeDecrypt: ratio('get', 'ageDecrypt'),
    // references, not targets: age with its output fsynced, as coffer's is
    putVsAgeEncryptSync: ratio('put', 'ageEncryptSync'),
    getVsAgeDecryptSync: ratio('get', 'ageDecryptSync'),
    cpuSecondsPerGiB: Object.fromEntries(Object.keys(rows[0] ?? {}).map((k) => [k, { client: perGib(k, 'client'), service: perGib(k, 'server') }])),
    largePeakRss: { put: Math.max(...rows.map((x) => (x.put as Step).rss)), get: Math.max(...rows.map((x) => (x.get as Step).rss)), serve: serverRss },
  };
  const f = (v: number | null): string => (v === null ? 'n/a' : `${v.toFixed(2)}×`);
  o.log(`large-file ratios (medians of ${o.rounds}): coffer put ${f(summary.putVsResticBackup)} restic backup (target ≥ 2), ${f(summary.putVsAgeEncrypt)} age (target ≥ 1.0); coffer get ${f(summary.getVsAgeDecrypt)} age decrypt (target ≥ 1.4); put ${summary.putMBps.toFixed(0)} MB/s, get ${summary.getMBps.toFixed(0)} MB/s`);
  o.log(`reference, not a target (age's output fsynced by \`sync FILE\`, as coffer fsyncs): coffer put ${f(summary.putVsAgeEncryptSync)} age encrypt + sync, coffer get ${f(summary.getVsAgeDecryptSync)} age decrypt + sync`);
  if (cliB) o.log(`B/A wall time (medians): put ${f(ratio('putB', 'put'))}, get ${f(ratio('getB', 'get'))} (above 1: B faster)`);
  o.log(`CPU seconds per GiB (medians; client = the command, service = coffer serve): ${Object.entries(summary.cpuSecondsPerGiB).map(([k, v]) => `${k} ${v.client?.toFixed(2) ?? 'n/a'}${k.startsWith('put') || k.startsWith('get') ? ` + ${v.service?.toFixed(2) ?? 'n/a'}` : ''}`).join(', ')}; peak RSS put ${(summary.largePeakRss.put / 2 ** 20).toFixed(0)} MiB, get ${(summary.largePeakRss.get / 2 ** 20).toFixed(0)} MiB, coffer serve ${(serverRss / 2 ** 20).toFixed(0)} MiB`);
  o.log('note: coffer put/get fsync what they write (service: chunks; get: the file); age and restic restore do not fsync their output.');
  return summary;
}
