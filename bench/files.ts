// `coffer bench files`: a tree of many small files, copied in and out, against restic on the same tree and disk,
// in one run. Each round runs, interleaved: `restic backup` (a fresh repository) and `coffer put -r` (a fresh
// vault directory), then `restic restore` and `coffer get -r` cold, each after the vault's data directory and the
// restic repository (and restic's cache) were flushed and evicted from the page cache (page-cache.ts; which goes
// first alternates by round), then both again warm, right after (left out with `warm: false`), then `coffer get
// -r --fsync` cold (the durable mode left out with `fsyncToo: false`); fresh destinations every time. Medians and
// ranges of files/s and the cold and warm ratios are printed, with whether the eviction verifiably worked. Then a
// re-run of `put -r` and of `get -r` over the complete tree (every file skipped), a listing of the largest
// directory and a walk listing the whole tree, and the peak RSS of client (every run, re-runs included) and
// service. `--no-restic` leaves restic out (a 100,000-file tree: coffer alone).
// Not a test: figures vary with the machine's load; compare only figures from the same run.
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { VaultClient } from '../src/client/vault-client.js';
import { runCliProcess, startServerProcess } from './cli-process.js';
import { benchLarge } from './large.js';
import { cpuAround, median, peakRss, resetPeakRss, watchPeakRss } from './measure.js';
import { describeEvictions, evictFromPageCache, isCold, type Eviction } from './page-cache.js';

export interface FilesBenchOptions {
  files: number;
  fileSize: number;
  rounds: number;
  /** Files per directory of the generated tree. */
  perDir?: number;
  /** `--concurrency` for put -r / get -r (default: the CLI's). */
  concurrency?: number;
  /** Size of the large file measured after the small files (0: skip). */
  largeSize?: number;
  dir?: string;
  keep?: boolean;
  /** Measure restic too (default true; false for trees too large to copy twice in the time allowed). */
  restic?: boolean;
  /** Also time `get -r --fsync` each round (default true): the durable mode beside the default. */
  fsyncToo?: boolean;
  /** Also time restic restore and get -r warm, right after their cold runs (default true). */
  warm?: boolean;
  log?: (line: string) => void;
}

interface Round {
  resticBackup: number | null;
  put: number;
  /** Cold: the restic repository and its cache evicted from the page cache just before. */
  resticRestore: number | null;
  /** Cold: the vault's data directory (chunk store and metadata) evicted just before. */
  get: number;
  /** Warm: again right after the cold runs, nothing evicted; null with `warm` off. */
  resticRestoreWarm: number | null;
  getWarm: number | null;
  /** Whether restic went first (cold and warm) this round: alternates, so neither always follows the other. */
  resticFirst: boolean;
  /** get -r --fsync (every file fsynced before its rename), cold, null with `fsyncToo` off. */
  getFsync: number | null;
  /** CPU seconds of the cold default get -r: the command and coffer serve. */
  getCpu: { client: number; server: number };
  /** get -r with COFFER_BENCH_CLI_B (another tree's client, same service), right after A's; null without. */
  getB: number | null;
  getBCpu: { client: number; server: number } | null;
}

