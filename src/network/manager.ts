// NetworkManager: the only writer of network records. Each change is a short sequence of single-record atomic
// writes whose order makes every intermediate state safe (docs/network.md, "Persistence"): references are
// taken before the record that holds them is inserted (so a network or host being deleted cannot gain a
// port), unique things are keys (an IP claim is the record "<network>/<ip>", a forward is
// "<host>/<proto>/<port>"), and a failed step undoes the steps before it, so refused input changes nothing.
import { CofferError, ErrorCode, isCofferError } from '../errors.js';
import type { NetRecordKind, NetRecordStore } from '../metadata/netstore/index.js';
import { formatCidr, formatIp, overlaps, parseCidr, parseIp, contains, size } from './ipv4.js';
import {
  type EgressRule, type Endpoint, type Forward, type Host, type Network, type Policy, type Port, type NetState,
  checkEgress, checkForward, checkHost, checkInt, checkMac, checkName, checkNetwork, checkPolicy, checkPort, checkProto,
  FIRST_INSTANCE_OFPORT, gatewayOf, macFor, TUNNEL_OVERHEAD,
} from './model.js';

interface IndexEntry { name: string; vni: number; cidr: string }
const INDEX_ID = 'networks';
const MAX_OFPORT = 65279;

const parse = <T>(body: string): T => JSON.parse(body) as T;
const err = (code: ErrorCode, msg: string, details?: Record<string, unknown>): CofferError => new CofferError(code, msg, { details });

export interface AttachRequest {
  name: string;
  network: string;
  host: string;
  /** A fixed address; otherwise the lowest free one. */
  ip?: string;
  mac?: string;
  ifname?: string;
}

export class NetworkManager {
  readonly #s: NetRecordStore;

  constructor(store: NetRecordStore) {
    this.#s = store;
  }

  // ---- hosts ----

  /** Adds a host. Throws INVALID_ARGUMENT, ALREADY_EXISTS. */
  async addHost(input: Host): Promise<Host> {
    const h = checkHost(input);
    await this.#insert('host', h.name, h, `host ${h.name} already exists`);
    return h;
  }

  /** Removes a host that has no ports and forwards. Throws NOT_FOUND, CONFLICT (still in use). */
  async removeHost(name: string): Promise<void> {
    await this.#deleteUnreferenced('host', name, (refs) => `host ${name} still has ${refs} port(s) or forward(s) on it: detach them first`);
  }

  // ---- networks ----

