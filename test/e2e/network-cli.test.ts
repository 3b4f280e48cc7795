// `coffer net` end to end: the CLI as a user runs it, against a real Open vSwitch (one simulated host from
// the lab): objects with --json, plan → apply → idempotent re-apply, drift shown by plan and repaired by
// apply, one-line errors with stable exit codes, and the apply lock across processes. Fails in CI when Open
// vSwitch cannot start.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCliProcess } from '../../bench/cli-process.js';
import { openNetRecordStore } from '../../src/metadata/netstore/index.js';
import { withApplyLock } from '../../src/network/index.js';
import { OvsLab } from '../support/ovs-lab.js';

let lab: OvsLab | undefined;
let startError: unknown;
let dir = '';

const net = (args: string[]) => runCliProcess(['net', ...args, '--data-dir', dir]);
async function ok(args: string[]): Promise<unknown> {
  const r = await net([...args, '--json']);
  if (r.code !== 0) throw new Error(`coffer net ${args.join(' ')} → ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'coffer-netcli-'));
  try {
    lab = await OvsLab.start(1);
  } catch (e) {
    startError = e;
  }
}, 120_000);

afterAll(async () => {
  await lab?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('coffer net (CLI) on real Open vSwitch', () => {
  it('manages objects, plans, applies idempotently, repairs drift, and serialises applies', async (ctx) => {
    if (startError !== undefined) {
      if (process.env.CI === 'true') throw new Error(`Open vSwitch could not start: ${String(startError)}`);
      return ctx.skip(`Open vSwitch could not start: ${String(startError)}`);
    }
    const h = lab!.hosts[0]!;
    const sw = ['--host', 'h0', '--ovs-rundir', h.rundir, '--datapath', 'netdev'];
    await ok(['host', 'add', 'h0', '--address', h.underlay, '--uplink-address', '198.18.0.2', '--uplink-mac', '02:aa:00:00:00:02', '--uplink-gateway-mac', '02:aa:00:00:00:01']);
    expect(await ok(['network', 'create', 'red', '--vni', '100', '--cidr', '10.10.0.0/24'])).toEqual({ name: 'red', vni: 100, cidr: '10.10.0.0/24', mtu: 1450 });
    expect(await ok(['port', 'attach', 'r0', '--network', 'red', '--host', 'h0'])).toMatchObject({ ip: '10.10.0.2', ofport: 10, ifname: 'cfp10' });
    await ok(['forward', 'add', '--host', 'h0', '--host-port', '2222', '--port', 'r0', '--target-port', '22']);

    // refusals: one line on stderr, stable exit codes, nothing stored
    const bad = await net(['network', 'create', 'red2', '--vni', '101', '--cidr', '10.10.0.0/16']);
    expect(bad).toMatchObject({ code: 4, stdout: '' });
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toContain('overlaps network red');
    expect((await net(['forward', 'add', '--host', 'h0', '--host-port', '2222', '--port', 'r0', '--target-port', '23'])).code).toBe(4);
    expect((await net(['policy', 'add', 'p', '--from', 'network:red', '--to', 'network:ghost'])).code).toBe(3);
    expect((await net(['host', 'rm', 'h0'])).code).toBe(4);
    expect((await ok(['show'])) as { networks: unknown[]; policies: unknown[] }).toMatchObject({ networks: [{ name: 'red' }], policies: [] });

    const plan = (await ok(['plan', ...sw])) as { flows: number; diff: { add: string[]; remove: string[] } };
    const first = (await ok(['apply', ...sw])) as { added: number; removed: number; flows: number };
    expect(first.added).toBe(plan.flows);
    expect(first).toMatchObject({ removed: 0, flows: plan.flows });
    expect(await ok(['apply', ...sw])).toMatchObject({ added: 0, removed: 0 });

    await h.ovs.addFlow('table=0,priority=900,in_port=2 actions=output:10');
    const drift = (await ok(['plan', ...sw])) as { diff: { add: string[]; remove: string[] } };
    expect(drift.diff).toEqual({ add: [], remove: [expect.stringContaining('priority=900')] });
    const human = await net(['plan', ...sw]);
    expect(human.stdout).toMatch(/^- .*priority=900/m);
    expect(await ok(['apply', ...sw])).toMatchObject({ added: 0, removed: 1 });

    // a second shell cannot apply while another holds the host's lock
    const store = await openNetRecordStore({ kind: 'sqlite', path: path.join(dir, 'metadata.sqlite') });
    try {
      const blocked = await withApplyLock(store, 'h0', () => net(['apply', ...sw]));
      expect(blocked.code).toBe(4);
      expect(blocked.stderr).toMatch(/another apply to host h0 is running/);
    } finally {
      await store.close();
    }
    expect(await ok(['apply', ...sw])).toMatchObject({ added: 0, removed: 0 });
  }, 180_000);
});
