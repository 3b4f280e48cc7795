// Talks to one host's Open vSwitch through its own command-line tools (ovs-vsctl for the bridge and its
// ports, ovs-ofctl for flows): OVS parses and normalises flows itself, so Coffer never parses a flow dump.
// `diff-flows` gives the plan, `--bundle replace-flows` applies it as one OpenFlow bundle (all or nothing).
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { CofferError, ErrorCode } from '../errors.js';
import type { BridgePort } from './compiler.js';

const run = promisify(execFile);

export interface OvsTarget {
  /** Bridge name (default br-coffer). */
  readonly bridge: string;
  /** OVS run directory holding db.sock and <bridge>.mgmt (default: the tools' own default). */
  readonly rundir?: string;
  /** Datapath type for a bridge this creates: netdev (userspace) or system (kernel module). */
  readonly datapathType?: 'netdev' | 'system';
}

export interface FlowDiff {
  /** Flows on the switch that the desired state lacks (or whose actions differ), as OVS prints them. */
  readonly remove: readonly string[];
  /** Desired flows the switch lacks (or has with other actions). */
  readonly add: readonly string[];
}

const OPENFLOW = '-O OpenFlow15'.split(' ');

export class Ovs {
  readonly #t: OvsTarget;

  constructor(target: OvsTarget) {
    this.#t = target;
  }

  get #switch(): string {
    return this.#t.rundir ? `unix:${path.join(this.#t.rundir, `${this.#t.bridge}.mgmt`)}` : this.#t.bridge;
  }

  async #tool(cmd: string, args: string[]): Promise<{ stdout: string; code: number }> {
    const env = this.#t.rundir ? { ...process.env, OVS_RUNDIR: this.#t.rundir } : process.env;
    const dbArgs = cmd === 'ovs-vsctl' && this.#t.rundir ? [`--db=unix:${path.join(this.#t.rundir, 'db.sock')}`, '--timeout=10'] : [];
    try {
      const r = await run(cmd, [...dbArgs, ...args], { env, maxBuffer: 256 * 1024 * 1024 });
      return { stdout: r.stdout, code: 0 };
    } catch (e) {
      const x = e as NodeJS.ErrnoException & { stdout?: string; stderr?: string; code?: number | string };
      if (x.code === 'ENOENT') throw new CofferError(ErrorCode.UNAVAILABLE, `${cmd} is not installed (Open vSwitch: apt-get install openvswitch-switch)`, { cause: e });
      if (typeof x.code === 'number' && x.code === 2 && (args.includes('diff-flows') || args.includes('br-exists'))) return { stdout: x.stdout ?? '', code: 2 };
      const first = (x.stderr ?? x.message).trim().split('\n')[0];
      const sub = args.find((a) => !a.startsWith('-') && !a.startsWith('OpenFlow')) ?? '';
      throw new CofferError(ErrorCode.NETWORK, `${cmd} ${sub} failed: ${first}`, { cause: e });
    }
  }

  /**
   * Creates the bridge if needed (fail_mode=secure: no traffic passes before Coffer's flows are in; the
   * datapath type is set only then) and makes
   * its ports exactly `ports` (adds missing ones, sets their OpenFlow numbers, types, options and MTUs, and
   * removes any other port). One ovs-vsctl transaction. Returns the names of the ports removed.
   */
  async syncBridge(ports: readonly BridgePort[]): Promise<string[]> {
    const br = this.#t.bridge;
    // the datapath type is chosen when the bridge is made, never changed on an existing bridge (that rebuilds it)
    const create = (await this.bridgeExists()) ? [] : ['add-br', br, '--', 'set', 'bridge', br, `datapath_type=${this.#t.datapathType ?? 'system'}`, '--'];
    const existing = (await this.#tool('ovs-vsctl', [...create, 'set', 'bridge', br, 'fail_mode=secure', 'protocols=OpenFlow10,OpenFlow13,OpenFlow14,OpenFlow15',
      '--', 'list-ports', br])).stdout.split('\n').filter(Boolean);
    const want = new Set(ports.map((p) => p.ifname));
    const stale = existing.filter((n) => !want.has(n)).sort();
    const args: string[] = [];
    for (const n of stale) args.push('--', 'del-port', br, n);
    for (const p of ports) {
      args.push('--', '--may-exist', 'add-port', br, p.ifname, '--', 'set', 'interface', p.ifname, `ofport_request=${p.ofport}`);
      if (p.type !== 'system') args.push(`type=${p.type}`);
      for (const [k, v] of Object.entries(p.options ?? {})) args.push(`options:${k}=${v}`);
      if (p.mtu !== undefined) args.push(`mtu_request=${p.mtu}`);
    }
    if (args.length) await this.#tool('ovs-vsctl', args.slice(1));
    return stale;
  }

  /** Whether the bridge exists yet (apply creates it). */
  async bridgeExists(): Promise<boolean> {
    return (await this.#tool('ovs-vsctl', ['br-exists', this.#t.bridge])).code === 0;
  }

  /** What `replaceFlows(file)` would change. */
  async diff(flowFile: string): Promise<FlowDiff> {
    return this.#withFile(flowFile, async (file) => {
      const { stdout } = await this.#tool('ovs-ofctl', [...OPENFLOW, 'diff-flows', this.#switch, file]);
      const lines = stdout.split('\n').filter(Boolean);
      return { remove: lines.filter((l) => l.startsWith('-')).map((l) => l.slice(1).trim()), add: lines.filter((l) => l.startsWith('+')).map((l) => l.slice(1).trim()) };
    });
  }

  /** Makes the switch's flows exactly the file's, in one OpenFlow bundle (atomic: all or none). */
  async replaceFlows(flowFile: string): Promise<void> {
    await this.#withFile(flowFile, (file) => this.#tool('ovs-ofctl', [...OPENFLOW, '--bundle', 'replace-flows', this.#switch, file]));
  }

  /** The switch's flows as OVS prints them (for people and tests; never parsed by Coffer). */
  async dumpFlows(): Promise<string> {
    return (await this.#tool('ovs-ofctl', [...OPENFLOW, '--no-stats', 'dump-flows', this.#switch])).stdout;
  }

  /** Adds or deletes one flow by hand (ovs-ofctl add-flow / del-flows --strict): for drift tests. */
  async addFlow(flow: string): Promise<void> {
    await this.#tool('ovs-ofctl', [...OPENFLOW, 'add-flow', this.#switch, flow]);
  }

  async delFlowStrict(flow: string): Promise<void> {
    await this.#tool('ovs-ofctl', [...OPENFLOW, '--strict', 'del-flows', this.#switch, flow]);
  }

  async #withFile<T>(content: string, fn: (file: string) => Promise<T>): Promise<T> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'coffer-flows-'));
    try {
      const file = path.join(dir, 'flows.txt');
      await writeFile(file, content, { mode: 0o600 });
      return await fn(file);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}