export async function benchFiles(options: FilesBenchOptions): Promise<Record<string, unknown>> {
  const log = options.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const work = await mkdtemp(path.join(options.dir ?? os.tmpdir(), 'coffer-bench-files-'));
  const { files, fileSize } = options;
  const perDir = options.perDir ?? 1000;
  try {
    const tree = path.join(work, 'tree');
    if (files > 0) await makeTree(tree, files, fileSize, perDir);
    log(`files benchmark: ${files} files of ${fileSize} bytes (${perDir} per directory) in ${work}; ${os.cpus().length} CPUs, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    const dataDir = path.join(work, 'server');
    const keyFile = path.join(work, 'bench.key');
    await runOk(['keygen', '--out', keyFile]);
    await mkdir(dataDir, { recursive: true });
    const token = (await runOk(['token', '--data-dir', dataDir, '--user', 'bench', '--admin'])).trim();
    const server = await startServerProcess(['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--gc-interval', '0']);
    const env = { COFFER_SERVER: server.url, COFFER_TOKEN: token, COFFER_KEY_FILE: keyFile, COFFER_STATE_DIR: path.join(work, 'state') };
    const conc = options.concurrency === undefined ? [] : ['--concurrency', String(options.concurrency)];
    const wantRestic = options.restic ?? true;
    const hasRestic = wantRestic && spawnSync('sh', ['-c', 'command -v restic'], { encoding: 'utf8' }).status === 0;
    if (!wantRestic) log('restic: left out (--no-restic) — ratios skipped');
    else if (!hasRestic) log('restic: not installed (apt-get install restic, or .ci/install-restic.sh) — ratios skipped');
    const rounds: Round[] = [];
    const evictions: Eviction[] = [];
    const resticCache = path.join(work, 'restic-cache');
    let putRss = 0;
    let getRss = 0;
    let serverRss = 0;
    // the service's peak during the put -r runs and during the get -r runs, apart (VmHWM reset before each)
    const servePid = (): number => server.child.pid as number;
    const servePeak = { put: 0, get: 0, separate: true };
    const serveDuring = async (phase: 'put' | 'get', fn: () => Promise<number>): Promise<number> => {
      servePeak.separate &&= await resetPeakRss(servePid());
      const t = await fn();
      servePeak[phase] = Math.max(servePeak[phase], (await peakRss(servePid())) ?? 0);
      return t;
    };
    try {
      if (files === 0) {
        // the large part alone (`--files 0`): no tree, no restic over one
        const summary: Record<string, unknown> = { files: 0 };
        if ((options.largeSize ?? 0) > 0) {
          Object.assign(summary, await benchLarge({ size: options.largeSize as number, rounds: options.rounds, work, env, log, serverPid: server.child.pid as number }));
        }
        return summary;
      }
      for (let r = 0; r < options.rounds; r++) {
        const repo = path.join(work, `restic-${r}`);
        const resticBackup = hasRestic ? timeSync(() => restic(repo, ['init'], resticCache) && restic(repo, ['backup', tree], resticCache)) : null;
        let rss = 0;
        const put = await serveDuring('put', () => timeAsync(async () => {
          rss = await runWatched(['put', '-r', tree, `/r${r}`, '--json', ...conc], env);
        }));
        putRss = Math.max(putRss, rss);
        const restoreDir = path.join(work, `restore-${r}`);
        const out = path.join(work, `get-${r}`);
        // cold: the stores each tool reads flushed and dropped from the page cache right before it runs (not
        // the source tree, not the destinations: fresh each time)
        const evict = (): void => {
          evictions.push(evictFromPageCache([dataDir, ...(hasRestic ? [repo, resticCache] : [])]));
        };
        const restore = (dir: string): number | null => (hasRestic ? timeSync(() => restic(repo, ['restore', 'latest', '--target', dir], resticCache)) : null);
        let getCpu = { client: 0, server: 0 };
        const runA = (): Promise<number> => serveDuring('get', () => timeAsync(async () => {
          getCpu = await cpuAround(servePid(), async () => {
            rss = await runWatched(['get', '-r', `/r${r}`, out, '--json', ...conc], env);
          });
        }));
        // A/B of two trees' clients in one run: B's get -r of the same files, against the same service, cold as
        // A's; A goes first in odd rounds, B in even ones
        const cliB = process.env.COFFER_BENCH_CLI_B;
        let getBCpu: { client: number; server: number } | null = null;
        const runB = async (): Promise<number | null> => (cliB ? timeAsync(async () => {
          getBCpu = await cpuAround(servePid(), async () => {
            const res = await runCliProcess(['get', '-r', `/r${r}`, path.join(work, `get-b-${r}`), '--json', ...conc], env, undefined, cliB);
            if (res.code !== 0) throw new Error(`B: get -r failed (${res.code}): ${res.stderr.trim()}`);
          });
        }) : null);
        const bFirst = cliB !== undefined && r % 2 === 1;
        let resticRestore: number | null = null;
        let get = 0;
        let getB: number | null = null;
        const cofferCold = async (): Promise<void> => {
          if (bFirst) {
            evict();
            getB = await runB();
          }
          evict();
          get = await runA();
          getRss = Math.max(getRss, rss);
          if (cliB && !bFirst) {
            evict();
            getB = await runB();
          }
        };
        const resticCold = (): void => {
          if (!hasRestic) return;
          evict();
          resticRestore = restore(restoreDir);
        };
        // which tool goes first alternates by round: the second may find the disk or the machine in another state
        const resticFirst = r % 2 === 0;
        if (resticFirst) resticCold();
        await cofferCold();
        if (!resticFirst) resticCold();
        // warm: again at once, each tool's store still in the page cache from its cold run; a sync before each, as
        // before the cold runs, so that neither is slowed by writing back what the run before it left dirty
        let resticRestoreWarm: number | null = null;
        let getWarm: number | null = null;
        const warmRestore = path.join(work, `restore-warm-${r}`);
        const warmOut = path.join(work, `get-warm-${r}`);
        if (options.warm !== false) {
          const resticWarm = (): void => {
            spawnSync('sync', { stdio: 'ignore' });
            resticRestoreWarm = restore(warmRestore);
          };
          if (resticFirst) resticWarm();
          spawnSync('sync', { stdio: 'ignore' });
          getWarm = await serveDuring('get', () => timeAsync(async () => {
            rss = await runWatched(['get', '-r', `/r${r}`, warmOut, '--json', ...conc], env);
          }));
          getRss = Math.max(getRss, rss);
          if (!resticFirst) resticWarm();
        }
        const outFsync = path.join(work, `get-fsync-${r}`);
        if (options.fsyncToo !== false) evict();
        const getFsync = options.fsyncToo === false ? null : await serveDuring('get', () => timeAsync(async () => {
          rss = await runWatched(['get', '-r', `/r${r}`, outFsync, '--fsync', '--json', ...conc], env);
        }));
        getRss = Math.max(getRss, rss);
        const round: Round = { resticBackup, put, resticRestore, get, resticRestoreWarm, getWarm, resticFirst, getFsync, getCpu, getB, getBCpu };
        rounds.push(round);
        log(`round ${r + 1}: ${fmtRound(round, files)}`);
        // every round's copies stay until the run ends (the scratch directory goes then): an ext4 without a journal
        // (this machine's) skips each inode freed in the last 60 s — 300 s while its inode table block is dirty,
        // and the next round's writes dirty it again — on every file it creates (recently_deleted(), seen with
        // perf), so deleting a round's 60,000 files between rounds slowed the next round's first get -r 2× (its
        // client's CPU 3×) even 61 s later; 10,000 files × 16 KiB × 6 copies a round is ≈ 1 GB of disk
      }
      let rss = 0;
      const rerunPut = await serveDuring('put', () => timeAsync(async () => {
        rss = await runWatched(['put', '-r', tree, '/r0', '--json', ...conc], env);
      }));
      putRss = Math.max(putRss, rss);
      const rerunGet = await serveDuring('get', () => timeAsync(async () => {
        rss = await runWatched(['get', '-r', '/r0', path.join(work, 'get-0'), '--json', ...conc], env);
      }));
      getRss = Math.max(getRss, rss);
      const listing = await timeAsync(async () => {
        await runOk(['ls', '/r0/d00000', '--json'], env);
      });
      let treeEntries = 0;
      const treeListing = await timeAsync(async () => {
        treeEntries = await listTree(server.url, token, '/r0');
      });
      // the peak since the last reset, so the whole run's is the largest of the phases' and this
      serverRss = Math.max((await peakRss(server.child.pid as number)) ?? 0, servePeak.put, servePeak.get);
      const rate = (secs: number[]): number[] => secs.map((s) => files / s);
      const put = rate(rounds.map((x) => x.put));
      const get = rate(rounds.map((x) => x.get));
      const getFsync = rounds.every((x) => x.getFsync !== null) ? rate(rounds.map((x) => x.getFsync as number)) : null;
      const warm = rounds.every((x) => x.getWarm !== null);
      const getWarm = warm ? rate(rounds.map((x) => x.getWarm as number)) : null;
      const cache = describeEvictions(evictions);
      const cold = evictions.length > 0 && evictions.every(isCold);
      const summary: Record<string, unknown> = {
        files, fileSize, rounds: rounds.length, putFilesPerSecond: median(put), getFilesPerSecond: median(get),
        rerunPutSeconds: rerunPut, rerunGetSeconds: rerunGet, listSeconds: listing, listedEntries: Math.min(perDir, files),
        treeListSeconds: treeListing, treeEntries,
        peakRss: { put: putRss, get: getRss, serve: serverRss, serveDuringPut: servePeak.separate ? servePeak.put : null, serveDuringGet: servePeak.separate ? servePeak.get : null },
        ...(getFsync ? { getFsyncFilesPerSecond: median(getFsync) } : {}),
        ...(getWarm ? { getWarmFilesPerSecond: median(getWarm) } : {}),
        pageCache: { evictions: evictions.length, cold, line: cache },
      };
      log(cache);
      log(`coffer put -r: ${range(put)} files/s; coffer get -r: ${range(get)} files/s cold${getWarm ? `, ${range(getWarm)} warm` : ''} (default: no fsync per file)${getFsync ? `; coffer get -r --fsync: ${range(getFsync)} files/s cold` : ''}`);
      if (hasRestic) {
        const putVs = rounds.map((x) => (x.resticBackup as number) / x.put);
        const getVs = rounds.map((x) => (x.resticRestore as number) / x.get);
        const restoreWarm = warm ? rate(rounds.map((x) => x.resticRestoreWarm as number)) : null;
        const getWarmVs = warm ? rounds.map((x) => (x.resticRestoreWarm as number) / (x.getWarm as number)) : null;
        Object.assign(summary, {
          putVsResticBackup: median(putVs), getVsResticRestore: median(getVs), resticBackupFilesPerSecond: median(rate(rounds.map((x) => x.resticBackup as number))),
          resticRestoreFilesPerSecond: median(rate(rounds.map((x) => x.resticRestore as number))),
          ...(restoreWarm && getWarmVs ? { resticRestoreWarmFilesPerSecond: median(restoreWarm), getWarmVsResticRestoreWarm: median(getWarmVs) } : {}),
        });
        log(`restic backup: ${range(rate(rounds.map((x) => x.resticBackup as number)))} files/s; restic restore: ${range(rate(rounds.map((x) => x.resticRestore as number)))} files/s cold${restoreWarm ? `, ${range(restoreWarm)} warm` : ''}`);
        const each = (vs: number[]): string => `[${vs.map((v) => v.toFixed(2)).join(', ')}]`;
        const coldLabel = cold ? 'cold' : 'cold (NOT verified cold, see page cache above)';
        log(`ratios (median of ${rounds.length}, per round in brackets): put -r ${median(putVs).toFixed(2)}× restic backup ${each(putVs)} (target ≥ 1.0); get -r ${median(getVs).toFixed(2)}× restic restore ${coldLabel} ${each(getVs)} (target ≥ 1.0)${getWarmVs ? `, ${median(getWarmVs).toFixed(2)}× warm ${each(getWarmVs)}` : ''}`);
        if (getFsync) {
          const fsyncVs = rounds.map((x) => (x.resticRestore as number) / (x.getFsync as number));
          summary.getFsyncVsResticRestore = median(fsyncVs);
          log(`get -r --fsync ${median(fsyncVs).toFixed(2)}× restic restore [${fsyncVs.map((v) => v.toFixed(2)).join(', ')}] (both cold; durable mode; restic restore fsyncs nothing)`);
        }
      }
      const per1000 = (c: { client: number; server: number }): string => `${((c.client * 1000) / files).toFixed(2)} + ${((c.server * 1000) / files).toFixed(2)}`;
      log(`get -r CPU seconds per 1000 files (client + service), per round: ${rounds.map((x) => per1000(x.getCpu)).join('; ')}`);
      summary.getCpuPer1000Files = rounds.map((x) => ({ client: (x.getCpu.client * 1000) / files, service: (x.getCpu.server * 1000) / files }));
      if (rounds.every((x) => x.getB !== null)) {
        const bVsA = rounds.map((x) => x.get / (x.getB as number));
        summary.getBFilesPerSecond = median(rate(rounds.map((x) => x.getB as number)));
        summary.getBOverA = median(bVsA);
        log(`get -r B (${process.env.COFFER_BENCH_CLI_B}): ${range(rate(rounds.map((x) => x.getB as number)))} files/s; B/A files/s ${median(bVsA).toFixed(2)} [${bVsA.map((v) => v.toFixed(2)).join(', ')}]${hasRestic ? `; B ÷ restic restore [${rounds.map((x) => ((x.resticRestore as number) / (x.getB as number)).toFixed(2)).join(', ')}]` : ''}; CPU per 1000 files ${rounds.map((x) => per1000(x.getBCpu as { client: number; server: number })).join('; ')}`);
      }
      log(`re-run over the complete tree (every file skipped): put -r ${rerunPut.toFixed(2)} s, get -r ${rerunGet.toFixed(2)} s; ls of a ${Math.min(perDir, files)}-entry directory ${listing.toFixed(2)} s (CLI start included); listing the whole tree (${treeEntries} entries, page by page, in-process) ${treeListing.toFixed(2)} s`);
      log(`peak RSS: put -r ${mib(putRss)}, get -r ${mib(getRss)}, coffer serve ${mib(serverRss)} (${servePeak.separate ? `during put -r ${mib(servePeak.put)}, during get -r ${mib(servePeak.get)}` : 'its peak could not be reset: not apart for put and get'})`);
      log('note: coffer serve fsyncs every pack it commits; get -r fsyncs nothing by default (as restic restore, rsync, cp: each file still appears whole, by rename) and every file with --fsync; restic fsyncs its pack files on backup and nothing on restore.');
      if ((options.largeSize ?? 0) > 0) {
        Object.assign(summary, await benchLarge({ size: options.largeSize as number, rounds: options.rounds, work, env, log, serverPid: server.child.pid as number }));
      }
      return summary;
    } finally {
      await server.stop();
    }
  } finally {
    if (!options.keep) await rm(work, { recursive: true, force: true });
  }
}

/** Lists every directory under `root` page by page, as get -r does; returns the number of entries. */
async function listTree(server: string, token: string, root: string): Promise<number> {
  const client = new VaultClient({ server, token });
  let n = 0;
  const walk = async (dir: string): Promise<void> => {
    for await (const e of client.listAll(dir)) {
      n++;
      if (e.type === 'dir') await walk(e.path);
    }
  };
  try {
    await walk(root);
  } finally {
    client.http.close();
  }
  return n;
}

async function makeTree(root: string, files: number, size: number, perDir: number): Promise<void> {
  const buf = Buffer.allocUnsafe(size);
  for (let i = 0; i < files; i++) {
    const dir = path.join(root, `d${String(Math.floor(i / perDir)).padStart(5, '0')}`);
    if (i % perDir === 0) await mkdir(dir, { recursive: true });
    randomFillSync(buf);
    await writeFile(path.join(dir, `f${String(i).padStart(7, '0')}.bin`), buf);
  }
}

/** Runs restic on `repo` with its local cache in `cacheDir` (in the scratch directory: evicted with the repository, removed with it). */
function restic(repo: string, args: string[], cacheDir: string): true {
  const env = { ...process.env, RESTIC_PASSWORD: 'coffer-bench', RESTIC_REPOSITORY: repo };
  const r = spawnSync('restic', ['--quiet', '--cache-dir', cacheDir, ...args], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`restic ${args[0]} failed: ${r.stderr}`);
  return true;
}

function timeSync(fn: () => unknown): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function timeAsync(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function fmtRound(r: Round, files: number): string {
  const f = (s: number | null): string => (s === null ? 'n/a' : `${(files / s).toFixed(0)} files/s (${s.toFixed(2)} s)`);
  const warm = r.getWarm === null ? '' : `; warm: restic restore ${f(r.resticRestoreWarm)}, coffer get -r ${f(r.getWarm)}`;
  return `restic backup ${f(r.resticBackup)}, coffer put -r ${f(r.put)}; cold (${r.resticFirst ? 'restic' : 'coffer'} first): restic restore ${f(r.resticRestore)}, coffer get -r ${f(r.get)}${r.getB === null ? '' : `, get -r B ${f(r.getB)}`}${warm}`;
}

function range(xs: number[]): string {
  return `${median(xs).toFixed(0)} (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`;
}

function mib(n: number): string {
  return `${(n / 2 ** 20).toFixed(0)} MiB`;
}

async function runOk(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await runCliProcess(args, env);
  if (r.code !== 0) throw new Error(`coffer ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

async function runWatched(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let watcher: { stop(): Promise<number> } | undefined;
  const r = await runCliProcess(args, env, (child) => {
    watcher = watchPeakRss(child.pid as number, 20);
  });
  const peak = (await watcher?.stop()) ?? 0;
  if (r.code !== 0) throw new Error(`coffer ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return peak;
}

