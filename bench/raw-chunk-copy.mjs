// Raw I/O of chunk files, no Coffer code: how fast this disk copies a directory of 8 MiB chunk files with N in flight,
// by mode: direct (O_DIRECT read only), buffered (read only), directcopy (O_DIRECT read + O_DIRECT write), bufcopy
// (buffered read + write), copyfile (fs.copyFile: copy_file_range). Drops the page cache first (root). Prints wall and CPU.
//   node bench/raw-chunk-copy.mjs <dir of chunk files> <mode> [inflight=4] [out dir, for the copy modes]
// docs/benchmarks.md, branch backup3.
import { open, readdir, copyFile, mkdir, rm } from 'node:fs/promises';
import { constants } from 'node:fs';
import { execSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
const dir = process.argv[2], mode = process.argv[3], conc = +(process.argv[4] ?? 4), out = process.argv[5];
const files = (await readdir(dir)).map((f) => `${dir}/${f}`);
const O_DIRECT = constants.O_DIRECT;
const mem = new globalThis.WebAssembly.Memory({ initial: (conc * 8.5 * 2**20) / 65536 | 0, maximum: 65536 });
const bufs = Array.from({ length: conc }, (_, i) => Buffer.from(mem.buffer, i * (8 * 2**20 + 4096 * 2), 8 * 2**20 + 4096));
execSync('sync; echo 3 > /proc/sys/vm/drop_caches');
if (out) { await rm(out, { recursive: true, force: true }); await mkdir(out, { recursive: true }); }
const t0 = performance.now(); const c0 = process.cpuUsage();
let next = 0;
async function worker(i) {
  const buf = bufs[i];
  while (next < files.length) {
    const f = files[next++];
    if (mode === 'copyfile') { await copyFile(f, `${out}/${f.split('/').pop()}`); continue; }
    const fh = await open(f, constants.O_RDONLY | (mode === 'direct' || mode === 'directcopy' ? O_DIRECT : 0));
    let n = 0; for (;;) { const { bytesRead } = await fh.read(buf, n, buf.length - n, n); if (!bytesRead) break; n += bytesRead; }
    await fh.close();
    if (mode === 'directcopy' || mode === 'bufcopy') {
      const o = await open(`${out}/${f.split('/').pop()}`, constants.O_WRONLY | constants.O_CREAT | (mode === 'directcopy' ? O_DIRECT : 0), 0o600);
      await o.write(buf, 0, mode === 'directcopy' ? Math.ceil(n / 4096) * 4096 : n, 0); if (mode === 'directcopy') await o.truncate(n); await o.close();
    }
  }
}
await Promise.all(Array.from({ length: conc }, (_, i) => worker(i)));
const t1 = performance.now();
if (out) execSync(`sync --file-system ${out}`);
const c = process.cpuUsage(c0);
console.log(mode, conc, 'read/copy', ((t1 - t0) / 1000).toFixed(2), 's; +sync', ((performance.now() - t0) / 1000).toFixed(2), 's; cpu', ((c.user + c.system) / 1e6).toFixed(2));
