// `coffer enclave proxy`: the host side of the enclave's channel (host-channel.ts). It listens where clients
// connect (TCP) and hands each connection's bytes to the enclave's gateway socket, and it listens on the
// enclave's storage and KMS sockets and hands those bytes to the storage service and the KMS over TCP.
// Bytes only: it never parses, terminates or logs the streams, holds no TLS key and sees only TLS records (client
// side) and what the untrusted storage service and the KMS see anyway (enclave side).
import { rm } from 'node:fs/promises';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { CofferError, ErrorCode } from '../../src/errors.js';
import { channelPaths } from './host-channel.js';

export interface HostProxyOptions {
  channelDir: string;
  /** Where clients connect (the gateway's public address). */
  listen: { host: string; port: number };
  /** The storage service's and the KMS's TCP addresses (http://host:port). */
  storageUrl: string;
  kmsUrl: string;
}

export interface HostProxy {
  /** https://host:port of the gateway as clients reach it. */
  url: string;
  address: { host: string; port: number };
  /** Connections forwarded so far, per stream (for tests and metrics; never their content). */
  counts: { gateway: number; storage: number; kms: number };
  close(): Promise<void>;
}

function target(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) || 80 };
}

/** Joins two sockets both ways; either side closing or failing ends both. */
function splice(a: net.Socket, b: net.Socket): void {
  const end = (): void => {
    a.destroy();
    b.destroy();
  };
  a.on('error', end);
  b.on('error', end);
  a.on('close', end);
  b.on('close', end);
  a.pipe(b);
  b.pipe(a);
}

function listen(server: net.Server, at: { path: string } | { host: string; port: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const done = (): void => {
      server.off('error', reject);
      resolve();
    };
    if ('path' in at) server.listen(at.path, done);
    else server.listen(at.port, at.host, done);
  });
}

/** Starts the proxy. Throws CofferError UNAVAILABLE when an address is taken. */
export async function startHostProxy(options: HostProxyOptions): Promise<HostProxy> {
  const paths = channelPaths(options.channelDir);
  const counts = { gateway: 0, storage: 0, kms: 0 };
  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket): net.Socket => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    return s;
  };
  const forward = (name: keyof typeof counts, connect: () => net.Socket) => (inbound: net.Socket): void => {
    counts[name]++;
    track(inbound);
    splice(inbound, track(connect()));
  };
  const storage = target(options.storageUrl);
  const kms = target(options.kmsUrl);
  try {
    for (const [p, name, connect] of [
      [paths.storage, 'storage', () => net.connect(storage)],
      [paths.kms, 'kms', () => net.connect(kms)],
    ] as const) {
      await rm(p, { force: true });
      const s = net.createServer(forward(name, connect));
      servers.push(s);
      await listen(s, { path: p });
    }
    const front = net.createServer(forward('gateway', () => net.connect({ path: paths.gateway })));
    servers.push(front);
    await listen(front, options.listen).catch((e: NodeJS.ErrnoException) => {
      throw new CofferError(ErrorCode.UNAVAILABLE, `cannot listen on ${options.listen.host}:${options.listen.port}: ${e.code ?? e.message}`, { cause: e });
    });
    const addr = front.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    return {
      url: `https://${host}:${addr.port}`,
      address: { host: addr.address, port: addr.port },
      counts,
      close: async () => {
        for (const s of sockets) s.destroy();
        await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      },
    };
  } catch (e) {
    for (const s of servers) s.close();
    throw e;
  }
}
