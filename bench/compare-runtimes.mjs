#!/usr/bin/env node
// Runs `coffer bench metadata` and `coffer bench ingest` for two Coffer trees on two Node.js runtimes in one
// run, interleaved (A B, then B A, …) so that a noisy shared machine hurts both alike, and prints the medians
// side by side with their ratio. Made for issue 15 (Node 20 → Node 24): the baseline is a checkout of the
// previous revision, installed with `npm ci` on Node 20; the candidate is this tree on the Node 24 that its
// `npm ci` installed. Plain JavaScript with no dependencies: it only spawns the two `coffer` commands.
//
//   node bench/compare-runtimes.mjs --baseline DIR [--baseline-node PATH] [--candidate DIR] [--node PATH]
//        [--rounds N] [--size 512MiB] [--entries 100000] [--creates 10000] [--dir DIR] [--only metadata|ingest]
//
// --candidate defaults to this tree, --node to its node_modules/.bin/node, --baseline-node to the first `node`
// on PATH outside node_modules/.bin (the machine's own).
//
// Without --only it runs both benchmarks, metadata then ingest, and prints both tables (issue 15: "print both in
// one run"). Figures go to stdout, with the load average before and after each benchmark (the machine is shared:
// CPU seconds move little with the load, wall-clock figures a lot); each benchmark's own output is not shown
// (it runs with --json).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.resolve(fileURLToPath(new URL('..', import.meta.url)));
const { values: o } = parseArgs({
  options: {
    baseline: { type: 'string' },
    candidate: { type: 'string' },
    'baseline-node': { type: 'string' },
    node: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    size: { type: 'string', default: '512MiB' },
    entries: { type: 'string', default: '100000' },
    creates: { type: 'string', default: '10000' },
    dir: { type: 'string' },
    only: { type: 'string' },
  },
});
if (!o.baseline) {
  process.stderr.write('compare-runtimes: --baseline DIR is required (a Coffer checkout with npm ci done)\n');
  process.exit(2);
}
if (o.dir) mkdirSync(o.dir, { recursive: true }); // the benches make their scratch directories inside it

/** The first `node` on PATH outside any node_modules/.bin: the machine's own, which ran npm. */
function systemNode() {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir || dir.includes(`node_modules${path.sep}.bin`)) continue;
    const p = path.join(dir, 'node');
    if (existsSync(p)) return p;
  }
  return 'node';
}

