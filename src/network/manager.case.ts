// One suite for the network record store and the NetworkManager on top of it, run on both metadata stores
// (manager-sqlite.test.ts, manager-mongo.test.ts): record-level compare-and-set, IPAM under concurrent
// allocation from two connections, and every refused input leaving the stored state byte for byte unchanged.
import { describe, expect, it } from 'vitest';
import type { NetRecordKind, NetRecordStore } from '../metadata/netstore/index.js';
import { withApplyLock } from './lock.js';
import { NetworkManager } from './manager.js';
import type { Host } from './model.js';

export interface StoreFixture {
  /** Two connections to one fresh database. */
  stores: [NetRecordStore, NetRecordStore];
  cleanup(): Promise<void>;
}

const KINDS: NetRecordKind[] = ['host', 'network', 'netindex', 'ip', 'ofport', 'port', 'policy', 'egress', 'forward', 'lock'];
const H0: Host = { name: 'h0', address: '192.0.2.1', mtu: 1500, uplink: { address: '198.51.100.1', mac: '02:aa:00:00:00:02', gatewayMac: '02:aa:00:00:00:01', ifname: 'cfup' } };

async function dumpAll(s: NetRecordStore): Promise<string> {
  const out: unknown[] = [];
  for (const k of KINDS) out.push(await s.list(k));
  return JSON.stringify(out);
}

/** Runs `fn`, expects it to fail with `code`, and checks the stored state did not change. */
async function refusedUnchanged(s: NetRecordStore, code: string, fn: () => Promise<unknown>, message?: RegExp): Promise<void> {
  const before = await dumpAll(s);
  const e = await fn().then(() => null, (err: unknown) => err);
  expect(e).toMatchObject({ code });
  if (message) expect((e as Error).message).toMatch(message);
  expect(await dumpAll(s)).toBe(before);
}

