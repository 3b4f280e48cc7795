// `coffer net …`: the virtual network manager (docs/network.md). Objects: host, network, port, policy, egress,
// forward (each add/rm, stored in the metadata store); `show` prints the stored state, `flows` the compiled
// flows of a host, `plan` the flows to add and remove against a host's switch, `apply` installs them as one
// OpenFlow bundle under the host's apply lock. Run plan/apply on the host whose Open vSwitch they drive.
import { Option, type Command } from 'commander';
import { metadataConfig } from '../../config.js';
import { CofferError, ErrorCode } from '../../errors.js';
import { openNetRecordStore, type NetRecordStore } from '../../metadata/netstore/index.js';
import {
  applyHost, checkProto, compileHost, type Endpoint, NetworkManager, Ovs, parsePortRange, planHost,
} from '../../network/index.js';
import { dataDirOption, intFlag, jsonOption, mongoUriOption } from '../options.js';
import { print } from '../output.js';

interface StoreFlags { dataDir: string; mongodbUri?: string; json?: boolean }
interface OvsFlags extends StoreFlags { host: string; bridge: string; ovsRundir?: string; datapath: 'netdev' | 'system' }

async function withManager<T>(opts: StoreFlags, fn: (m: NetworkManager, s: NetRecordStore) => Promise<T>): Promise<T> {
  const store = await openNetRecordStore(metadataConfig(opts.dataDir, opts.mongodbUri));
  try {
    return await fn(new NetworkManager(store), store);
  } finally {
    await store.close();
  }
}

/** Adds the store flags and --json to a leaf command. */
function leaf(c: Command): Command {
  return c.addOption(dataDirOption()).addOption(mongoUriOption()).addOption(jsonOption());
}

function endpoint(flag: string, text: string): Endpoint {
  const m = /^(network|port):(.+)$/.exec(text);
  if (!m) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `${flag} must be network:NAME or port:NAME, got "${text}"`);
  return m[1] === 'network' ? { network: m[2] as string } : { port: m[2] as string };
}

const ovsOf = (o: OvsFlags): Ovs => new Ovs({ bridge: o.bridge, rundir: o.ovsRundir, datapathType: o.datapath });

function ovsLeaf(c: Command): Command {
  return leaf(c)
    .requiredOption('--host <name>', 'the host whose switch to drive (this machine)')
    .option('--bridge <name>', 'integration bridge', 'br-coffer')
    .addOption(new Option('--ovs-rundir <dir>', 'Open vSwitch run directory (db.sock, <bridge>.mgmt)').env('OVS_RUNDIR'))
    .addOption(new Option('--datapath <type>', 'datapath type of a bridge apply creates').choices(['system', 'netdev']).default('system'));
}