const sides = [
  { name: 'baseline', tree: path.resolve(o.baseline), node: o['baseline-node'] ?? systemNode() },
  { name: 'candidate', tree: path.resolve(o.candidate ?? here), node: o.node ?? path.join(path.resolve(o.candidate ?? here), 'node_modules', '.bin', 'node') },
];
for (const s of sides) {
  const bin = path.join(s.tree, 'bin', 'coffer.mjs');
  if (!existsSync(bin)) throw new Error(`${bin} not found`);
  s.version = spawnSync(s.node, ['--version'], { encoding: 'utf8' }).stdout.trim();
  s.commit = spawnSync('git', ['-C', s.tree, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim() || '?';
}

const rounds = Number(o.rounds);
const benches = {
  metadata: {
    args: ['bench', 'metadata', '--json', '--entries', o.entries, '--creates', o.creates],
    // [label, path into the JSON, true when higher is better]
    figures: [
      ['creates/s (store)', (r) => r.sqlite.createsPerSec, true],
      [`list ${o.entries} entries, s`, (r) => r.sqlite.listSeconds, false],
      ['stat p50, ms', (r) => r.sqlite.statP50Ms, false],
      ['stat p99, ms', (r) => r.sqlite.statP99Ms, false],
      ['vault creates/s', (r) => r.sqlite.vaultCreatesPerSec, true],
      ['vault stat p50, ms', (r) => r.sqlite.vaultStatP50Ms, false],
      ['vault stat p99, ms', (r) => r.sqlite.vaultStatP99Ms, false],
    ],
  },
  ingest: {
    args: ['bench', 'ingest', '--json', '--size', o.size, '--rounds', '1', ...(o.dir ? ['--dir', o.dir] : [])],
    figures: [
      ['disk baseline (no Coffer), MB/s', (r) => r.baselineMBps, true],
      ['seal + chunk store, MB/s', (r) => r.sealStoreMBps, true],
      ['full path coffer put, MB/s', (r) => r.fullPathMBps, true],
      ['full path ÷ disk baseline', (r) => r.fullPathRatio, true],
      ['raw HTTP fetch, MB/s', (r) => r.fetchMedian / 1e6, true],
      ['get --verify-only, MB/s', (r) => r.verifyMedian / 1e6, true],
      ['coffer get, MB/s', (r) => r.getMedian / 1e6, true],
      ['put CPU s/GiB: client', (r) => r.putClientCpuPerGiB, false],
      ['put CPU s/GiB: service', (r) => r.putServerCpuPerGiB, false],
      ['get CPU s/GiB: client', (r) => r.getClientCpuPerGiB, false],
      ['get CPU s/GiB: service', (r) => r.getServerCpuPerGiB, false],
      ['put client peak RSS, MiB', (r) => r.putPeakRssBytes / 2 ** 20, false],
      ['serve peak RSS, MiB', (r) => r.serverPeakRssBytes / 2 ** 20, false],
    ],
  },
};
const chosen = o.only ? [o.only] : ['metadata', 'ingest'];

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (x) => (Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 1 ? x.toFixed(2) : x.toFixed(3));

/** The load average as `uptime` prints it: 1, 5 and 15 minutes. */
const load = () => os.loadavg().map((x) => x.toFixed(2)).join(', ');

console.log(`compare-runtimes: ${rounds} round(s), interleaved; started ${new Date().toISOString()}; load average ${load()}`);
for (const s of sides) console.log(`  ${s.name}: ${s.tree} @ ${s.commit} on ${s.node} ${s.version}`);

for (const which of chosen) {
  const bench = benches[which];
  if (!bench) throw new Error(`--only ${which}: metadata or ingest`);
  const values = { baseline: bench.figures.map(() => []), candidate: bench.figures.map(() => []) };
  const loadBefore = load();
  for (let round = 1; round <= rounds; round++) {
    const order = round % 2 ? sides : [...sides].reverse();
    for (const s of order) {
      const t0 = Date.now();
      const r = spawnSync(s.node, [path.join(s.tree, 'bin', 'coffer.mjs'), ...bench.args], { encoding: 'utf8', cwd: s.tree, maxBuffer: 64 << 20 });
      if (r.status !== 0) throw new Error(`${s.name} ${which} failed (${r.status}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
      const json = JSON.parse(r.stdout.trim().split('\n').pop());
      bench.figures.forEach(([, get], i) => values[s.name][i].push(get(json)));
      console.log(`  ${which} round ${round}/${rounds}: ${s.name} done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    }
  }
  console.log(`\n${which}: medians over ${rounds} round(s) [min–max]; ratio = candidate ÷ baseline, ↑ higher is better, ↓ lower is better`);
  console.log(`  load average before ${loadBefore}; after ${load()}; finished ${new Date().toISOString()}`);
  console.log(`  ${'figure'.padEnd(34)} ${`baseline ${sides[0].version}`.padEnd(26)} ${`candidate ${sides[1].version}`.padEnd(26)} ratio`);
  bench.figures.forEach(([label, , higherBetter], i) => {
    const [b, c] = [values.baseline[i], values.candidate[i]];
    // a tree older than a figure does not print it: say so rather than fail after the whole run
    if (![...b, ...c].every(Number.isFinite)) {
      console.log(`  ${`${label} ${higherBetter ? '↑' : '↓'}`.padEnd(34)} (not printed by ${b.every(Number.isFinite) ? 'the candidate' : 'the baseline'})`);
      return;
    }
    const cell = (xs) => `${fmt(median(xs))} [${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}]`;
    console.log(`  ${`${label} ${higherBetter ? '↑' : '↓'}`.padEnd(34)} ${cell(b).padEnd(26)} ${cell(c).padEnd(26)} ${(median(c) / median(b)).toFixed(2)}`);
  });
  console.log('');
}
