// `coffer bench s3`: the AWS CLI (and rclone) copying one file up and down through Coffer's S3 endpoint
// (the enclave's S3 listener as `npm start` runs it — enclave and host proxy as processes: sealed on the way in,
// opened and authenticated on the way out, https with the attested certificate pinned) against the same client on
// moto's S3 server (plain, unencrypted, not attested; PyPI moto[server]) in the same run. Every download is SHA-256
// checked. Figures, never pass/fail. `--concurrent N` runs s3-concurrent.ts instead.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { cpuSecondsUsed, median, peakRss } from './measure.js';
import { AWS_CLI, StalledCommand, awsEnv, motoPython, rcloneEnv, run, sha256File, startCofferS3, startMoto, timed as timedRun, writeRandomFile, type S3Target } from './s3-env.js';

export interface S3BenchOptions {
  size: number;
  /** Python with moto[server] (default: test/servers/moto-venv if present, else python3). */
  python?: string;
  clients?: Array<'aws' | 'rclone'>;
  /** Interleaved rounds (each: every client up and down against Coffer, then moto); medians reported. Default 1. */
  rounds?: number;
  log?: (line: string) => void;
  /**
   * A client command still running after this many seconds is killed and its round dropped (default: 300 s, or the
   * time the transfer takes at 2 MB/s if longer). moto's server stalls now and then (docs/s3-api.md "Benchmarks").
   */
  stallSeconds?: number;
}

/** Medians over the rounds (seconds, MB/s); `enclaveCpuUpS`/`enclaveCpuDownS`: the S3 listener's CPU seconds (Coffer only). */
export interface S3BenchRow {
  client: string; server: string; upMBs: number; downMBs: number; upS: number; downS: number; rounds: number;
  enclaveCpuUpS?: number; enclaveCpuDownS?: number;
}

const MB = 1e6;

/** One upload then one download; `around` measures each (the enclave's CPU seconds for Coffer). */
async function upDown(
  client: 'aws' | 'rclone', work: string, s: S3Target, src: string, back: string, round: number, around: (fn: () => Promise<number>) => Promise<number>,
  boundMs: number,
): Promise<{ upS: number; downS: number }> {
  const bucket = `bench-${client}-${round}`;
  const timed = (fn: () => Promise<void>): Promise<number> => around(() => timedRun(fn));
  if (client === 'aws') {
    const env = awsEnv(work, s);
    const aws = (args: string[]): Promise<void> => run(AWS_CLI, ['--endpoint-url', s.url, ...args], env, boundMs);
    await aws(['s3', 'mb', `s3://${bucket}`]);
    const upS = await timed(() => aws(['s3', 'cp', '--no-progress', src, `s3://${bucket}/f.bin`]));
    const downS = await timed(() => aws(['s3', 'cp', '--no-progress', `s3://${bucket}/f.bin`, back]));
    return { upS, downS };
  }
  const { env, flags } = rcloneEnv(work, s);
  await run('rclone', [...flags, 'mkdir', `b:${bucket}`], env, boundMs);
  const upS = await timed(() => run('rclone', [...flags, 'copyto', src, `b:${bucket}/f.bin`], env, boundMs));
  const downS = await timed(() => run('rclone', [...flags, 'copyto', `b:${bucket}/f.bin`, back], env, boundMs));
  return { upS, downS };
}

