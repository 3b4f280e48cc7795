// The flow compiler without a switch: determinism, what each rule compiles to, and refusals. Whether the
// flows really forward and drop is network-traffic.test.ts's business (real Open vSwitch).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compile, flowFile, ruleMark } from './compiler.js';
import type { NetState } from './model.js';

const UPLINK = { address: '198.51.100.1', mac: '02:aa:00:00:00:02', gatewayMac: '02:aa:00:00:00:01', ifname: 'cfup' };
const STATE: NetState = {
  hosts: [{ name: 'h0', address: '192.0.2.1', mtu: 1500, uplink: UPLINK }, { name: 'h1', address: '192.0.2.2', mtu: 1500 }],
  networks: [{ name: 'blue', vni: 200, cidr: '10.20.0.0/24', mtu: 1450 }, { name: 'red', vni: 100, cidr: '10.10.0.0/24', mtu: 1450 }],
  ports: [
    { name: 'b1', network: 'blue', host: 'h1', ip: '10.20.0.2', mac: '02:c8:0a:14:00:02', ofport: 10, ifname: 'cfp10' },
    { name: 'r0', network: 'red', host: 'h0', ip: '10.10.0.2', mac: '02:64:0a:0a:00:02', ofport: 10, ifname: 'cfp10' },
    { name: 'r1', network: 'red', host: 'h1', ip: '10.10.0.3', mac: '02:64:0a:0a:00:03', ofport: 11, ifname: 'cfp11' },
  ],
  policies: [{ name: 'blue-ssh', from: { network: 'blue' }, to: { port: 'r1' }, proto: 'tcp', ports: [22, 23] }],
  egress: [{ name: 'kms', network: 'red', to: '203.0.113.7/32', proto: 'tcp', ports: [443, 443] }],
  forwards: [{ host: 'h0', proto: 'tcp', hostPort: 2222, port: 'r0', targetPort: 22 }],
};

const shuffle = <T>(xs: readonly T[]): T[] => [...xs].reverse();

describe('flow compiler', () => {
  it('is deterministic: the same state in any order gives the same bytes', () => {
    const a = compile(STATE);
    const b = compile({ hosts: shuffle(STATE.hosts), networks: shuffle(STATE.networks), ports: shuffle(STATE.ports), policies: STATE.policies, egress: STATE.egress, forwards: STATE.forwards });
    for (const h of ['h0', 'h1']) expect(flowFile(b.get(h)!)).toBe(flowFile(a.get(h)!));
    expect(new Set(a.get('h0')!.flows).size).toBe(a.get('h0')!.flows.length);
  });

  it('compiles a policy where the connection starts, with conntrack marks per rule', () => {
    const h0 = compile(STATE).get('h0')!.flows.join('\n');
    const h1 = compile(STATE).get('h1')!.flows.join('\n');
    const mark = `0x${ruleMark('policy', 'blue-ssh').toString(16)}`;
    // blue has ports only on h1: the rule is evaluated there (22-23 is one masked match)
    expect(h1).toContain(`table=21,priority=120,ct_state=+new+trk,tcp,tp_dst=0x16/0xfffe,nw_src=10.20.0.0/24,nw_dst=10.10.0.3/32 actions=ct(commit,zone=1,exec(set_field:${mark}->ct_mark)),goto_table:40`);
    expect(h0).not.toContain('nw_src=10.20.0.0/24,nw_dst=10.10.0.3/32');
    // egress leaves h0 (red has a port there, h0 has the uplink) by SNAT to the uplink address
    expect(h0).toContain('nw_src=10.10.0.0/24,nw_dst=203.0.113.7/32 actions=ct(commit,zone=1,nat(src=198.51.100.1)');
    expect(h1).not.toContain('nat(src=');
    // the forward DNATs on h0 only
    expect(h0).toContain('table=31,priority=100,ct_state=+new+trk,tcp,tp_dst=2222 actions=ct(commit,zone=1,nat(dst=10.10.0.2:22)');
    // remote ports go into the tunnel with their network's VNI and their host's underlay address
    expect(h0).toContain('table=40,priority=200,metadata=100,dl_dst=02:64:0a:0a:00:03 actions=set_field:100->tun_id,set_field:192.0.2.2->tun_dst,output:1');
    expect(compile(STATE).get('h0')!.ports.map((p) => `${p.ofport}:${p.ifname}`)).toEqual(['1:cftun', '2:cfup', '10:cfp10']);
  });

  it('a one-rule change touches only that rule\'s flows', () => {
    const before = compile(STATE);
    const after = compile({ ...STATE, policies: [...STATE.policies, { name: 'web', from: { network: 'red' }, to: { network: 'blue' }, proto: 'tcp', ports: [80, 80] }] });
    let changed = 0;
    for (const h of ['h0', 'h1']) {
      const a = new Set(before.get(h)!.flows);
      const b = new Set(after.get(h)!.flows);
      changed += [...b].filter((f) => !a.has(f)).length + [...a].filter((f) => !b.has(f)).length;
    }
    // red has ports on both hosts: on each, one ACL flow and one established-pass flow in each of tables 21 and 51
    expect(changed).toBe(6);
  });

  it('refuses an MTU that leaves no room for the tunnel header, and dangling references', () => {
    expect(() => compile({ ...STATE, networks: [{ ...STATE.networks[0]!, mtu: 1480 }, STATE.networks[1]!] })).toThrow(/does not fit/);
    expect(() => compile({ ...STATE, policies: [{ name: 'x', from: { network: 'ghost' }, to: { network: 'red' }, proto: 'any' }] })).toThrow(/unknown network ghost/);
  });

  it('produces flows that ovs-ofctl parses (when Open vSwitch is installed)', (ctx) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'coffer-flows-'));
    try {
      for (const [h, flows] of compile(STATE)) {
        const file = path.join(dir, `${h}.txt`);
        writeFileSync(file, flowFile(flows));
        try {
          execFileSync('ovs-ofctl', ['-O', 'OpenFlow15', 'parse-flows', file], { stdio: ['ignore', 'ignore', 'pipe'] });
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT' && process.env.CI !== 'true') return ctx.skip();
          throw e;
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
