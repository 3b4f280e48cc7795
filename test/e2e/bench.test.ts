// The benchmarks still run end to end (small sizes): `coffer bench ingest` with its processes, rounds and
// references, and `coffer bench metadata` on SQLite. Figures are not judged here (docs/benchmarks.md), only that
// every row is measured and the downloaded file matched the source.
import { describe, expect, it } from 'vitest';
import { benchFiles } from '../../bench/files.js';
import { benchIngest } from '../../bench/ingest.js';
import { benchMetadata } from '../../bench/metadata.js';

describe('benchmarks, small', () => {
  it('bench ingest measures every row in every round and checks the download', async () => {
    const lines: string[] = [];
    const r = await benchIngest({ size: 3 * 8 * 1024 * 1024 + 123, rounds: 2, log: (l) => lines.push(l) });
    for (const key of [
      'baselineMBps', 'fullPathMBps', 'readBufferedMedian', 'readDirectMedian', 'fetchMedian', 'verifyMedian', 'getMedian',
      'copyBufferedMedian', 'copyDirectMedian', 'verifyRatioMedian', 'getRatioMedian', 'putPeakRssBytes', 'getPeakRssBytes',
    ]) {
      expect(r[key], key).toBeGreaterThan(0);
    }
    expect(r.downloadRounds).toBe(2);
    const text = lines.join('\n');
    expect(text).toContain('download round 2/2');
    expect(text).toMatch(/^summary: full path .*download \+ open \(get --verify-only\) .*× the faster raw read/m);
    expect(text).not.toContain('could not drop the chunk files from the page cache');
  }, 180_000);

  it('bench metadata measures creates, listing and stat on SQLite', async () => {
    const lines: string[] = [];
    const r = (await benchMetadata({ creates: 300, listEntries: 2_000, stats: 300, log: (l) => lines.push(l) })) as { sqlite: Record<string, number> };
    expect(Object.values(r.sqlite).length).toBeGreaterThan(3);
    for (const v of Object.values(r.sqlite)) expect(Number.isFinite(v) && v >= 0).toBe(true);
    expect(lines.join('\n')).toMatch(/sqlite: 300 creates in/);
  }, 120_000);

  it('bench files copies a small tree both ways in every round, re-runs it, and measures a large file', async () => {
    const lines: string[] = [];
    const r = await benchFiles({ files: 40, fileSize: 1000, perDir: 15, rounds: 2, largeSize: 3 * 1024 * 1024 + 5, log: (l) => lines.push(l) });
    for (const key of ['putFilesPerSecond', 'getFilesPerSecond', 'rerunPutSeconds', 'rerunGetSeconds', 'listSeconds', 'putMBps', 'getMBps']) {
      expect(r[key], key).toBeGreaterThan(0);
    }
    expect(r.peakRss).toMatchObject({ put: expect.any(Number), get: expect.any(Number), serve: expect.any(Number) });
    const text = lines.join('\n');
    // the service's peaks during put -r and get -r apart (Linux: VmHWM reset between the runs)
    const serve = r.peakRss as { serveDuringPut: number; serveDuringGet: number };
    expect(serve.serveDuringPut).toBeGreaterThan(0);
    expect(serve.serveDuringGet).toBeGreaterThan(0);
    expect(text).toMatch(/coffer serve \d+ MiB \(during put -r \d+ MiB, during get -r \d+ MiB\)/);
    expect(text).toContain('round 2:');
    expect(text).toMatch(/^coffer put -r: \d+ \(\d+–\d+\) files\/s; coffer get -r: \d+ \(\d+–\d+\) files\/s cold, \d+ \(\d+–\d+\) warm .*; coffer get -r --fsync: \d+ /m);
    expect(r.getWarmFilesPerSecond).toBeGreaterThan(0);
    // the stores are evicted before every cold run, and the run says whether fincore found them gone
    const cache = r.pageCache as { evictions: number; cold: boolean; line: string };
    expect(cache.evictions).toBeGreaterThanOrEqual(2 * 3); // per round: restic restore, get -r, get -r --fsync
    expect(text).toContain(cache.line);
    expect(cache.line).toMatch(/^page cache: (evicted \d+ times|EVICTION|.*NOT VERIFIED)/);
    if (r.getVsResticRestore !== undefined) {
      // restic installed: cold and warm ratios, and the order rotated (restic first in round 1, coffer in round 2)
      expect(r.getWarmVsResticRestoreWarm).toBeGreaterThan(0);
      expect(text).toMatch(/get -r [\d.]+× restic restore cold.* \[[\d., ]+\] \(target ≥ 1\.0\), [\d.]+× warm \[/);
      expect(text).toMatch(/^round 1: .*cold \(restic first\)/m);
      expect(text).toMatch(/^round 2: .*cold \(coffer first\)/m);
    }
    expect(r.getFsyncFilesPerSecond).toBeGreaterThan(0); // the durable mode, timed beside the default
    expect(text).toMatch(/^large-file ratios \(medians of 2\)/m);
    expect(r.treeEntries).toBe(40 + 3); // 40 files in 3 directories, every page listed
    expect(r.treeListSeconds).toBeGreaterThan(0);
  }, 300_000);

  it('bench files with 0 files measures the large file alone: CPU seconds per GiB of client and service, peak RSS', async () => {
    const lines: string[] = [];
    const r = await benchFiles({ files: 0, fileSize: 1000, rounds: 1, largeSize: 2 * 1024 * 1024 + 3, log: (l) => lines.push(l) });
    const text = lines.join('\n');
    expect(text).not.toMatch(/coffer put -r/);
    expect(r.putFilesPerSecond).toBeUndefined();
    expect(text).toMatch(/^round 1: coffer put \d+ MB\/s \(CPU s\/GiB: [\d.]+ client, [\d.]+ service; RSS \d+ MiB\)/m);
    expect(text).toMatch(/^CPU seconds per GiB .*: put [\d.]+ \+ [\d.]+, .*get [\d.]+ \+ [\d.]+/m);
    const cpu = r.cpuSecondsPerGiB as Record<string, { client: number; service: number }>;
    expect(cpu.put?.client).toBeGreaterThan(0); // a process that ran did use CPU
    expect(cpu.get?.client).toBeGreaterThan(0);
    expect(r.largePeakRss).toMatchObject({ put: expect.any(Number), get: expect.any(Number), serve: expect.any(Number) });
    expect((r.largePeakRss as { put: number }).put).toBeGreaterThan(0);
  }, 120_000);

  it('bench files: age + sync reference rows beside the unchanged ratios, and a B tree against its own coffer serve', async (ctx) => {
    const { spawnSync } = await import('node:child_process');
    if (spawnSync('sh', ['-c', 'command -v age && command -v age-keygen']).status !== 0) ctx.skip('age is not installed');
    const lines: string[] = [];
    const saved = { cli: process.env.COFFER_BENCH_CLI_B, serve: process.env.COFFER_BENCH_SERVE_B };
    process.env.COFFER_BENCH_CLI_B = new URL('../../bin/coffer.mjs', import.meta.url).pathname;
    process.env.COFFER_BENCH_SERVE_B = '1';
    try {
      const r = await benchFiles({ files: 0, fileSize: 1000, rounds: 1, largeSize: 2 * 1024 * 1024 + 3, log: (l) => lines.push(l) });
      const text = lines.join('\n');
      expect(text).toMatch(/against its own coffer serve/);
      expect(text).toMatch(/age encrypt \+ sync \(reference\) \d+ MB\/s/);
      expect(text).toMatch(/coffer put B \d+ MB\/s \(CPU s\/GiB: [\d.]+ client, [\d.]+ service/);
      expect(text).toMatch(/age decrypt \+ sync \(reference\) \d+ MB\/s/);
      expect(text).toMatch(/^reference, not a target .*coffer put [\d.]+× age encrypt \+ sync, coffer get [\d.]+× age decrypt \+ sync/m);
      // the targets' ratios are still those of age without sync
      expect(r.putVsAgeEncrypt).toEqual(expect.any(Number));
      expect(r.putVsAgeEncryptSync).toEqual(expect.any(Number));
      expect(r.getVsAgeDecryptSync).toEqual(expect.any(Number));
      const cpu = r.cpuSecondsPerGiB as Record<string, { client: number; service: number }>;
      expect(cpu.putB?.service).toBeGreaterThan(0); // B's own service did the work
    } finally {
      if (saved.cli === undefined) delete process.env.COFFER_BENCH_CLI_B;
      else process.env.COFFER_BENCH_CLI_B = saved.cli;
      if (saved.serve === undefined) delete process.env.COFFER_BENCH_SERVE_B;
      else process.env.COFFER_BENCH_SERVE_B = saved.serve;
    }
  }, 180_000);

  it('bench files --no-restic measures coffer alone (a tree too large to copy twice)', async () => {
    const lines: string[] = [];
    const r = await benchFiles({ files: 12, fileSize: 100, perDir: 5, rounds: 1, largeSize: 0, restic: false, log: (l) => lines.push(l) });
    expect(lines.join('\n')).toContain('restic: left out (--no-restic)');
    expect(r.getVsResticRestore).toBeUndefined();
    expect(r.getFilesPerSecond).toBeGreaterThan(0);
    expect(r.treeEntries).toBe(12 + 3);
    const quickLines: string[] = [];
    const quick = await benchFiles({ files: 6, fileSize: 100, perDir: 5, rounds: 1, largeSize: 0, restic: false, fsyncToo: false, warm: false, log: (l) => quickLines.push(l) });
    expect(quick.getFsyncFilesPerSecond).toBeUndefined();
    // --no-warm: cold runs only (one eviction, before the one get -r)
    expect(quick.getWarmFilesPerSecond).toBeUndefined();
    expect((quick.pageCache as { evictions: number }).evictions).toBe(1);
    expect(quickLines.join('\n')).not.toMatch(/warm/);
  }, 120_000);
});
