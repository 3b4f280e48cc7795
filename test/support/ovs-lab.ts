// A throwaway lab of simulated hosts for the network tests: each host is a network namespace running its own
// ovsdb-server and ovs-vswitchd (userspace datapath, private run dir), with an underlay bridge "cfphy"
// holding the host's underlay address and joined to the other hosts through a Linux bridge in a fabric
// namespace, so VXLAN between hosts is real. Instances and the outside world are further namespaces joined
// to a host's bridge by veth pairs. Every name carries a random prefix; stop() removes everything it made,
// killing only the daemons whose pidfiles it wrote.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Ovs } from '../../src/network/index.js';

const exec = promisify(execFile);
const TOOL = path.join(path.dirname(fileURLToPath(import.meta.url)), 'net-tool.mjs');
export const LAB_BRIDGE = 'br-coffer';
// ovs-vswitchd, ovsdb-server and ethtool live in /usr/sbin, which a non-login PATH may lack
const SBIN_ENV = { ...process.env, PATH: `${process.env.PATH ?? '/usr/bin:/bin'}:/usr/sbin:/sbin` };

async function sh(cmd: string, ...args: string[]): Promise<string> {
  try {
    return (await exec(cmd, args, { maxBuffer: 64 * 1024 * 1024, env: SBIN_ENV })).stdout;
  } catch (e) {
    const x = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${(x.stderr ?? x.message).trim()}`);
  }
}

export interface LabHost {
  readonly name: string;
  readonly ns: string;
  readonly rundir: string;
  readonly underlay: string;
  readonly ovs: Ovs;
}

export class OvsLab {
  readonly prefix = `cf${randomBytes(3).toString('hex')}`;
  readonly dir = `/tmp/coffer-ovs-${this.prefix}`;
  readonly hosts: LabHost[] = [];
  readonly #namespaces: string[] = [];
  readonly #children = new Set<ChildProcess>();
  #veth = 0;

  /** Starts `count` hosts (underlay 10.250.0.1, .2, ...). Throws with the reason when OVS cannot start. */
  static async start(count: number): Promise<OvsLab> {
    const lab = new OvsLab();
    try {
      await lab.#netns(`${lab.prefix}fab`);
      await sh('ip', '-n', `${lab.prefix}fab`, 'link', 'add', 'fab', 'type', 'bridge');
      await sh('ip', '-n', `${lab.prefix}fab`, 'link', 'set', 'fab', 'up');
      for (let i = 0; i < count; i++) await lab.#startHost(`h${i}`, `10.250.0.${i + 1}`);
      // let every vswitchd learn its peers' underlay MACs (it snoops ARP on cfphy), so no first packet waits
      for (const a of lab.hosts) for (const b of lab.hosts) if (a !== b) await sh('ip', 'netns', 'exec', a.ns, 'ping', '-n', '-c', '3', '-i', '0.2', '-W', '2', b.underlay);
      return lab;
    } catch (e) {
      await lab.stop();
      throw e;
    }
  }

  async #netns(name: string): Promise<void> {
    await sh('ip', 'netns', 'add', name);
    this.#namespaces.push(name);
    await sh('ip', '-n', name, 'link', 'set', 'lo', 'up');
  }

  /** A veth pair with `a` in namespace nsA and `b` in nsB, both up, offloads that break userspace TCP off. */
  async veth(nsA: string, a: string, nsB: string, b: string, opts: { macA?: string; mtuA?: number } = {}): Promise<void> {
    const n = this.#veth++;
    const ta = `${this.prefix}a${n}`;
    const tb = `${this.prefix}b${n}`;
    await sh('ip', 'link', 'add', ta, 'type', 'veth', 'peer', 'name', tb);
    await sh('ip', 'link', 'set', ta, 'netns', nsA);
    await sh('ip', 'link', 'set', tb, 'netns', nsB);
    await sh('ip', '-n', nsA, 'link', 'set', ta, 'name', a);
    await sh('ip', '-n', nsB, 'link', 'set', tb, 'name', b);
    if (opts.macA) await sh('ip', '-n', nsA, 'link', 'set', a, 'address', opts.macA);
    if (opts.mtuA) await sh('ip', '-n', nsA, 'link', 'set', a, 'mtu', String(opts.mtuA));
    for (const [ns, dev] of [[nsA, a], [nsB, b]] as const) {
      await sh('ip', '-n', ns, 'link', 'set', dev, 'up');
      await sh('ip', 'netns', 'exec', ns, 'ethtool', '-K', dev, 'tx', 'off', 'gro', 'off');
    }
  }

  async #startHost(name: string, underlay: string): Promise<void> {
    const ns = `${this.prefix}${name}`;
    const rundir = path.join(this.dir, name);
    await mkdir(rundir, { recursive: true });
    await this.#netns(ns);
    const db = path.join(rundir, 'conf.db');
    await sh('ovsdb-tool', 'create', db, '/usr/share/openvswitch/vswitch.ovsschema');
    const env = ['env', `OVS_RUNDIR=${rundir}`, `OVS_DBDIR=${rundir}`, `OVS_LOGDIR=${rundir}`];
    await sh('ip', 'netns', 'exec', ns, ...env, 'ovsdb-server', db, `--remote=punix:${path.join(rundir, 'db.sock')}`,
      `--pidfile=${path.join(rundir, 'ovsdb-server.pid')}`, '--detach', `--log-file=${path.join(rundir, 'ovsdb-server.log')}`);
    await sh('ip', 'netns', 'exec', ns, ...env, 'ovs-vswitchd', `unix:${path.join(rundir, 'db.sock')}`,
      `--pidfile=${path.join(rundir, 'ovs-vswitchd.pid')}`, '--detach', `--log-file=${path.join(rundir, 'ovs-vswitchd.log')}`);
    const vsctl = (...args: string[]): Promise<string> => sh('ovs-vsctl', `--db=unix:${path.join(rundir, 'db.sock')}`, '--timeout=10', ...args);
    // the underlay: bridge cfphy (normal switching) holding the host's underlay address, one veth to the fabric
    await this.veth(ns, 'cfund', `${this.prefix}fab`, `${name}und`);
    await sh('ip', '-n', `${this.prefix}fab`, 'link', 'set', `${name}und`, 'master', 'fab');
    await vsctl('add-br', 'cfphy', '--', 'set', 'bridge', 'cfphy', 'datapath_type=netdev', '--', 'add-port', 'cfphy', 'cfund');
    await sh('ip', '-n', ns, 'addr', 'add', `${underlay}/24`, 'dev', 'cfphy');
    await sh('ip', '-n', ns, 'link', 'set', 'cfphy', 'up');
    this.hosts.push({ name, ns, rundir, underlay, ovs: new Ovs({ bridge: LAB_BRIDGE, rundir, datapathType: 'netdev' }) });
  }

  /** An instance namespace plugged into `host`'s bridge as interface `ifname`, configured as the port says. */
  async instance(host: LabHost, port: { name: string; ip: string; mac: string; ifname: string }, prefixLen: number, gateway: string, mtu: number): Promise<string> {
    const ns = `${this.prefix}i${this.#namespaces.length}`;
    await this.#netns(ns);
    await this.veth(ns, 'eth0', host.ns, port.ifname, { macA: port.mac, mtuA: mtu });
    await sh('ip', '-n', ns, 'addr', 'add', `${port.ip}/${prefixLen}`, 'dev', 'eth0');
    await sh('ip', '-n', ns, 'route', 'add', 'default', 'via', gateway);
    return ns;
  }

  /** The outside world of `host`: a namespace on its uplink holding `addresses` (the first is primary). */
  async outside(host: LabHost, uplinkIfname: string, addresses: string[], prefixLen: number, mac: string): Promise<string> {
    const ns = `${this.prefix}out${this.#namespaces.length}`;
    await this.#netns(ns);
    await this.veth(ns, 'eth0', host.ns, uplinkIfname, { macA: mac });
    for (const a of addresses) await sh('ip', '-n', ns, 'addr', 'add', `${a}/${prefixLen}`, 'dev', 'eth0');
    return ns;
  }

  /** Three pings 0.2 s apart from a namespace; true when any reply came back (within 2 s of the last). */
  async ping(ns: string, ip: string, extra: string[] = []): Promise<boolean> {
    return sh('ip', 'netns', 'exec', ns, 'ping', '-n', '-c', '3', '-i', '0.2', '-W', '2', ...extra, ip).then(() => true, () => false);
  }

  /** A TCP echo server in `ns` (replies "label:<data>"), resolved once listening. */
  async serve(ns: string, port: number, label: string): Promise<void> {
    const child = this.#spawn(ns, ['serve', String(port), label]);
    await new Promise<void>((resolve, reject) => {
      child.stdout?.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`server in ${ns} exited with ${code}`)));
    });
  }

  /** One TCP exchange from `ns`: the reply, or null when it could not connect or got nothing within 4 s. */
  async tcp(ns: string, host: string, port: number, text = 'hi'): Promise<string | null> {
    return sh('ip', 'netns', 'exec', ns, process.execPath, TOOL, 'connect', host, String(port), text).then((s) => s, () => null);
  }

  /** A long-lived TCP connection from `ns` echoing a counter every 100 ms; lines() counts replies so far. */
  stream(ns: string, host: string, port: number): { lines(): number; closed(): boolean } {
    const child = this.#spawn(ns, ['stream', host, String(port)]);
    let count = 0;
    let closed = false;
    child.stdout?.on('data', (d: Buffer) => (count += String(d).split('\n').filter(Boolean).length));
    child.once('exit', () => (closed = true));
    return { lines: () => count, closed: () => closed };
  }

  #spawn(ns: string, args: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, TOOL, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    return child;
  }

  /** Stops what this lab started (by pid and pidfile only) and deletes its namespaces and files. Idempotent. */
  async stop(): Promise<void> {
    for (const c of this.#children) c.kill('SIGKILL');
    for (const h of this.hosts) {
      for (const d of ['ovs-vswitchd', 'ovsdb-server']) {
        const pid = Number((await readFile(path.join(h.rundir, `${d}.pid`), 'utf8').catch(() => '')).trim());
        if (pid > 0) {
          try {
            process.kill(pid, 'SIGTERM');
          } catch {
            /* already gone */
          }
        }
      }
    }
    for (const ns of this.#namespaces.splice(0).reverse()) await sh('ip', 'netns', 'del', ns).catch(() => undefined);
    await rm(this.dir, { recursive: true, force: true });
  }
}