export function register(program: Command): void {
  const net = program.command('net').description('virtual network manager: hosts, networks, ports, policies, egress, forwards; plan/apply Open vSwitch flows');

  const host = net.command('host').description('hosts (hypervisors) of the virtual network');
  leaf(host.command('add').argument('<name>'))
    .description('add a host')
    .requiredOption('--address <ip>', 'underlay address (tunnel endpoint)')
    .option('--mtu <n>', 'underlay MTU', '1500')
    .option('--uplink-address <ip>', 'external address (forwards and egress SNAT)')
    .option('--uplink-mac <mac>', "the bridge's MAC on the uplink")
    .option('--uplink-gateway-mac <mac>', 'MAC of the next hop on the uplink')
    .option('--uplink-ifname <name>', 'uplink interface on the bridge', 'cfuplink')
    .action(async (name: string, o: StoreFlags & { address: string; mtu: string; uplinkAddress?: string; uplinkMac?: string; uplinkGatewayMac?: string; uplinkIfname: string }) => {
      const parts = [o.uplinkAddress, o.uplinkMac, o.uplinkGatewayMac];
      if (parts.some((p) => p !== undefined) && parts.some((p) => p === undefined)) {
        throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'an uplink needs --uplink-address, --uplink-mac and --uplink-gateway-mac together');
      }
      const uplink = o.uplinkAddress ? { address: o.uplinkAddress, mac: o.uplinkMac as string, gatewayMac: o.uplinkGatewayMac as string, ifname: o.uplinkIfname } : undefined;
      const h = await withManager(o, (m) => m.addHost({ name, address: o.address, mtu: intFlag('--mtu', o.mtu, 576, 65535), ...(uplink ? { uplink } : {}) }));
      print(o, h, () => `host ${h.name} added (${h.address})`);
    });
  leaf(host.command('rm').argument('<name>')).description('remove a host without ports').action(async (name: string, o: StoreFlags) => {
    await withManager(o, (m) => m.removeHost(name));
    print(o, { removed: name }, () => `host ${name} removed`);
  });

  const network = net.command('network').description('virtual networks (VNI, CIDR, MTU)');
  leaf(network.command('create').argument('<name>'))
    .description('create a network')
    .requiredOption('--vni <n>', 'VXLAN network identifier (1-16777215)')
    .requiredOption('--cidr <cidr>', 'IPv4 block, e.g. 10.10.0.0/24 (its first address is the gateway)')
    .option('--mtu <n>', 'MTU inside the network (underlay MTU minus 50 at most)', '1450')
    .action(async (name: string, o: StoreFlags & { vni: string; cidr: string; mtu: string }) => {
      const n = await withManager(o, (m) => m.createNetwork({ name, vni: intFlag('--vni', o.vni, 1, 0xffffff), cidr: o.cidr, mtu: intFlag('--mtu', o.mtu, 576, 9000) }));
      print(o, n, () => `network ${n.name} created (VNI ${n.vni}, ${n.cidr}, MTU ${n.mtu})`);
    });
  leaf(network.command('rm').argument('<name>')).description('delete a network with nothing attached').action(async (name: string, o: StoreFlags) => {
    await withManager(o, (m) => m.deleteNetwork(name));
    print(o, { removed: name }, () => `network ${name} deleted`);
  });

  const port = net.command('port').description('instance ports (an enclave or compute instance on a host)');
  leaf(port.command('attach').argument('<name>'))
    .description('attach an instance: allocates its address (IPAM) and OpenFlow port')
    .requiredOption('--network <name>')
    .requiredOption('--host <name>')
    .option('--ip <ip>', 'a fixed address instead of the lowest free one')
    .option('--mac <mac>', 'a fixed MAC instead of the derived one')
    .option('--ifname <name>', "the instance interface's name on the bridge (default cfp<ofport>)")
    .action(async (name: string, o: StoreFlags & { network: string; host: string; ip?: string; mac?: string; ifname?: string }) => {
      const p = await withManager(o, (m) => m.attachPort({ name, network: o.network, host: o.host, ip: o.ip, mac: o.mac, ifname: o.ifname }));
      print(o, p, () => `port ${p.name}: ${p.ip} ${p.mac} on ${p.host} (${p.ifname}, OpenFlow port ${p.ofport})`);
    });
  leaf(port.command('detach').argument('<name>')).description('detach a port and release its address').action(async (name: string, o: StoreFlags) => {
    await withManager(o, (m) => m.detachPort(name));
    print(o, { removed: name }, () => `port ${name} detached`);
  });

  const policy = net.command('policy').description('allow rules between networks or ports (default deny)');
  leaf(policy.command('add').argument('<name>'))
    .description('allow connections from --from to --to')
    .requiredOption('--from <endpoint>', 'network:NAME or port:NAME')
    .requiredOption('--to <endpoint>', 'network:NAME or port:NAME')
    .option('--proto <p>', 'tcp | udp | icmp | any', 'tcp')
    .option('--ports <range>', 'destination port or range (tcp/udp), e.g. 22 or 8000-8100')
    .action(async (name: string, o: StoreFlags & { from: string; to: string; proto: string; ports?: string }) => {
      const proto = checkProto(o.proto);
      const ports = parsePortRange(proto, o.ports);
      const p = await withManager(o, (m) => m.addPolicy({ name, from: endpoint('--from', o.from), to: endpoint('--to', o.to), proto, ...(ports ? { ports } : {}) }));
      print(o, p, () => `policy ${p.name} added`);
    });
  leaf(policy.command('rm').argument('<name>')).description('remove a policy (its connections are cut at the next apply)').action(async (name: string, o: StoreFlags) => {
    await withManager(o, (m) => m.removePolicy(name));
    print(o, { removed: name }, () => `policy ${name} removed`);
  });

  const egress = net.command('egress').description("per-network egress allowlist (destinations outside every virtual network)");
  leaf(egress.command('add').argument('<name>'))
    .description('allow a network to reach an outside address or block')
    .requiredOption('--network <name>')
    .requiredOption('--to <ip-or-cidr>')
    .option('--proto <p>', 'tcp | udp | icmp | any', 'tcp')
    .option('--ports <range>', 'destination port or range (tcp/udp)')
    .action(async (name: string, o: StoreFlags & { network: string; to: string; proto: string; ports?: string }) => {
      const proto = checkProto(o.proto);
      const ports = parsePortRange(proto, o.ports);
      const e = await withManager(o, (m) => m.addEgress({ name, network: o.network, to: o.to, proto, ...(ports ? { ports } : {}) }));
      print(o, e, () => `egress rule ${e.name} added (${e.network} → ${e.to})`);
    });
  leaf(egress.command('rm').argument('<name>')).description('remove an egress rule').action(async (name: string, o: StoreFlags) => {
    await withManager(o, (m) => m.removeEgress(name));
    print(o, { removed: name }, () => `egress rule ${name} removed`);
  });

  const forward = net.command('forward').description("ingress port-forwards: host uplink address:port → instance:port");
  const fwdKey = (c: Command): Command =>
    leaf(c).requiredOption('--host <name>').addOption(new Option('--proto <p>').choices(['tcp', 'udp']).default('tcp')).requiredOption('--host-port <n>');
  fwdKey(forward.command('add'))
    .description('forward a host port to a port on that host')
    .requiredOption('--port <name>', 'the instance port')
    .requiredOption('--target-port <n>')
    .action(async (o: StoreFlags & { host: string; proto: 'tcp' | 'udp'; hostPort: string; port: string; targetPort: string }) => {
      const f = await withManager(o, (m) =>
        m.addForward({ host: o.host, proto: o.proto, hostPort: intFlag('--host-port', o.hostPort, 1, 65535), port: o.port, targetPort: intFlag('--target-port', o.targetPort, 1, 65535) }));
      print(o, f, () => `forward ${f.host} ${f.proto}/${f.hostPort} → ${f.port}:${f.targetPort} added`);
    });
  fwdKey(forward.command('rm')).description('remove a forward').action(async (o: StoreFlags & { host: string; proto: string; hostPort: string }) => {
    const hostPort = intFlag('--host-port', o.hostPort, 1, 65535);
    await withManager(o, (m) => m.removeForward(o.host, o.proto, hostPort));
    print(o, { removed: { host: o.host, proto: o.proto, hostPort } }, () => `forward ${o.host} ${o.proto}/${hostPort} removed`);
  });

  leaf(net.command('show')).description('print the stored state').action(async (o: StoreFlags) => {
    const s = await withManager(o, (m) => m.state());
    print(o, s, () =>
      [
        ...s.hosts.map((h) => `host ${h.name} ${h.address}${h.uplink ? ` uplink ${h.uplink.address}` : ''}`),
        ...s.networks.map((n) => `network ${n.name} vni ${n.vni} ${n.cidr} mtu ${n.mtu}`),
        ...s.ports.map((p) => `port ${p.name} ${p.network} ${p.ip} ${p.mac} on ${p.host}:${p.ofport}`),
        ...s.policies.map((p) => `policy ${p.name} ${JSON.stringify(p.from)} → ${JSON.stringify(p.to)} ${p.proto}${p.ports ? ` ${p.ports.join('-')}` : ''}`),
        ...s.egress.map((e) => `egress ${e.name} ${e.network} → ${e.to} ${e.proto}${e.ports ? ` ${e.ports.join('-')}` : ''}`),
        ...s.forwards.map((f) => `forward ${f.host} ${f.proto}/${f.hostPort} → ${f.port}:${f.targetPort}`),
      ].join('\n'));
  });

  leaf(net.command('flows')).description("print a host's compiled flows (no switch needed)").requiredOption('--host <name>').action(async (o: StoreFlags & { host: string }) => {
    const h = await withManager(o, (_m, s) => compileHost(s, o.host));
    print(o, h, () => h.flows.join('\n'));
  });

  ovsLeaf(net.command('plan')).description('print the flows apply would add and remove on this host').action(async (o: OvsFlags) => {
    const p = await withManager(o, (_m, s) => planHost(s, o.host, ovsOf(o)));
    print(o, p, () =>
      [...p.diff.remove.map((f) => `- ${f}`), ...p.diff.add.map((f) => `+ ${f}`), `${p.host}: ${p.diff.add.length} to add, ${p.diff.remove.length} to remove (${p.flows} flows planned)`].join('\n'));
  });

  ovsLeaf(net.command('apply')).description("install this host's flows atomically (one OpenFlow bundle); idempotent, repairs drift").action(async (o: OvsFlags) => {
    const r = await withManager(o, (_m, s) => applyHost(s, o.host, ovsOf(o)));
    print(o, r, () => `${r.host}: ${r.added} flow(s) added, ${r.removed} removed, ${r.flows} in place${r.portsRemoved.length ? `; ports removed: ${r.portsRemoved.join(', ')}` : ''}`);
  });
}
