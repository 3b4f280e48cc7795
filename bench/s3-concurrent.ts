// `coffer bench s3 --concurrent N --size S`: N AWS CLI processes each upload the same S-byte file at once through
// Coffer's S3 listener in the enclave (`aws s3 cp`: multipart, 8 MiB parts, 10 requests in flight per process),
// then every object is read back (`aws s3 cp … -`, 4 at a time) and SHA-256 checked against the source. Prints the
// errors counted (a failed upload or download, a wrong digest), the aggregate rates and the enclave's peak RSS.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { peakRss } from './measure.js';
import { AWS_CLI, awsEnv, run, startCofferS3, timed, writeRandomFile } from './s3-env.js';

export interface S3ConcurrentOptions {
  concurrent: number;
  size: number;
  /** Downloads checked at once afterwards (default 4). */
  readers?: number;
  log?: (line: string) => void;
}

export interface S3ConcurrentResult {
  concurrent: number;
  size: number;
  uploadErrors: number;
  downloadErrors: number;
  digestMismatches: number;
  upS: number;
  downS: number;
  upMBs: number;
  downMBs: number;
  enclavePeakRssMiB: number;
  enclaveStartRssMiB: number;
  storagePeakRssMiB: number;
  /** The enclave's peak over the upload phase only (before the read-back). */
  enclaveUploadPeakRssMiB: number;
  /** The host proxy process (null when the product ran without one). */
  proxyPeakRssMiB: number | null;
}

/** SHA-256 of what `aws s3 cp s3://… -` writes to stdout (nothing touches the disk). */
function sha256OfDownload(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(AWS_CLI, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const h = createHash('sha256');
    let err = '';
    child.stdout.on('data', (b: Buffer) => h.update(b));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(h.digest('hex')) : reject(new Error(`aws ${args.join(' ')} exited with ${code}: ${err.trim()}`))));
  });
}

const MiB = 2 ** 20;

export async function benchS3Concurrent(options: S3ConcurrentOptions): Promise<S3ConcurrentResult> {
  const log = options.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const work = await mkdtemp(path.join(os.tmpdir(), 'coffer-bench-s3c-'));
  let stop: (() => Promise<void>) | null = null;
  try {
    const src = path.join(work, 'src.bin');
    const srcSha = await writeRandomFile(src, options.size);
    const coffer = await startCofferS3(work);
    stop = coffer.stop;
    const env = awsEnv(work, coffer.target);
    const base = ['--endpoint-url', coffer.target.url];
    await run(AWS_CLI, [...base, 's3', 'mb', 's3://concurrent'], env);
    const startRss = (await peakRss(coffer.s3Pid)) ?? 0;
    const keys = Array.from({ length: options.concurrent }, (_, i) => `obj-${String(i).padStart(3, '0')}.bin`);
    const failures: string[] = [];
    const upS = await timed(async () => {
      const outcomes = await Promise.allSettled(keys.map((k) => run(AWS_CLI, [...base, 's3', 'cp', '--no-progress', src, `s3://concurrent/${k}`], env)));
      outcomes.forEach((o, i) => { if (o.status === 'rejected') failures.push(`upload ${keys[i]}: ${lastLine(String(o.reason))}`); });
    });
    const uploadErrors = failures.length;
    const afterUploadsRss = (await peakRss(coffer.s3Pid)) ?? 0; // the high-water mark of the upload phase alone
    let downloadErrors = 0;
    let digestMismatches = 0;
    const queue = [...keys];
    const downS = await timed(async () => {
      await Promise.all(Array.from({ length: options.readers ?? 4 }, async () => {
        for (let k = queue.shift(); k !== undefined; k = queue.shift()) {
          try {
            const sha = await sha256OfDownload([...base, 's3', 'cp', '--no-progress', `s3://concurrent/${k}`, '-'], env);
            if (sha !== srcSha) {
              digestMismatches++;
              failures.push(`${k}: SHA-256 differs from the source`);
            }
          } catch (e) {
            downloadErrors++;
            failures.push(`download ${k}: ${lastLine(String(e))}`);
          }
        }
      }));
    });
    const total = options.concurrent * options.size;
    const result: S3ConcurrentResult = {
      concurrent: options.concurrent, size: options.size, uploadErrors, downloadErrors, digestMismatches, upS, downS,
      upMBs: total / 1e6 / upS, downMBs: total / 1e6 / downS,
      enclavePeakRssMiB: ((await peakRss(coffer.s3Pid)) ?? 0) / MiB, enclaveStartRssMiB: startRss / MiB, enclaveUploadPeakRssMiB: afterUploadsRss / MiB, storagePeakRssMiB: ((await peakRss(process.pid)) ?? 0) / MiB,
      proxyPeakRssMiB: coffer.proxyPid === null ? null : ((await peakRss(coffer.proxyPid)) ?? 0) / MiB,
    };
    for (const f of failures) log(`  ${f}`);
    log(`${options.concurrent} concurrent aws s3 cp of ${(options.size / MiB).toFixed(0)} MiB each: up ${result.upMBs.toFixed(1)} MB/s aggregate (${upS.toFixed(1)} s), read back ${result.downMBs.toFixed(1)} MB/s (${downS.toFixed(1)} s)`);
    log(`errors: ${uploadErrors} uploads, ${downloadErrors} downloads, ${digestMismatches} SHA-256 mismatches (of ${options.concurrent} objects)`);
    log(`peak RSS: the enclave (S3 listener) ${result.enclavePeakRssMiB.toFixed(0)} MiB (${result.enclaveStartRssMiB.toFixed(0)} MiB before the uploads, ${result.enclaveUploadPeakRssMiB.toFixed(0)} MiB at the end of the uploads), storage service + KMS + bench ${result.storagePeakRssMiB.toFixed(0)} MiB, host proxy ${result.proxyPeakRssMiB?.toFixed(0) ?? '?'} MiB`);
    return result;
  } finally {
    await stop?.().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  }
}

/** The last non-empty line of a failed command's message (the client's own reason, after the command line). */
function lastLine(text: string): string {
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '').at(-1) ?? text;
}
