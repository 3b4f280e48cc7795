// The virtual network model: hosts, networks (VNI, CIDR, MTU), ports (an enclave or compute instance on a
// host), allow policies, per-network egress allowlists and ingress port-forwards; plus the checks every
// record passes before it is stored. Stored as JSON bodies in the network record store (docs/network.md).
import { CofferError, ErrorCode } from '../errors.js';
import { type Cidr, parseCidr, parseIp } from './ipv4.js';

export type Proto = 'tcp' | 'udp' | 'icmp' | 'any';
export const PROTOS: readonly Proto[] = ['tcp', 'udp', 'icmp', 'any'];

export interface Uplink {
  /** The host's external address: forwards listen on it, egress leaves from it (SNAT). */
  readonly address: string;
  /** MAC the bridge uses on the uplink (it answers ARP for `address` with it). */
  readonly mac: string;
  /** MAC of the next hop on the uplink (the external router). */
  readonly gatewayMac: string;
  /** The uplink's interface name on the bridge. */
  readonly ifname: string;
}

export interface Host {
  readonly name: string;
  /** Underlay address: the tunnel endpoint other hosts send this host's traffic to. */
  readonly address: string;
  /** Underlay MTU; every network on the host must fit in it with the tunnel header. */
  readonly mtu: number;
  readonly uplink?: Uplink;
}

export interface Network {
  readonly name: string;
  readonly vni: number;
  readonly cidr: string;
  readonly mtu: number;
}

export interface Port {
  readonly name: string;
  readonly network: string;
  readonly host: string;
  readonly ip: string;
  readonly mac: string;
  /** OpenFlow port number on the host's bridge (10 and up; 1 is the tunnel, 2 the uplink). */
  readonly ofport: number;
  /** Interface name on the host's bridge (the instance's veth or tap). */
  readonly ifname: string;
}

export type Endpoint = { readonly network: string } | { readonly port: string };

/** Allows connections opened from `from` to `to` (replies pass by conntrack). Everything else between networks is denied. */
export interface Policy {
  readonly name: string;
  readonly from: Endpoint;
  readonly to: Endpoint;
  readonly proto: Proto;
  /** Destination port range [lo, hi] for tcp/udp; absent means every port. */
  readonly ports?: readonly [number, number];
}

/** Lets instances of `network` open connections to `to` outside every virtual network (leaving by SNAT). */
export interface EgressRule {
  readonly name: string;
  readonly network: string;
  readonly to: string;
  readonly proto: Proto;
  readonly ports?: readonly [number, number];
}

/** Ingress: `host`'s uplink address:hostPort → the port's ip:targetPort (DNAT; tiCrypt's proxied SSH). */
export interface Forward {
  readonly host: string;
  readonly proto: 'tcp' | 'udp';
  readonly hostPort: number;
  readonly port: string;
  readonly targetPort: number;
}

/** The whole desired state, each list sorted by id: what the compiler reads. */
export interface NetState {
  readonly hosts: readonly Host[];
  readonly networks: readonly Network[];
  readonly ports: readonly Port[];
  readonly policies: readonly Policy[];
  readonly egress: readonly EgressRule[];
  readonly forwards: readonly Forward[];
}

/** Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14): what a tunnelled frame adds to the inner MTU. */
export const TUNNEL_OVERHEAD = 50;
export const FIRST_INSTANCE_OFPORT = 10;
export const TUNNEL_OFPORT = 1;
export const UPLINK_OFPORT = 2;

const invalid = (msg: string): CofferError => new CofferError(ErrorCode.INVALID_ARGUMENT, msg);

/** Names become parts of record ids ("net/ip"), so they never hold "/". */
export function checkName(what: string, name: string): string {
  if (!/^[a-z0-9][a-z0-9_.-]{0,62}$/.test(name)) throw invalid(`${what} name "${name}" must be 1-63 characters of a-z 0-9 _ . - starting with a letter or digit`);
  return name;
}

export function checkMac(what: string, mac: string): string {
  const m = mac.toLowerCase();
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(m)) throw invalid(`${what} "${mac}" is not a MAC address like 02:00:00:00:00:01`);
  if (parseInt(m.slice(0, 2), 16) & 1) throw invalid(`${what} "${mac}" is a multicast address`);
  return m;
}

export function checkInt(what: string, n: number, lo: number, hi: number): number {
  if (!Number.isSafeInteger(n) || n < lo || n > hi) throw invalid(`${what} must be a whole number from ${lo} to ${hi}, got ${n}`);
  return n;
}

export function checkProto(p: string): Proto {
  if (!(PROTOS as readonly string[]).includes(p)) throw invalid(`protocol "${p}" must be one of ${PROTOS.join(', ')}`);
  return p as Proto;
}

