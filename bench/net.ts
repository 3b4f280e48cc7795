// `coffer bench net`: the flow compiler at scale, from one run. Compiles 1,000 ports across 10 networks and
// 20 hosts (target < 1 s), counts the flows a one-rule change touches (what `net apply` sends: the set
// difference of the compiled tables, which is what `ovs-ofctl diff-flows` reports against a switch that holds
// the previous plan), and compares compile time per port at 100 and 10,000 ports (target: no worse than
// linear). Each compile figure is the median of a few rounds of the same run.
import { performance } from 'node:perf_hooks';
import { compile, type HostFlows } from '../src/network/compiler.js';
import type { NetState, Port, Policy } from '../src/network/model.js';
import { formatIp, parseIp } from '../src/network/ipv4.js';
import { macFor } from '../src/network/model.js';

export interface NetBenchOptions {
  hosts?: number;
  networks?: number;
  ports?: number;
  rounds?: number;
  /** The two sizes of the scaling comparison (default 100 and 10,000 ports). */
  scaling?: readonly [number, number];
  log?: (line: string) => void;
}

export interface NetBenchResult {
  ports: number;
  networks: number;
  hosts: number;
  compileMs: number;
  compileCpuMs: number;
  flows: number;
  oneRuleChange: { flowsTouched: number; hostsTouched: number; flowsTotal: number };
  scaling: { smallPorts: number; smallMs: number; largePorts: number; largeMs: number; perPortRatio: number };
}

/** A synthetic state: ports spread over networks and hosts, one policy per network pair ring, one egress rule per network. */
export function syntheticState(ports: number, networks: number, hosts: number): NetState {
  const nets = Array.from({ length: networks }, (_, i) => ({ name: `net${String(i).padStart(3, '0')}`, vni: 1000 + i, cidr: `10.${64 + i}.0.0/16`, mtu: 1450 }));
  const hs = Array.from({ length: hosts }, (_, i) => ({
    name: `host${String(i).padStart(3, '0')}`, address: `192.0.${2 + (i >> 8)}.${i & 255}`, mtu: 1500,
    uplink: { address: `198.51.${100 + (i >> 8)}.${i & 255}`, mac: '02:aa:00:00:00:02', gatewayMac: '02:aa:00:00:00:01', ifname: 'cfuplink' },
  }));
  const perHost = new Map<string, number>();
  const ps: Port[] = [];
  for (let i = 0; i < ports; i++) {
    const n = nets[i % networks]!;
    const h = hs[Math.floor(i / networks) % hosts]!;
    const ofport = 10 + (perHost.get(h.name) ?? 0);
    perHost.set(h.name, ofport - 9);
    const ip = parseIp(n.cidr.split('/')[0]!) + 2 + Math.floor(i / networks);
    ps.push({ name: `p${String(i).padStart(6, '0')}`, network: n.name, host: h.name, ip: formatIp(ip), mac: macFor(n.vni, ip), ofport, ifname: `cfp${ofport}` });
  }
  const policies: Policy[] = nets.map((n, i) => ({ name: `ring${i}`, from: { network: n.name }, to: { network: nets[(i + 1) % networks]!.name }, proto: 'tcp', ports: [8000, 8080] as const }));
  return {
    hosts: hs, networks: nets, ports: ps, policies,
    egress: nets.map((n) => ({ name: `kms-${n.name}`, network: n.name, to: '203.0.113.10/32', proto: 'tcp' as const, ports: [443, 443] as const })),
    // one proxied-SSH forward per host, to its first port
    forwards: hs.flatMap((h) => {
      const p = ps.find((q) => q.host === h.name);
      return p ? [{ host: h.name, proto: 'tcp' as const, hostPort: 2222, port: p.name, targetPort: 22 }] : [];
    }),
  };
}

/** Median wall-clock ms of `rounds` runs, and the median CPU ms of this process for the same runs. */
function medianTimes(rounds: number, fn: () => void): { wall: number; cpu: number } {
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const c = process.cpuUsage();
    const s = performance.now();
    fn();
    wall.push(performance.now() - s);
    const d = process.cpuUsage(c);
    cpu.push((d.user + d.system) / 1000);
  }
  const mid = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  return { wall: mid(wall), cpu: mid(cpu) };
}

function medianMs(rounds: number, fn: () => void): number {
  return medianTimes(rounds, fn).wall;
}

function touched(a: Map<string, HostFlows>, b: Map<string, HostFlows>): { flows: number; hosts: number } {
  let flows = 0;
  let hosts = 0;
  for (const [h, before] of a) {
    const x = new Set(before.flows);
    const y = new Set(b.get(h)?.flows ?? []);
    let n = 0;
    for (const f of y) if (!x.has(f)) n++;
    for (const f of x) if (!y.has(f)) n++;
    flows += n;
    if (n) hosts++;
  }
  return { flows, hosts };
}

export async function benchNet(options: NetBenchOptions = {}): Promise<NetBenchResult> {
  const log = options.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const hosts = options.hosts ?? 20;
  const networks = options.networks ?? 10;
  const ports = options.ports ?? 1000;
  const rounds = options.rounds ?? 5;

  const state = syntheticState(ports, networks, hosts);
  compile(state); // warm-up (JIT)
  let compiled = compile(state);
  const times = medianTimes(rounds, () => (compiled = compile(state)));
  const compileMs = times.wall;
  const flows = [...compiled.values()].reduce((n, h) => n + h.flows.length, 0);
  log(`net compile: ${ports} ports, ${networks} networks, ${hosts} hosts → ${flows} flows in ${compileMs.toFixed(1)} ms wall, ${times.cpu.toFixed(1)} ms CPU (median of ${rounds}; target < 1000 ms)`);

  const changed = compile({ ...state, policies: [...state.policies, { name: 'one-more', from: { network: state.networks[0]!.name }, to: { port: state.ports[1]!.name }, proto: 'tcp', ports: [22, 22] }] });
  const t = touched(compiled, changed);
  log(`net one-rule change (add a policy): ${t.flows} flows touched on ${t.hosts} of ${hosts} hosts (of ${flows} flows in all)`);

  const [nSmall, nLarge] = options.scaling ?? [100, 10_000];
  const small = syntheticState(nSmall, networks, hosts);
  const large = syntheticState(nLarge, networks, hosts);
  compile(small);
  compile(large);
  const msSmall = medianMs(Math.max(rounds, 9), () => compile(small));
  const msLarge = medianMs(Math.max(3, Math.ceil(rounds / 2)), () => compile(large));
  const perPortRatio = msLarge / nLarge / (msSmall / nSmall);
  const us = (ms: number, n: number): string => ((ms / n) * 1000).toFixed(1);
  log(`net compile scaling: ${nSmall} ports ${msSmall.toFixed(2)} ms (${us(msSmall, nSmall)} µs/port), ${nLarge} ports ${msLarge.toFixed(1)} ms (${us(msLarge, nLarge)} µs/port); per-port ratio ${perPortRatio.toFixed(2)} (≤ 1 is no worse than linear)`);
  return {
    ports, networks, hosts, compileMs, compileCpuMs: times.cpu, flows,
    oneRuleChange: { flowsTouched: t.flows, hostsTouched: t.hosts, flowsTotal: flows },
    scaling: { smallPorts: nSmall, smallMs: msSmall, largePorts: nLarge, largeMs: msLarge, perPortRatio },
  };
}
