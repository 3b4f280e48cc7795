// `coffer bench s3`: the AWS CLI (and rclone) copying one file up and down through Coffer's S3 endpoint
// (the enclave's S3 listener as `npm start` runs it — enclave and host proxy as processes: sealed on the way in,
// opened and authenticated on the way out, https with the attested certificate pinned) against the same client on
// moto's S3 server (plain, unencrypted, not attested; PyPI moto[server]) in the same run. Every download is SHA-256
// checked. Figures, never pass/fail. `--concurrent N` runs s3-concurrent.ts instead.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { peakRss } from './measure.js';
import { AWS_CLI, awsEnv, motoPython, rcloneEnv, run, sha256File, startCofferS3, startMoto, timed, writeRandomFile, type S3Target } from './s3-env.js';

export interface S3BenchOptions {
  size: number;
  /** Python with moto[server] (default: test/servers/moto-venv if present, else python3). */
  python?: string;
  clients?: Array<'aws' | 'rclone'>;
  log?: (line: string) => void;
}

export interface S3BenchRow { client: string; server: string; upMBs: number; downMBs: number; upS: number; downS: number }

const MB = 1e6;

async function upDown(client: 'aws' | 'rclone', work: string, s: S3Target, src: string, back: string): Promise<{ upS: number; downS: number }> {
  const bucket = `bench-${client}`;
  if (client === 'aws') {
    const env = awsEnv(work, s);
    const aws = (args: string[]): Promise<void> => run(AWS_CLI, ['--endpoint-url', s.url, ...args], env);
    await aws(['s3', 'mb', `s3://${bucket}`]);
    const upS = await timed(() => aws(['s3', 'cp', '--no-progress', src, `s3://${bucket}/f.bin`]));
    const downS = await timed(() => aws(['s3', 'cp', '--no-progress', `s3://${bucket}/f.bin`, back]));
    return { upS, downS };
  }
  const { env, flags } = rcloneEnv(work, s);
  await run('rclone', [...flags, 'mkdir', `b:${bucket}`], env);
  const upS = await timed(() => run('rclone', [...flags, 'copyto', src, `b:${bucket}/f.bin`], env));
  const downS = await timed(() => run('rclone', [...flags, 'copyto', `b:${bucket}/f.bin`, back], env));
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

    const rows: S3BenchRow[] = [];
    const storagePid = process.pid;
    const rssAtStart = { s3: (await peakRss(coffer.s3Pid)) ?? 0, storage: (await peakRss(storagePid)) ?? 0 };
    for (const client of clients) {
      for (const s of [coffer.target, moto.target]) {
        const back = path.join(work, `back-${client}-${s.name}.bin`);
        const { upS, downS } = await upDown(client, work, s, src, back);
        if ((await sha256File(back)) !== srcSha) throw new Error(`${client} against ${s.name}: the downloaded file differs`);
        await rm(back);
        const row = { client, server: s.name, upS, downS, upMBs: options.size / MB / upS, downMBs: options.size / MB / downS };
        rows.push(row);
        log(`${client.padEnd(6)} ${s.name.padEnd(6)} up ${row.upMBs.toFixed(1).padStart(7)} MB/s (${upS.toFixed(1)} s)   down ${row.downMBs.toFixed(1).padStart(7)} MB/s (${downS.toFixed(1)} s)   sha256 ok`);
      }
      const c = rows.find((r) => r.client === client && r.server === 'coffer');
      const m = rows.find((r) => r.client === client && r.server === 'moto');
      if (c && m) log(`${client.padEnd(6)} coffer/moto: up ×${(c.upMBs / m.upMBs).toFixed(2)}, down ×${(c.downMBs / m.downMBs).toFixed(2)}`);
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