/** "22" or "8000-8100" → [lo, hi]; only tcp and udp take ports. */
export function parsePortRange(proto: Proto, text: string | undefined): readonly [number, number] | undefined {
  if (text === undefined) return undefined;
  if (proto !== 'tcp' && proto !== 'udp') throw invalid(`a port range needs protocol tcp or udp, not ${proto}`);
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  if (!m) throw invalid(`port range "${text}" must look like 22 or 8000-8100`);
  const lo = checkInt('port', Number(m[1]), 1, 65535);
  const hi = checkInt('port', Number(m[2] ?? m[1]), 1, 65535);
  if (hi < lo) throw invalid(`port range "${text}" ends before it starts`);
  return [lo, hi];
}

export function checkHost(h: Host): Host {
  checkName('host', h.name);
  parseIp(h.address, 'host address');
  checkInt('host MTU', h.mtu, 576, 65535);
  if (h.uplink) {
    parseIp(h.uplink.address, 'uplink address');
    const ifname = h.uplink.ifname;
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(ifname)) throw invalid(`uplink interface name "${ifname}" must be 1-15 characters of A-Z a-z 0-9 _ . -`);
    return { ...h, uplink: { address: h.uplink.address, mac: checkMac('uplink MAC', h.uplink.mac), gatewayMac: checkMac('uplink gateway MAC', h.uplink.gatewayMac), ifname } };
  }
  return h;
}

/** Checks a network and returns its CIDR: at least one usable address besides network, gateway and broadcast. */
export function checkNetwork(n: Network): Cidr {
  checkName('network', n.name);
  checkInt('VNI', n.vni, 1, 0xffffff);
  checkInt('network MTU', n.mtu, 576, 9000);
  const cidr = parseCidr(n.cidr, 'network CIDR');
  if (cidr.prefix > 29) throw invalid(`network CIDR ${n.cidr} is too small: /29 or larger leaves room for the gateway and broadcast`);
  if (cidr.prefix < 8) throw invalid(`network CIDR ${n.cidr} is too large: /8 at most`);
  return cidr;
}

/** The gateway address of a network (its first address after the network address). */
export function gatewayOf(c: Cidr): number {
  return c.base + 1;
}

/** Deterministic MAC for a port: locally administered, from the VNI's low byte and the IPv4 address. */
export function macFor(vni: number, ip: number): string {
  const bytes = [0x02, vni & 0xff, ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** The virtual router's MAC: every network's gateway answers ARP with it. */
export const ROUTER_MAC = '02:00:00:00:00:01';

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

/**
 * Checks a stored port again before it is compiled (the metadata store is untrusted: a crafted address or MAC
 * must never become flow syntax). Throws INVALID_ARGUMENT.
 */
export function checkPort(p: Port): Port {
  checkName('port', p.name);
  checkName('network', p.network);
  checkName('host', p.host);
  parseIp(p.ip, 'port address');
  checkMac('port MAC', p.mac);
  checkInt('OpenFlow port', p.ofport, FIRST_INSTANCE_OFPORT, 65279);
  if (!IFNAME.test(p.ifname)) throw invalid(`interface name "${p.ifname}" must be 1-15 characters of A-Z a-z 0-9 _ . -`);
  return p;
}

function checkEndpoint(e: Endpoint): void {
  if ('network' in e) checkName('network', e.network);
  else if ('port' in e) checkName('port', e.port);
  else throw invalid('a policy endpoint names a network or a port');
}

function checkRange(proto: Proto, ports: readonly [number, number] | undefined): void {
  if (ports === undefined) return;
  if (proto !== 'tcp' && proto !== 'udp') throw invalid(`a port range needs protocol tcp or udp, not ${proto}`);
  if (!Array.isArray(ports) || ports.length !== 2) throw invalid('a port range is [lo, hi]');
  checkInt('port', ports[0], 1, 65535);
  checkInt('port', ports[1], ports[0], 65535);
}

export function checkPolicy(p: Policy): Policy {
  checkName('policy', p.name);
  checkEndpoint(p.from);
  checkEndpoint(p.to);
  checkRange(checkProto(p.proto), p.ports);
  return p;
}

export function checkEgress(e: EgressRule): EgressRule {
  checkName('egress rule', e.name);
  checkName('network', e.network);
  parseCidr(e.to, 'egress destination');
  checkRange(checkProto(e.proto), e.ports);
  return e;
}

export function checkForward(f: Forward): Forward {
  checkName('host', f.host);
  checkName('port', f.port);
  if (f.proto !== 'tcp' && f.proto !== 'udp') throw invalid(`a forward's protocol must be tcp or udp, not ${String(f.proto)}`);
  checkInt('host port', f.hostPort, 1, 65535);
  checkInt('target port', f.targetPort, 1, 65535);
  return f;
}
