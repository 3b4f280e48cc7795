// The flow compiler: desired state (NetState) → each host's bridge ports and OpenFlow tables. Pure and
// deterministic: the same state gives the same text byte for byte (flows sorted by table, priority, text), so
// `ovs-ofctl diff-flows` against the switch shows exactly what a change touches. The pipeline, table by
// table, is documented in docs/network.md; the table numbers below are its contract.
import { createHash } from 'node:crypto';
import { CofferError, ErrorCode } from '../errors.js';
import { formatIp, parseCidr, portRangeMatches } from './ipv4.js';
import {
  type Host, type NetState, type Network, type Policy, type Port, type Proto,
  gatewayOf, ROUTER_MAC, TUNNEL_OFPORT, TUNNEL_OVERHEAD, UPLINK_OFPORT,
} from './model.js';

export const T = Object.freeze({
  CLASSIFY: 0, ARP: 10, CT: 20, ACL: 21, UPLINK_IN: 30, UPLINK_CT: 31, ROUTE: 40, UNNAT_DELIVER: 45, TUNNEL_CT: 50, TUNNEL_ACL: 51, TUNNEL_DELIVER: 55,
} as const);

/** The conntrack zone every Coffer flow uses (addresses are unique across networks: CIDRs never overlap). */
export const CT_ZONE = 1;
/** ct_mark of a connection committed on arrival from a tunnel (the sending host's ACL admitted it). */
export const MARK_TUNNEL = 1;

export interface BridgePort {
  readonly ifname: string;
  readonly ofport: number;
  readonly type: 'system' | 'vxlan';
  readonly options?: Readonly<Record<string, string>>;
  readonly mtu?: number;
}

export interface HostFlows {
  readonly host: string;
  readonly ports: readonly BridgePort[];
  /** ovs-ofctl flow lines (OpenFlow 1.5 syntax), sorted. */
  readonly flows: readonly string[];
}

/** Compiles every host. Throws NETWORK when the state is inconsistent (a dangling reference, an MTU that does not fit). */
export function compile(state: NetState): Map<string, HostFlows> {
  const ctx = new Context(state);
  const out = new Map<string, HostFlows>();
  for (const h of state.hosts) out.set(h.name, ctx.host(h));
  return out;
}

/** Renders one host's flows as the file `ovs-ofctl replace-flows` and `diff-flows` read. */
export function flowFile(h: HostFlows): string {
  return h.flows.length ? `${h.flows.join('\n')}\n` : '';
}

/** A rule's conntrack mark: 32 bits of SHA-256 of its identity, never 0 (untracked) or 1 (MARK_TUNNEL). */
export function ruleMark(kind: string, id: string): number {
  const n = createHash('sha256').update(`${kind}\0${id}`).digest().readUInt32BE(0);
  return (n % 0xfffffffe) + 2;
}

const hex = (n: number): string => `0x${n.toString(16)}`;
const fail = (msg: string): CofferError => new CofferError(ErrorCode.NETWORK, msg);

function protoMatches(proto: Proto, ports: readonly [number, number] | undefined): string[] {
  const p = proto === 'any' ? 'ip' : proto;
  if (!ports || (proto !== 'tcp' && proto !== 'udp')) return [p];
  return portRangeMatches(ports[0], ports[1]).map((m) => `${p},tp_dst=${m}`);
}

function arpResponder(mac: string, ip: string): string {
  return (
    `move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:${mac}->eth_src,set_field:2->arp_op,` +
    `move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],` +
    `set_field:${mac}->arp_sha,set_field:${ip}->arp_spa,IN_PORT`
  );
}

class Context {
  readonly nets = new Map<string, Network>();
  readonly hosts = new Map<string, Host>();
  readonly portsByNet = new Map<string, Port[]>();
  readonly portsByHost = new Map<string, Port[]>();
  readonly ports = new Map<string, Port>();
  readonly marks = new Map<number, string>();
  readonly hostsOfNet = new Map<string, Set<string>>();