  /**
   * Creates a network. The network index (one record listing every network's name, VNI and CIDR) is updated
   * by compare-and-set first, so two concurrent creates of overlapping networks cannot both pass the check.
   * Throws INVALID_ARGUMENT, ALREADY_EXISTS (name or VNI taken), CONFLICT (CIDR overlaps another network).
   */
  async createNetwork(input: Network): Promise<Network> {
    const cidr = checkNetwork(input);
    const n: Network = { name: input.name, vni: input.vni, cidr: formatCidr(cidr), mtu: input.mtu };
    for (let attempt = 0; ; attempt++) {
      const idx = await this.#index();
      const entries = parse<{ entries: IndexEntry[] }>(idx.body).entries;
      const same = entries.find((e) => e.name === n.name);
      if (same && (await this.#s.get('network', n.name))) throw err(ErrorCode.ALREADY_EXISTS, `network ${n.name} already exists`);
      // an entry without a record is a create that stopped half-way: this create replaces it
      const others = entries.filter((e) => e.name !== n.name);
      for (const e of others) {
        if (e.vni === n.vni) throw err(ErrorCode.ALREADY_EXISTS, `VNI ${n.vni} is already used by network ${e.name}`);
        if (overlaps(parseCidr(e.cidr), cidr)) throw err(ErrorCode.CONFLICT, `CIDR ${n.cidr} overlaps network ${e.name} (${e.cidr})`, { network: e.name });
      }
      const next = [...others, { name: n.name, vni: n.vni, cidr: n.cidr }].sort((a, b) => (a.name < b.name ? -1 : 1));
      try {
        await this.#s.update('netindex', INDEX_ID, idx.version, JSON.stringify({ entries: next }));
        break;
      } catch (e) {
        if (!isCofferError(e, ErrorCode.CONFLICT) || attempt > 50) throw e;
      }
    }
    await this.#insert('network', n.name, n, `network ${n.name} already exists`);
    return n;
  }

  /** Deletes a network with no ports, policies or egress rules. Throws NOT_FOUND, CONFLICT (still in use). */
  async deleteNetwork(name: string): Promise<void> {
    const rec = await this.#s.get('network', name);
    const idx = await this.#index();
    if (rec === null && !parse<{ entries: IndexEntry[] }>(idx.body).entries.some((e) => e.name === name)) {
      throw err(ErrorCode.NOT_FOUND, `unknown network ${name}`);
    }
    if (rec) await this.#deleteUnreferenced('network', name, (refs) => `network ${name} still has ${refs} port(s), policy(ies) or egress rule(s): remove them first`);
    for (let attempt = 0; ; attempt++) {
      const cur = await this.#index();
      const entries = parse<{ entries: IndexEntry[] }>(cur.body).entries;
      if (!entries.some((e) => e.name === name)) return;
      try {
        await this.#s.update('netindex', INDEX_ID, cur.version, JSON.stringify({ entries: entries.filter((e) => e.name !== name) }));
        return;
      } catch (e) {
        if (!isCofferError(e, ErrorCode.CONFLICT) || attempt > 50) throw e;
      }
    }
  }

  // ---- ports and IPAM ----

  /**
   * Attaches an instance to a network on a host: takes references on both, claims an address (the lowest free
   * one unless `ip` is given; network, gateway and broadcast are never handed out) and an OpenFlow port
   * number, then inserts the port. Concurrent attaches never get the same address: a claim is a key.
   * Throws NOT_FOUND (network, host), ALREADY_EXISTS (port name, address taken), CONFLICT (network full),
   * INVALID_ARGUMENT (MTU does not fit the host's underlay with the tunnel header, bad address).
   */
  async attachPort(req: AttachRequest): Promise<Port> {
    checkName('port', req.name);
    const net = await this.#need<Network>('network', req.network, `unknown network ${req.network}`);
    const host = await this.#need<Host>('host', req.host, `unknown host ${req.host}`);
    if (net.mtu + TUNNEL_OVERHEAD > host.mtu) {
      throw err(ErrorCode.INVALID_ARGUMENT, `network ${net.name} MTU ${net.mtu} + ${TUNNEL_OVERHEAD} bytes of tunnel header exceeds host ${host.name}'s underlay MTU ${host.mtu}`);
    }
    const cidr = parseCidr(net.cidr);
    const fixed = req.ip === undefined ? undefined : parseIp(req.ip, 'port address');
    if (fixed !== undefined && !this.#usable(cidr, fixed)) throw err(ErrorCode.INVALID_ARGUMENT, `${req.ip} is not a usable address of ${net.name} (${net.cidr})`);
    const mac = req.mac === undefined ? undefined : checkMac('port MAC', req.mac);
    if (await this.#s.get('port', req.name)) throw err(ErrorCode.ALREADY_EXISTS, `port ${req.name} already exists`);
    const undo: (() => Promise<unknown>)[] = [];
    try {
      await this.#ref('network', net.name, +1, `unknown network ${net.name}`);
      undo.push(() => this.#s.addRefs('network', net.name, -1));
      await this.#ref('host', host.name, +1, `unknown host ${host.name}`);
      undo.push(() => this.#s.addRefs('host', host.name, -1));
      const ip = fixed === undefined ? await this.#allocateIp(net.name, cidr, req.name) : await this.#claimIp(net.name, fixed, req.name);
      undo.push(() => this.#s.delete('ip', `${net.name}/${formatIp(ip)}`));
      const ofport = await this.#allocateOfport(host.name, req.name);
      undo.push(() => this.#s.delete('ofport', `${host.name}/${ofport}`));
      const port: Port = {
        name: req.name, network: net.name, host: host.name, ip: formatIp(ip), mac: mac ?? macFor(net.vni, ip), ofport,
        ifname: req.ifname ?? `cfp${ofport}`,
      };
      if (!/^[A-Za-z0-9_.-]{1,15}$/.test(port.ifname)) throw err(ErrorCode.INVALID_ARGUMENT, `interface name "${port.ifname}" must be 1-15 characters of A-Z a-z 0-9 _ . -`);
      await this.#insert('port', port.name, port, `port ${port.name} already exists`);
      return port;
    } catch (e) {
      for (const u of undo.reverse()) await u().catch(() => undefined);
      throw e;
    }
  }

  /** Detaches a port with no forwards and releases its address. Throws NOT_FOUND, CONFLICT. */
  async detachPort(name: string): Promise<void> {
    const port = await this.#need<Port>('port', name, `unknown port ${name}`);
    await this.#deleteUnreferenced('port', name, (refs) => `port ${name} still has ${refs} forward(s) or policy(ies) naming it: remove them first`);
    await this.#releaseClaim('ip', `${port.network}/${port.ip}`, name);
    await this.#releaseClaim('ofport', `${port.host}/${port.ofport}`, name);
    await this.#s.addRefs('network', port.network, -1).catch(ignoreNotFound);
    await this.#s.addRefs('host', port.host, -1).catch(ignoreNotFound);
  }

  // ---- policies, egress, forwards ----

  /** Adds an allow rule. Throws INVALID_ARGUMENT, NOT_FOUND (unknown network or port), ALREADY_EXISTS. */
  async addPolicy(p: Policy): Promise<Policy> {
    checkName('policy', p.name);
    checkProto(p.proto);
    this.#checkPorts(p.proto, p.ports);
    const refs = [p.from, p.to].map(endpointRef);
    return this.#withRefs(refs, async () => {
      await this.#insert('policy', p.name, p, `policy ${p.name} already exists`);
      return p;
    });
  }

  async removePolicy(name: string): Promise<void> {
    const p = await this.#need<Policy>('policy', name, `unknown policy ${name}`);
    if (await this.#s.delete('policy', name)) for (const [kind, id] of [p.from, p.to].map(endpointRef)) await this.#s.addRefs(kind, id, -1).catch(ignoreNotFound);
  }

  /** Adds an egress allow rule for a network. Throws INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS. */
  async addEgress(e: EgressRule): Promise<EgressRule> {
    checkName('egress rule', e.name);
    checkProto(e.proto);
    this.#checkPorts(e.proto, e.ports);
    const to = /\//.test(e.to) ? formatCidr(parseCidr(e.to, 'egress destination')) : `${formatIp(parseIp(e.to, 'egress destination'))}/32`;
    const rule: EgressRule = { ...e, to };
    return this.#withRefs([['network', e.network]], async () => {
      await this.#insert('egress', e.name, rule, `egress rule ${e.name} already exists`);
      return rule;
    });
  }

  async removeEgress(name: string): Promise<void> {
    const e = await this.#need<EgressRule>('egress', name, `unknown egress rule ${name}`);
    if (await this.#s.delete('egress', name)) await this.#s.addRefs('network', e.network, -1).catch(ignoreNotFound);
  }

  /**
   * Forwards host uplink address:hostPort to the port's targetPort. The port must sit on that host, which
   * must have an uplink. Throws NOT_FOUND, INVALID_ARGUMENT, CONFLICT (host port already forwarded).
   */
  async addForward(f: Forward): Promise<Forward> {
    if (f.proto !== 'tcp' && f.proto !== 'udp') throw err(ErrorCode.INVALID_ARGUMENT, `a forward's protocol must be tcp or udp, not ${String(f.proto)}`);
    checkInt('host port', f.hostPort, 1, 65535);
    checkInt('target port', f.targetPort, 1, 65535);
    const host = await this.#need<Host>('host', f.host, `unknown host ${f.host}`);
    if (!host.uplink) throw err(ErrorCode.INVALID_ARGUMENT, `host ${f.host} has no uplink: a forward needs the host's external address`);
    const port = await this.#need<Port>('port', f.port, `unknown port ${f.port}`);
    if (port.host !== f.host) throw err(ErrorCode.INVALID_ARGUMENT, `port ${f.port} is on host ${port.host}, not ${f.host}: a forward reaches ports on its own host`);
    const id = forwardId(f);
    const taken = await this.#s.get('forward', id);
    if (taken) throw err(ErrorCode.CONFLICT, `${f.proto} port ${f.hostPort} of host ${f.host} is already forwarded to port ${parse<Forward>(taken.body).port}`);
    return this.#withRefs([['port', f.port], ['host', f.host]], async () => {
      try {
        await this.#s.insert('forward', id, JSON.stringify(f));
      } catch (e) {
        if (isCofferError(e, ErrorCode.ALREADY_EXISTS)) throw err(ErrorCode.CONFLICT, `${f.proto} port ${f.hostPort} of host ${f.host} is already forwarded`);
        throw e;
      }
      return f;
    });
  }

  async removeForward(host: string, proto: string, hostPort: number): Promise<void> {
    const id = `${host}/${proto}/${hostPort}`;
    const f = await this.#need<Forward>('forward', id, `no forward on ${proto} port ${hostPort} of host ${host}`);
    if (await this.#s.delete('forward', id)) {
      await this.#s.addRefs('port', f.port, -1).catch(ignoreNotFound);
      await this.#s.addRefs('host', f.host, -1).catch(ignoreNotFound);
    }
  }

  // ---- reading ----

  /** The whole desired state, each record checked again (the store is not trusted to hold valid records). */
  async state(): Promise<NetState> {
    const all = async <T>(kind: NetRecordKind): Promise<T[]> => (await this.#s.list(kind)).map((r) => parse<T>(r.body));
    const hosts = (await all<Host>('host')).map(checkHost);
    const networks = await all<Network>('network');
    networks.forEach(checkNetwork);
    return {
      hosts, networks, ports: (await all<Port>('port')).map(checkPort), policies: (await all<Policy>('policy')).map(checkPolicy),
      egress: (await all<EgressRule>('egress')).map(checkEgress), forwards: (await all<Forward>('forward')).map(checkForward),
    };
  }

  // ---- helpers ----

  #usable(c: ReturnType<typeof parseCidr>, ip: number): boolean {
    return contains(c, ip) && ip !== c.base && ip !== gatewayOf(c) && ip !== c.base + size(c) - 1;
  }

  async #allocateIp(net: string, c: ReturnType<typeof parseCidr>, port: string): Promise<number> {
    const claimed = new Set((await this.#s.list('ip', `${net}/`)).map((r) => r.id.slice(net.length + 1)));
    for (let ip = gatewayOf(c) + 1; ip < c.base + size(c) - 1; ip++) {
      if (claimed.has(formatIp(ip))) continue;
      try {
        await this.#s.insert('ip', `${net}/${formatIp(ip)}`, JSON.stringify({ port }));
        return ip;
      } catch (e) {
        if (!isCofferError(e, ErrorCode.ALREADY_EXISTS)) throw e; // a concurrent attach took it: try the next
      }
    }
    throw err(ErrorCode.CONFLICT, `network ${net} has no free address left`);
  }

  async #claimIp(net: string, ip: number, port: string): Promise<number> {
    try {
      await this.#s.insert('ip', `${net}/${formatIp(ip)}`, JSON.stringify({ port }));
      return ip;
    } catch (e) {
      if (!isCofferError(e, ErrorCode.ALREADY_EXISTS)) throw e;
      const owner = await this.#s.get('ip', `${net}/${formatIp(ip)}`);
      throw err(ErrorCode.ALREADY_EXISTS, `address ${formatIp(ip)} of network ${net} is taken${owner ? ` by port ${parse<{ port: string }>(owner.body).port}` : ''}`);
    }
  }

  async #allocateOfport(host: string, port: string): Promise<number> {
    const claimed = new Set((await this.#s.list('ofport', `${host}/`)).map((r) => r.id.slice(host.length + 1)));
    for (let n = FIRST_INSTANCE_OFPORT; n <= MAX_OFPORT; n++) {
      if (claimed.has(String(n))) continue;
      try {
        await this.#s.insert('ofport', `${host}/${n}`, JSON.stringify({ port }));
        return n;
      } catch (e) {
        if (!isCofferError(e, ErrorCode.ALREADY_EXISTS)) throw e;
      }
    }
    throw err(ErrorCode.CONFLICT, `host ${host} has no free OpenFlow port number left`);
  }

  /** Deletes a claim only if it still belongs to `port` (a claim taken over by another port is left alone). */
  async #releaseClaim(kind: 'ip' | 'ofport', id: string, port: string): Promise<void> {
    const c = await this.#s.get(kind, id);
    if (c && parse<{ port: string }>(c.body).port === port) await this.#s.delete(kind, id, { version: c.version }).catch(() => undefined);
  }

  #checkPorts(proto: string, ports: readonly [number, number] | undefined): void {
    if (ports === undefined) return;
    if (proto !== 'tcp' && proto !== 'udp') throw err(ErrorCode.INVALID_ARGUMENT, `a port range needs protocol tcp or udp, not ${proto}`);
    const [lo, hi] = ports;
    checkInt('port', lo, 1, 65535);
    checkInt('port', hi, lo, 65535);
  }

  async #index() {
    for (;;) {
      const idx = await this.#s.get('netindex', INDEX_ID);
      if (idx) return idx;
      await this.#s.insert('netindex', INDEX_ID, JSON.stringify({ entries: [] })).catch((e: unknown) => {
        if (!isCofferError(e, ErrorCode.ALREADY_EXISTS)) throw e;
      });
    }
  }