export function runNetworkStoreSuite(name: string, open: () => Promise<StoreFixture>): void {
  const withStore = (title: string, fn: (f: StoreFixture, m: NetworkManager) => Promise<void>, timeout = 60_000): void => {
    it(title, async () => {
      const f = await open();
      try {
        await fn(f, new NetworkManager(f.stores[0]));
      } finally {
        await f.cleanup();
      }
    }, timeout);
  };

  describe(`network records and manager (${name})`, () => {
    withStore('record store: insert, compare-and-set, references, conditional delete', async ({ stores: [s] }) => {
      expect(await s.insert('host', 'b', '{}')).toMatchObject({ kind: 'host', id: 'b', version: 1, refs: 0 });
      await s.insert('host', 'a', '{}');
      await s.insert('ip', 'n1/10.0.0.2', '{}');
      await s.insert('ip', 'n10/10.0.0.2', '{}');
      await expect(s.insert('host', 'a', '{}')).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
      expect((await s.list('host')).map((r) => r.id)).toEqual(['a', 'b']);
      expect((await s.list('ip', 'n1/')).map((r) => r.id)).toEqual(['n1/10.0.0.2']);
      expect(await s.update('host', 'a', 1, '{"x":1}')).toMatchObject({ version: 2, body: '{"x":1}' });
      await expect(s.update('host', 'a', 1, '{}')).rejects.toMatchObject({ code: 'CONFLICT' });
      await expect(s.update('host', 'zz', 1, '{}')).rejects.toMatchObject({ code: 'NOT_FOUND' });
      expect((await s.addRefs('host', 'a', 2)).refs).toBe(2);
      await expect(s.addRefs('host', 'a', -3)).rejects.toMatchObject({ code: 'CONFLICT' });
      await expect(s.addRefs('host', 'zz', 1)).rejects.toMatchObject({ code: 'NOT_FOUND' });
      await expect(s.delete('host', 'a', { unreferenced: true })).rejects.toMatchObject({ code: 'CONFLICT', details: { refs: 2 } });
      await s.addRefs('host', 'a', -2);
      await expect(s.delete('host', 'a', { version: 1 })).rejects.toMatchObject({ code: 'CONFLICT' });
      expect(await s.delete('host', 'a', { version: 2, unreferenced: true })).toBe(true);
      expect(await s.delete('host', 'a')).toBe(false);
      expect(await s.get('host', 'a')).toBeNull();
    });

    withStore('IPAM: concurrent attaches from two connections never share an address; gateway and broadcast are never given', async ({ stores }, m) => {
      await m.addHost(H0);
      await m.createNetwork({ name: 'lab', vni: 10, cidr: '10.9.0.0/24', mtu: 1450 });
      const managers = stores.map((s) => new NetworkManager(s));
      const ports = await Promise.all(Array.from({ length: 40 }, (_, i) => (managers[i % 2] as NetworkManager).attachPort({ name: `p${i}`, network: 'lab', host: 'h0' })));
      const ips = ports.map((p) => p.ip);
      expect(new Set(ips).size).toBe(40);
      expect(new Set(ports.map((p) => p.ofport)).size).toBe(40);
      for (const ip of ips) expect(['10.9.0.0', '10.9.0.1', '10.9.0.255']).not.toContain(ip);
      expect([...ips].sort((a, b) => Number(a.split('.')[3]) - Number(b.split('.')[3]))[39]).toBe('10.9.0.41'); // lowest-first: .2 … .41
      expect((await stores[0].get('network', 'lab'))?.refs).toBe(40);
    }, 120_000);

    withStore('apply lock: held means CONFLICT for another connection, released or expired means free', async ({ stores: [a, b] }) => {
      const inner = await withApplyLock(a, 'h0', () => withApplyLock(b, 'h0', async () => 'nested').catch((e: unknown) => e));
      expect(inner).toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/another apply to host h0 is running/) });
      expect(await withApplyLock(b, 'h0', async () => 'free again')).toBe('free again');
      expect(await withApplyLock(a, 'h1', async () => 'another host')).toBe('another host');
      // a holder that died: its lease runs out and the next apply takes the lock over
      await a.insert('lock', 'h0', JSON.stringify({ owner: 'dead', expiresAt: Date.now() - 1 }));
      expect(await withApplyLock(b, 'h0', async () => 'taken over')).toBe('taken over');
      expect(await a.get('lock', 'h0')).toBeNull();
    });

    withStore('a tampered record never reaches the compiler: reading the state refuses it', async ({ stores: [s] }, m) => {
      await m.addHost(H0);
      await m.createNetwork({ name: 'lab', vni: 10, cidr: '10.9.0.0/24', mtu: 1450 });
      const p = await m.attachPort({ name: 'p', network: 'lab', host: 'h0' });
      const rec = await s.get('port', 'p');
      await s.update('port', 'p', rec!.version, JSON.stringify({ ...p, ip: '10.9.0.2,actions=output:2' }));
      await expect(m.state()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('not an IPv4 address') });
      await s.update('port', 'p', rec!.version + 1, JSON.stringify({ ...p, ifname: 'x -- del-br y' }));
      await expect(m.state()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    });

    withStore('IPAM: a full network refuses, release makes the address reusable', async ({ stores: [s] }, m) => {
      await m.addHost(H0);
      await m.createNetwork({ name: 'tiny', vni: 11, cidr: '10.8.0.0/29', mtu: 1450 });
      for (let i = 0; i < 5; i++) await m.attachPort({ name: `t${i}`, network: 'tiny', host: 'h0' });
      await refusedUnchanged(s, 'CONFLICT', () => m.attachPort({ name: 't5', network: 'tiny', host: 'h0' }), /no free address/);
      await refusedUnchanged(s, 'ALREADY_EXISTS', () => m.attachPort({ name: 'tx', network: 'tiny', host: 'h0', ip: '10.8.0.4' }), /taken by port t2/);
      await refusedUnchanged(s, 'INVALID_ARGUMENT', () => m.attachPort({ name: 'tx', network: 'tiny', host: 'h0', ip: '10.8.0.1' }), /not a usable address/);
      await m.detachPort('t2');
      expect((await m.attachPort({ name: 't6', network: 'tiny', host: 'h0' })).ip).toBe('10.8.0.4');
    });

    withStore('a network with ports, and a host with ports, cannot be deleted', async ({ stores: [s] }, m) => {
      await m.addHost(H0);
      await m.createNetwork({ name: 'lab', vni: 10, cidr: '10.9.0.0/24', mtu: 1450 });
      await m.attachPort({ name: 'p', network: 'lab', host: 'h0' });
      await refusedUnchanged(s, 'CONFLICT', () => m.deleteNetwork('lab'), /still has 1 port/);
      await refusedUnchanged(s, 'CONFLICT', () => m.removeHost('h0'), /still has 1 port/);
      await refusedUnchanged(s, 'NOT_FOUND', () => m.deleteNetwork('nope'));
      await m.detachPort('p');
      await m.deleteNetwork('lab');
      await m.removeHost('h0');
      expect(JSON.parse(await dumpAll(s)).flat().filter((r: { kind: string }) => r.kind !== 'netindex')).toEqual([]);
      // the name and the CIDR are free again
      await m.createNetwork({ name: 'lab', vni: 10, cidr: '10.9.0.0/24', mtu: 1450 });
    });

    withStore('overlapping CIDRs and a taken VNI are refused, also when created concurrently', async ({ stores }, m) => {
      await m.createNetwork({ name: 'a', vni: 1, cidr: '10.1.0.0/16', mtu: 1450 });
      await refusedUnchanged(stores[0], 'CONFLICT', () => m.createNetwork({ name: 'b', vni: 2, cidr: '10.1.128.0/24', mtu: 1450 }), /overlaps network a/);
      await refusedUnchanged(stores[0], 'ALREADY_EXISTS', () => m.createNetwork({ name: 'b', vni: 1, cidr: '10.2.0.0/24', mtu: 1450 }), /VNI 1/);
      await refusedUnchanged(stores[0], 'ALREADY_EXISTS', () => m.createNetwork({ name: 'a', vni: 9, cidr: '10.3.0.0/24', mtu: 1450 }));
      await refusedUnchanged(stores[0], 'INVALID_ARGUMENT', () => m.createNetwork({ name: 'c', vni: 3, cidr: '10.4.0.5/24', mtu: 1450 }), /host bits/);
      const managers = stores.map((s) => new NetworkManager(s));
      const r = await Promise.allSettled(Array.from({ length: 8 }, (_, i) =>
        (managers[i % 2] as NetworkManager).createNetwork({ name: `o${i}`, vni: 100 + i, cidr: i % 2 ? `10.50.${i}.0/24` : '10.50.0.0/16', mtu: 1450 })));
      // the four /24s (odd i) are disjoint and each overlaps the /16s (even i): whichever commits first decides,
      // so the winners are either exactly one /16 or all four /24s, never a mixture and never two /16s
      const won = r.flatMap((x, i) => (x.status === 'fulfilled' ? [i] : []));
      expect(won.length === 1 ? won[0] as number % 2 : won).toEqual(won.length === 1 ? 0 : [1, 3, 5, 7]);
      for (const x of r) if (x.status === 'rejected') expect(x.reason).toMatchObject({ code: 'CONFLICT' });
      expect((await m.state()).networks.map((n) => n.name).filter((n) => n.startsWith('o')).sort()).toEqual(won.map((i) => `o${i}`).sort());
    }, 120_000);

    withStore('policies, egress rules and forwards: unknown names and taken host ports are refused unchanged', async ({ stores: [s] }, m) => {
      await m.addHost(H0);
      await m.addHost({ name: 'h1', address: '192.0.2.2', mtu: 1500 });
      await m.createNetwork({ name: 'red', vni: 1, cidr: '10.1.0.0/24', mtu: 1450 });
      await m.attachPort({ name: 'r0', network: 'red', host: 'h0' });
      await m.attachPort({ name: 'r1', network: 'red', host: 'h1' });
      await refusedUnchanged(s, 'NOT_FOUND', () => m.addPolicy({ name: 'p', from: { network: 'red' }, to: { network: 'ghost' }, proto: 'tcp' }), /unknown network ghost/);
      await refusedUnchanged(s, 'NOT_FOUND', () => m.addEgress({ name: 'e', network: 'ghost', to: '203.0.113.5', proto: 'tcp' }));
      await refusedUnchanged(s, 'INVALID_ARGUMENT', () => m.addPolicy({ name: 'p', from: { network: 'red' }, to: { network: 'red' }, proto: 'icmp', ports: [1, 2] }));
      await m.addForward({ host: 'h0', proto: 'tcp', hostPort: 2222, port: 'r0', targetPort: 22 });
      await refusedUnchanged(s, 'CONFLICT', () => m.addForward({ host: 'h0', proto: 'tcp', hostPort: 2222, port: 'r0', targetPort: 23 }), /already forwarded to port r0/);
      await refusedUnchanged(s, 'INVALID_ARGUMENT', () => m.addForward({ host: 'h1', proto: 'tcp', hostPort: 2222, port: 'r1', targetPort: 22 }), /no uplink/);
      await refusedUnchanged(s, 'INVALID_ARGUMENT', () => m.addForward({ host: 'h0', proto: 'tcp', hostPort: 2223, port: 'r1', targetPort: 22 }), /is on host h1/);
      await refusedUnchanged(s, 'CONFLICT', () => m.detachPort('r0'), /forward/);
      await m.addPolicy({ name: 'p', from: { port: 'r1' }, to: { network: 'red' }, proto: 'tcp', ports: [22, 22] });
      await refusedUnchanged(s, 'ALREADY_EXISTS', () => m.addPolicy({ name: 'p', from: { network: 'red' }, to: { network: 'red' }, proto: 'any' }));
      await refusedUnchanged(s, 'CONFLICT', () => m.deleteNetwork('red'));
      const st = await m.state();
      expect(st.policies).toHaveLength(1);
      expect(st.forwards).toHaveLength(1);
      await m.removePolicy('p');
      await m.removeForward('h0', 'tcp', 2222);
      expect((await s.get('port', 'r0'))?.refs).toBe(0);
      expect((await s.get('host', 'h0'))?.refs).toBe(1);
    });
  });
}