export async function benchS3(options: S3BenchOptions): Promise<S3BenchRow[]> {
  const log = options.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const clients = options.clients ?? ['aws', 'rclone'];
  const work = await mkdtemp(path.join(os.tmpdir(), 'coffer-bench-s3-'));
  const stops: Array<() => Promise<void>> = [];
  try {
    const src = path.join(work, 'src.bin');
    const srcSha = await writeRandomFile(src, options.size);
    const coffer = await startCofferS3(work);
    stops.push(coffer.stop);
    const moto = await startMoto(options.python ?? motoPython());
    stops.push(moto.stop);

    const rounds = Math.max(1, options.rounds ?? 1);
    const samples = new Map<string, { upS: number[]; downS: number[]; cpuUp: number[]; cpuDown: number[] }>();
    const storagePid = process.pid;
    const rssAtStart = { s3: (await peakRss(coffer.s3Pid)) ?? 0, storage: (await peakRss(storagePid)) ?? 0 };
    const boundMs = 1000 * (options.stallSeconds ?? Math.max(300, options.size / (2 * MB)));
    let completed = 0;
    // interleaved: every round runs each client against Coffer then moto, so a slow spell of the machine hits both.
    // A round's figures count only once the whole round is done: a stalled transfer (killed at boundMs) drops its
    // round and ends the run with the rounds before it, so every median compares the same rounds.
    rounds: for (let round = 1; round <= rounds; round++) {
      const roundSamples: Array<{ key: string; upS: number; downS: number; cpu: number[] }> = [];
      for (const client of clients) {
        for (const s of [coffer.target, moto.target]) {
          const back = path.join(work, `back-${client}-${s.name}.bin`);
          const cpu: number[] = [];
          // the storage service and KMS run in this process; the host proxy carries every byte twice
          const others: Array<{ storage: number; proxy: number }> = [];
          const around = async (fn: () => Promise<number>): Promise<number> => {
            if (s !== coffer.target) return fn();
            const proxyCpu = (): Promise<number> => (coffer.proxyPid === null ? Promise.resolve(0) : cpuSecondsUsed(coffer.proxyPid));
            const before = await cpuSecondsUsed(coffer.s3Pid);
            const [storage0, proxy0] = [await cpuSecondsUsed(storagePid), await proxyCpu()];
            const t = await fn();
            cpu.push((await cpuSecondsUsed(coffer.s3Pid)) - before);
            others.push({ storage: (await cpuSecondsUsed(storagePid)) - storage0, proxy: (await proxyCpu()) - proxy0 });
            return t;
          };
          let upS: number;
          let downS: number;
          try {
            ({ upS, downS } = await upDown(client, work, s, src, back, round, around, boundMs));
          } catch (e) {
            if (!(e instanceof StalledCommand)) throw e;
            log(`round ${round}  ${client} ${s.name}: ${e.message} — this round is dropped and the run ends here${s === moto.target ? ' (moto\'s server stalls now and then)' : ''}`);
            break rounds;
          }
          if ((await sha256File(back)) !== srcSha) throw new Error(`${client} against ${s.name}: the downloaded file differs`);
          await rm(back);
          roundSamples.push({ key: `${client}/${s.name}`, upS, downS, cpu });
          const o = (i: number): string => `${(others[i] as { storage: number }).storage.toFixed(1)}/${(others[i] as { proxy: number }).proxy.toFixed(1)}`;
          const cpuText = cpu.length === 2 ? `   enclave CPU up ${(cpu[0] as number).toFixed(1)} s, down ${(cpu[1] as number).toFixed(1)} s (storage+KMS/proxy CPU up ${o(0)} s, down ${o(1)} s)` : '';
          log(`${rounds > 1 ? `round ${round}  ` : ''}${client.padEnd(6)} ${s.name.padEnd(6)} up ${(options.size / MB / upS).toFixed(1).padStart(7)} MB/s (${upS.toFixed(1)} s)   down ${(options.size / MB / downS).toFixed(1).padStart(7)} MB/s (${downS.toFixed(1)} s)   sha256 ok${cpuText}`);
        }
      }
      for (const r of roundSamples) {
        const got = samples.get(r.key) ?? { upS: [], downS: [], cpuUp: [], cpuDown: [] };
        samples.set(r.key, got);
        got.upS.push(r.upS);
        got.downS.push(r.downS);
        if (r.cpu.length === 2) {
          got.cpuUp.push(r.cpu[0] as number);
          got.cpuDown.push(r.cpu[1] as number);
        }
      }
      completed++;
    }
    if (completed === 0) throw new Error(`no round of bench s3 completed: a transfer ran past ${boundMs / 1000} s (see above)`);
    if (completed < rounds) log(`${completed} of ${rounds} rounds completed; the figures below are theirs`);
    const rows: S3BenchRow[] = [];
    for (const client of clients) {
      for (const server of [coffer.target.name, moto.target.name]) {
        const got = samples.get(`${client}/${server}`);
        if (!got) continue;
        const upS = median(got.upS);
        const downS = median(got.downS);
        const row: S3BenchRow = { client, server, upS, downS, upMBs: options.size / MB / upS, downMBs: options.size / MB / downS, rounds: completed };
        if (got.cpuUp.length > 0) {
          row.enclaveCpuUpS = median(got.cpuUp);
          row.enclaveCpuDownS = median(got.cpuDown);
        }
        rows.push(row);
        if (completed > 1) log(`median ${client.padEnd(6)} ${server.padEnd(6)} up ${row.upMBs.toFixed(1).padStart(7)} MB/s (${upS.toFixed(1)} s, ${range(got.upS)})   down ${row.downMBs.toFixed(1).padStart(7)} MB/s (${downS.toFixed(1)} s, ${range(got.downS)})`);
      }
      const c = rows.find((r) => r.client === client && r.server === 'coffer');
      const m = rows.find((r) => r.client === client && r.server === 'moto');
      if (c && m) log(`${client.padEnd(6)} coffer/moto${completed > 1 ? ' (medians)' : ''}: up ×${(c.upMBs / m.upMBs).toFixed(2)}, down ×${(c.downMBs / m.downMBs).toFixed(2)}`);
    }
    // VmHWM: the highest resident set each process reached over the whole run (flat memory: independent of --size)
    const s3Peak = (await peakRss(coffer.s3Pid)) ?? 0;
    const storagePeak = (await peakRss(storagePid)) ?? 0;
    const proxyPeak = coffer.proxyPid === null ? null : await peakRss(coffer.proxyPid);
    log(`peak RSS: the enclave (S3 listener) ${(s3Peak / 2 ** 20).toFixed(0)} MiB (${(rssAtStart.s3 / 2 ** 20).toFixed(0)} MiB after start), storage service + KMS + bench (one process) ${(storagePeak / 2 ** 20).toFixed(0)} MiB (${(rssAtStart.storage / 2 ** 20).toFixed(0)} MiB after start), host proxy ${proxyPeak === null ? '?' : (proxyPeak / 2 ** 20).toFixed(0)} MiB`);
    return rows;
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  }
}

function range(xs: number[]): string {
  return `${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)} s`;
}