  async #need<T>(kind: NetRecordKind, id: string, msg: string): Promise<T> {
    const r = await this.#s.get(kind, id);
    if (r === null) throw err(ErrorCode.NOT_FOUND, msg, { kind, id });
    return parse<T>(r.body);
  }

  async #insert(kind: NetRecordKind, id: string, value: unknown, existsMsg: string): Promise<void> {
    try {
      await this.#s.insert(kind, id, JSON.stringify(value));
    } catch (e) {
      if (isCofferError(e, ErrorCode.ALREADY_EXISTS)) throw err(ErrorCode.ALREADY_EXISTS, existsMsg);
      throw e;
    }
  }

  async #ref(kind: NetRecordKind, id: string, delta: number, missing: string): Promise<void> {
    try {
      await this.#s.addRefs(kind, id, delta);
    } catch (e) {
      if (isCofferError(e, ErrorCode.NOT_FOUND)) throw err(ErrorCode.NOT_FOUND, missing, { kind, id });
      throw e;
    }
  }

  /** Takes a reference on each record, runs `fn`, and gives the references back if anything fails. */
  async #withRefs<T>(refs: [NetRecordKind, string][], fn: () => Promise<T>): Promise<T> {
    const taken: [NetRecordKind, string][] = [];
    try {
      for (const [kind, id] of refs) {
        await this.#ref(kind, id, +1, `unknown ${kind} ${id}`);
        taken.push([kind, id]);
      }
      return await fn();
    } catch (e) {
      for (const [kind, id] of taken.reverse()) await this.#s.addRefs(kind, id, -1).catch(() => undefined);
      throw e;
    }
  }

  async #deleteUnreferenced(kind: NetRecordKind, id: string, inUse: (refs: number) => string): Promise<void> {
    try {
      if (!(await this.#s.delete(kind, id, { unreferenced: true }))) throw err(ErrorCode.NOT_FOUND, `unknown ${kind} ${id}`);
    } catch (e) {
      if (isCofferError(e, ErrorCode.CONFLICT)) throw err(ErrorCode.CONFLICT, inUse(Number(e.details?.refs ?? 0)), { kind, id });
      throw e;
    }
  }
}

export function forwardId(f: Pick<Forward, 'host' | 'proto' | 'hostPort'>): string {
  return `${f.host}/${f.proto}/${f.hostPort}`;
}

function endpointRef(e: Endpoint): [NetRecordKind, string] {
  if ('network' in e && typeof e.network === 'string') return ['network', e.network];
  if ('port' in e && typeof e.port === 'string') return ['port', e.port];
  throw err(ErrorCode.INVALID_ARGUMENT, 'a policy endpoint names a network or a port');
}

function ignoreNotFound(e: unknown): void {
  if (!isCofferError(e, ErrorCode.NOT_FOUND)) throw e;
}