  readonly s: NetState;
  /** Per-port flow lines that are the same on every host (built once, not once per host). */
  readonly #lines = new Map<Port, { arp: string; l2Local: string; l2Remote: string; l3Local: string; l3Remote: string }>();

  constructor(input: NetState) {
    // canonical order once: every list by its id, so the output never depends on the order of the input
    const byName = <X extends { name: string }>(xs: readonly X[]): X[] => [...xs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const fid = (f: NetState['forwards'][number]): string => `${f.host}/${f.proto}/${f.hostPort}`;
    const s: NetState = (this.s = {
      hosts: byName(input.hosts), networks: byName(input.networks), ports: byName(input.ports), policies: byName(input.policies), egress: byName(input.egress),
      forwards: [...input.forwards].sort((a, b) => (fid(a) < fid(b) ? -1 : fid(a) > fid(b) ? 1 : 0)),
    });
    for (const n of s.networks) {
      this.nets.set(n.name, n);
      this.portsByNet.set(n.name, []);
    }
    for (const h of s.hosts) {
      this.hosts.set(h.name, h);
      this.portsByHost.set(h.name, []);
    }
    for (const p of s.ports) {
      const net = this.nets.get(p.network);
      const host = this.hosts.get(p.host);
      if (!net || !host) throw fail(`port ${p.name} names ${net ? 'host' : 'network'} ${net ? p.host : p.network}, which does not exist`);
      if (net.mtu + TUNNEL_OVERHEAD > host.mtu) throw fail(`network ${net.name} MTU ${net.mtu} does not fit host ${host.name}'s underlay MTU ${host.mtu} with the ${TUNNEL_OVERHEAD}-byte tunnel header`);
      this.ports.set(p.name, p);
      this.portsByNet.get(p.network)?.push(p);
      this.portsByHost.get(p.host)?.push(p);
    }
    const rules: [string, string][] = [
      ...s.networks.map((n): [string, string] => ['network', n.name]),
      ...s.policies.map((p): [string, string] => ['policy', p.name]),
      ...s.egress.map((e): [string, string] => ['egress', e.name]),
      ...s.forwards.map((f): [string, string] => ['forward', `${f.host}/${f.proto}/${f.hostPort}`]),
    ];
    for (const [kind, id] of rules) {
      const m = ruleMark(kind, id);
      const other = this.marks.get(m);
      if (other !== undefined) throw fail(`${kind} ${id} and ${other} hash to the same conntrack mark ${hex(m)}: rename one`);
      this.marks.set(m, `${kind} ${id}`);
    }
  }

  /** A policy endpoint → the source/destination match (a CIDR or one address), or a NETWORK error. */
  endpoint(policy: Policy, e: Policy['from']): { match: string; net: string; hosts: Set<string> } {
    if ('network' in e) {
      const n = this.nets.get(e.network);
      if (!n) throw fail(`policy ${policy.name} names unknown network ${e.network}`);
      let hosts = this.hostsOfNet.get(n.name);
      if (!hosts) this.hostsOfNet.set(n.name, (hosts = new Set((this.portsByNet.get(n.name) ?? []).map((p) => p.host))));
      return { match: n.cidr, net: n.name, hosts };
    }
    const p = this.ports.get(e.port);
    if (!p) throw fail(`policy ${policy.name} names unknown port ${e.port}`);
    return { match: `${p.ip}/32`, net: p.network, hosts: new Set([p.host]) };
  }

  /** Port q's lines for tables 10 (ARP answer) and 40 (L2, L3 delivery: locally, or into the tunnel to q's host with q's VNI). */
  lines(q: Port): { arp: string; l2Local: string; l2Remote: string; l3Local: string; l3Remote: string } {
    let l = this.#lines.get(q);
    if (l === undefined) {
      const vni = (this.nets.get(q.network) as Network).vni;
      const remote = `set_field:${vni}->tun_id,set_field:${(this.hosts.get(q.host) as Host).address}->tun_dst,output:${TUNNEL_OFPORT}`;
      const l2 = `table=${T.ROUTE},priority=200,metadata=${vni},dl_dst=${q.mac} actions=`;
      const l3 = `table=${T.ROUTE},priority=150,ip,dl_dst=${ROUTER_MAC},nw_dst=${q.ip} actions=set_field:${ROUTER_MAC}->eth_src,set_field:${q.mac}->eth_dst,dec_ttl,`;
      l = {
        arp: `table=${T.ARP},priority=100,metadata=${vni},arp,arp_op=1,arp_tpa=${q.ip} actions=${arpResponder(q.mac, q.ip)}`,
        l2Local: `${l2}output:${q.ofport}`, l2Remote: `${l2}${remote}`, l3Local: `${l3}output:${q.ofport}`, l3Remote: `${l3}${remote}`,
      };
      this.#lines.set(q, l);
    }
    return l;
  }

  host(h: Host): HostFlows {
    // flows go into buckets by (table, priority); inside a bucket they follow the canonical input order
    const buckets = new Map<number, string[]>();
    const seen = new Set<string>();
    const push = (table: number, priority: number, line: string): void => {
      if (seen.has(line)) return;
      seen.add(line);
      const key = table * 0x10000 + (0xffff - priority);
      const b = buckets.get(key);
      if (b) b.push(line);
      else buckets.set(key, [line]);
    };
    const add = (table: number, priority: number, match: string, actions: string): void =>
      push(table, priority, `table=${table},priority=${priority}${match ? `,${match}` : ''} actions=${actions}`);
    const local = this.portsByHost.get(h.name) ?? [];
    const localNetNames = new Set(local.map((p) => p.network));
    const localNets = this.s.networks.filter((n) => localNetNames.has(n.name));
    const live: number[] = []; // marks of the rules this host commits connections under
    const uplinkLive: number[] = []; // of those, the ones whose connections cross the uplink (egress, forwards)

    // 0 CLASSIFY: port security (a port sends only from its own MAC and IP), tunnel by VNI, uplink
    for (const p of local) {
      const vni = (this.nets.get(p.network) as Network).vni;
      add(T.CLASSIFY, 100, `in_port=${p.ofport},dl_src=${p.mac},ip,nw_src=${p.ip}`, `set_field:${vni}->metadata,goto_table:${T.CT}`);
      add(T.CLASSIFY, 100, `in_port=${p.ofport},dl_src=${p.mac},arp,arp_spa=${p.ip},arp_sha=${p.mac}`, `set_field:${vni}->metadata,goto_table:${T.ARP}`);
    }
    for (const n of localNets) add(T.CLASSIFY, 100, `in_port=${TUNNEL_OFPORT},tun_id=${n.vni}`, `set_field:${n.vni}->metadata,goto_table:${T.TUNNEL_CT}`);
    if (h.uplink) add(T.CLASSIFY, 100, `in_port=${UPLINK_OFPORT}`, `goto_table:${T.UPLINK_IN}`);
    add(T.CLASSIFY, 0, '', 'drop');

    // 10 ARP: answered by the switch for the gateway and every port of the network; nothing is flooded
    for (const n of localNets) {
      const gw = formatIp(gatewayOf(parseCidr(n.cidr)));
      add(T.ARP, 100, `metadata=${n.vni},arp,arp_op=1,arp_tpa=${gw}`, arpResponder(ROUTER_MAC, gw));
      for (const q of this.portsByNet.get(n.name) ?? []) push(T.ARP, 100, this.lines(q).arp);
    }
    add(T.ARP, 0, '', 'drop');

    // 20 CT, 21 ACL: from an instance; established traffic passes while the rule that admitted it exists
    add(T.CT, 100, 'ip', `ct(table=${T.ACL},zone=${CT_ZONE},nat)`);
    add(T.CT, 0, '', 'drop');
    add(T.ACL, 300, 'ct_state=+inv+trk,ip', 'drop');
    const commit = (m: number, nat = ''): string => `ct(commit,zone=${CT_ZONE}${nat},exec(set_field:${hex(m)}->ct_mark)),goto_table:${T.ROUTE}`;
    for (const n of localNets) {
      const m = ruleMark('network', n.name);
      live.push(m);
      add(T.ACL, 150, `ct_state=+new+trk,ip,nw_src=${n.cidr},nw_dst=${n.cidr}`, commit(m));
    }
    for (const p of this.s.policies) {
      const from = this.endpoint(p, p.from);
      const to = this.endpoint(p, p.to);
      if (!from.hosts.has(h.name)) continue; // evaluated where the connection starts
      const m = ruleMark('policy', p.name);
      live.push(m);
      for (const pm of protoMatches(p.proto, p.ports)) add(T.ACL, 120, `ct_state=+new+trk,${pm},nw_src=${from.match},nw_dst=${to.match}`, commit(m));
    }
    // egress never reaches a virtual network: only the two rules above admit traffic between them
    for (const n of this.s.networks) add(T.ACL, 115, `ct_state=+new+trk,ip,nw_dst=${n.cidr}`, 'drop');
    if (h.uplink) {
      for (const e of this.s.egress) {
        const n = this.nets.get(e.network);
        if (!n) throw fail(`egress rule ${e.name} names unknown network ${e.network}`);
        if (!localNets.includes(n)) continue;
        const m = ruleMark('egress', e.name);
        live.push(m);
        uplinkLive.push(m);
        for (const pm of protoMatches(e.proto, e.ports)) add(T.ACL, 110, `ct_state=+new+trk,${pm},nw_src=${n.cidr},nw_dst=${e.to}`, commit(m, `,nat(src=${h.uplink.address})`));
      }
    }
    const forwards = this.s.forwards.filter((fw) => fw.host === h.name);
    for (const fw of forwards) {
      live.push(ruleMark('forward', `${fw.host}/${fw.proto}/${fw.hostPort}`));
      uplinkLive.push(ruleMark('forward', `${fw.host}/${fw.proto}/${fw.hostPort}`));
    }
    for (const m of [MARK_TUNNEL, ...live]) add(T.ACL, 200, `ct_state=-new+trk,ct_mark=${hex(m)},ip`, `goto_table:${T.ROUTE}`);
    add(T.ACL, 0, '', 'drop');

    // 40 ROUTE: L2 within a network, L3 through the virtual router to any port, else out the uplink
    for (const n of localNets) for (const q of this.portsByNet.get(n.name) ?? []) push(T.ROUTE, 200, q.host === h.name ? this.lines(q).l2Local : this.lines(q).l2Remote);
    for (const q of this.s.ports) push(T.ROUTE, 150, q.host === h.name ? this.lines(q).l3Local : this.lines(q).l3Remote);
    for (const n of this.s.networks) add(T.ROUTE, 120, `ip,nw_dst=${n.cidr}`, 'drop');
    if (h.uplink) add(T.ROUTE, 100, `ip,dl_dst=${ROUTER_MAC}`, `set_field:${h.uplink.mac}->eth_src,set_field:${h.uplink.gatewayMac}->eth_dst,dec_ttl,output:${UPLINK_OFPORT}`);
    add(T.ROUTE, 0, '', 'drop');

    // 30, 31, 45 UPLINK: ARP for the host's address, replies to egress (un-SNAT), forwards (DNAT)
    if (h.uplink) {
      const u = h.uplink;
      add(T.UPLINK_IN, 100, `arp,arp_op=1,arp_tpa=${u.address}`, arpResponder(u.mac, u.address));
      add(T.UPLINK_IN, 100, `ip,nw_dst=${u.address}`, `ct(table=${T.UPLINK_CT},zone=${CT_ZONE},nat)`);
      add(T.UPLINK_IN, 0, '', 'drop');
      add(T.UPLINK_CT, 300, 'ct_state=+inv+trk,ip', 'drop');
      for (const m of uplinkLive) add(T.UPLINK_CT, 200, `ct_state=-new+trk,ct_mark=${hex(m)},ip`, `goto_table:${T.UNNAT_DELIVER}`);
      for (const fw of forwards) {
        const q = this.ports.get(fw.port);
        if (!q || q.host !== h.name) throw fail(`forward ${fw.host}/${fw.proto}/${fw.hostPort} names port ${fw.port}, which is not on host ${h.name}`);
        const m = ruleMark('forward', `${fw.host}/${fw.proto}/${fw.hostPort}`);
        add(T.UPLINK_CT, 100, `ct_state=+new+trk,${fw.proto},tp_dst=${fw.hostPort}`,
          `ct(commit,zone=${CT_ZONE},nat(dst=${q.ip}:${fw.targetPort}),exec(set_field:${hex(m)}->ct_mark)),set_field:${ROUTER_MAC}->eth_src,set_field:${q.mac}->eth_dst,output:${q.ofport}`);
      }
      add(T.UPLINK_CT, 0, '', 'drop');
      for (const q of local) add(T.UNNAT_DELIVER, 100, `ip,nw_dst=${q.ip}`, `set_field:${ROUTER_MAC}->eth_src,set_field:${q.mac}->eth_dst,output:${q.ofport}`);
      add(T.UNNAT_DELIVER, 0, '', 'drop');
    }

    // 50, 51, 55 TUNNEL: admitted by the sending host's ACL; committed here so replies are established
    add(T.TUNNEL_CT, 100, 'ip', `ct(table=${T.TUNNEL_ACL},zone=${CT_ZONE})`);
    add(T.TUNNEL_CT, 0, '', 'drop');
    add(T.TUNNEL_ACL, 300, 'ct_state=+inv+trk,ip', 'drop');
    for (const m of [MARK_TUNNEL, ...live]) add(T.TUNNEL_ACL, 200, `ct_state=-new+trk,ct_mark=${hex(m)},ip`, `goto_table:${T.TUNNEL_DELIVER}`);
    add(T.TUNNEL_ACL, 100, 'ct_state=+new+trk,ip', `ct(commit,zone=${CT_ZONE},exec(set_field:${hex(MARK_TUNNEL)}->ct_mark)),goto_table:${T.TUNNEL_DELIVER}`);
    add(T.TUNNEL_ACL, 0, '', 'drop');
    for (const q of local) add(T.TUNNEL_DELIVER, 100, `metadata=${(this.nets.get(q.network) as Network).vni},dl_dst=${q.mac}`, `output:${q.ofport}`);
    add(T.TUNNEL_DELIVER, 0, '', 'drop');

    const lines: string[] = [];
    for (const key of [...buckets.keys()].sort((a, b) => a - b)) for (const line of buckets.get(key) as string[]) lines.push(line);
    return { host: h.name, ports: this.bridgePorts(h, local), flows: lines };
  }

  bridgePorts(h: Host, local: Port[]): BridgePort[] {
    const ports: BridgePort[] = [
      { ifname: 'cftun', ofport: TUNNEL_OFPORT, type: 'vxlan', options: { remote_ip: 'flow', key: 'flow', local_ip: h.address } },
    ];
    if (h.uplink) ports.push({ ifname: h.uplink.ifname, ofport: UPLINK_OFPORT, type: 'system' });
    for (const p of local) ports.push({ ifname: p.ifname, ofport: p.ofport, type: 'system', mtu: (this.nets.get(p.network) as Network).mtu });
    return ports.sort((a, b) => a.ofport - b.ofport);
  }
}

