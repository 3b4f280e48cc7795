// `coffer enclave proxy`: the host side of the enclave's channel (host-channel.ts). It listens where clients
// connect (TCP) and hands each connection's bytes to the enclave's gateway socket (and S3 clients' to its S3 socket), and it listens on the
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
  /** Where S3 clients connect (forwarded to the enclave's S3 socket); none when absent. */
  s3Listen?: { host: string; port: number };
  /** The storage service's and the KMS's TCP addresses (http://host:port). */
  storageUrl: string;
  kmsUrl: string;
}

export interface HostProxy {
  /** https://host:port of the gateway as clients reach it. */
  url: string;
  address: { host: string; port: number };
  /** https://host:port of the enclave's S3 listener as clients reach it (null without s3Listen). */
  s3Url: string | null;
  /** Connections forwarded so far, per stream (for tests and metrics; never their content). */
  counts: { gateway: number; s3: number; storage: number; kms: number };
  close(): Promise<void>;
}

function target(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) || 80 };
}

/** Bytes read at once from a connection the proxy opened (one buffer per connection, reused for every read). */
const READ_BUFFER_BYTES = 256 * 1024;

type OnRead = { buffer: Buffer; callback: (n: number, buf: Buffer) => boolean };

/**
 * Reads of the connection the proxy opens (enclave → client downloads, storage service → enclave chunks) go
 * into one fixed buffer (`onread`) and straight to `to`, instead of a fresh buffer per read: no garbage per byte.
 * The buffer is reused only once the kernel took its bytes: when a write is left queued, reading pauses until
 * that write completes.
 */
function fixedBufferCopy(to: () => net.Socket, resume: () => void): OnRead {
  let paused = false;
  return {
    buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES),
    callback: (n, buf) => {
      const dest = to();
      if (dest.destroyed) return false;
      dest.write(buf.subarray(0, n), () => {
        if (!paused) return;
        paused = false;
        resume();
      });
      if (dest.writableLength === 0) return true; // written synchronously: the buffer is free again
      paused = true;
      return false;
    },
  };
}

/** Joins two sockets both ways; either side closing or failing ends both. `b`'s reads are already routed to `a` (onread) when `bReadsToA`. */
function splice(a: net.Socket, b: net.Socket, bReadsToA = false): void {
  const end = (): void => {
    a.destroy();
    b.destroy();
  };
  a.on('error', end);
  b.on('error', end);
  a.on('close', end);
  b.on('close', end);
  a.pipe(b);
  if (bReadsToA) b.on('end', () => a.end());
  else b.pipe(a);
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

function urlOf(addr: AddressInfo): string {
  return `https://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
}

/** Starts the proxy. Throws CofferError UNAVAILABLE when an address is taken. */
export async function startHostProxy(options: HostProxyOptions): Promise<HostProxy> {
  const paths = channelPaths(options.channelDir);
  const counts = { gateway: 0, s3: 0, storage: 0, kms: 0 };
  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket): net.Socket => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    return s;
  };
  const forward = (name: keyof typeof counts, connect: (onread: OnRead) => net.Socket) => (inbound: net.Socket): void => {
    counts[name]++;
    track(inbound);
    const outbound: net.Socket = connect(fixedBufferCopy(() => inbound, () => outbound.resume()));
    splice(inbound, track(outbound), true);
  };
  const storage = target(options.storageUrl);
  const kms = target(options.kmsUrl);
  try {
    for (const [p, name, connect] of [
      [paths.storage, 'storage', (onread: OnRead) => net.connect({ ...storage, onread })],
      [paths.kms, 'kms', (onread: OnRead) => net.connect({ ...kms, onread })],
    ] as const) {
      await rm(p, { force: true });
      const s = net.createServer(forward(name, connect));
      servers.push(s);
      await listen(s, { path: p });
    }
    const front = net.createServer(forward('gateway', (onread) => net.connect({ path: paths.gateway, onread })));
    servers.push(front);
    await listen(front, options.listen).catch((e: NodeJS.ErrnoException) => {
      throw new CofferError(ErrorCode.UNAVAILABLE, `cannot listen on ${options.listen.host}:${options.listen.port}: ${e.code ?? e.message}`, { cause: e });
    });
    let s3Url: string | null = null;
    if (options.s3Listen) {
      const s3 = net.createServer(forward('s3', (onread) => net.connect({ path: paths.s3, onread })));
      servers.push(s3);
      const at = options.s3Listen;
      await listen(s3, at).catch((e: NodeJS.ErrnoException) => {
        throw new CofferError(ErrorCode.UNAVAILABLE, `cannot listen on ${at.host}:${at.port} (S3): ${e.code ?? e.message}`, { cause: e });
      });
      s3Url = urlOf(s3.address() as AddressInfo);
    }
    const addr = front.address() as AddressInfo;
    return {
      url: urlOf(addr),
      s3Url,
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
