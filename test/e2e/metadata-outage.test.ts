// The metadata store going away under a running service: MongoDB (the MongoDB-wire test server) is reached
// through a TCP relay that this test can cut, as a failover or a network partition would. The service answers
// 503 UNAVAILABLE with Retry-After and names no host, /readyz says "not ready" in time, and a `put` in flight
// rides the outage out on the client's retries instead of abandoning its upload.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { call, startTestServer, type TestServer } from '../../src/api/test-server.js';
import { generateKeyFile } from '../../src/crypto/index.js';
import { KeyFileDataKeys } from '../../src/client/data-keys.js';
import { downloadFile } from '../../src/client/download.js';
import { uploadStream } from '../../src/client/upload.js';
import { VaultClient } from '../../src/client/vault-client.js';

const MiB = 1024 * 1024;
const mongoUri = inject('mongoUri');

/** A TCP relay to `target` that can drop every connection and refuse new ones until it is brought back. */
async function startRelay(target: { host: string; port: number }): Promise<{ port: number; cut(): void; restore(): void; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let down = false;
  const server = net.createServer((client) => {
    if (down) return void client.resetAndDestroy();
    const upstream = net.connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    cut() {
      down = true;
      for (const s of sockets) s.resetAndDestroy();
    },
    restore() {
      down = false;
    },
    close: () => new Promise((r) => server.close(() => r())),
  };
}

describe.skipIf(!mongoUri)('a metadata outage under a running service', () => {
  let relay: Awaited<ReturnType<typeof startRelay>>;
  let s: TestServer;
  let work: string;
  let alice: string;

  beforeAll(async () => {
    const target = new URL(mongoUri as string);
    relay = await startRelay({ host: target.hostname, port: Number(target.port) });
    // a short server selection, so that a request during the outage fails in half a second, not 15
    s = await startTestServer({ mongoUri: `mongodb://127.0.0.1:${relay.port}/?serverSelectionTimeoutMS=500` });
    alice = await s.token('alice');
    work = await mkdtemp(path.join(os.tmpdir(), 'coffer-outage-'));
  });
  afterAll(async () => {
    relay?.restore();
    await s?.close();
    await relay?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('answers 503 UNAVAILABLE with Retry-After, without internals, and recovers by itself', async () => {
    expect((await call(s.url, alice, 'GET', '/v1/fs/stat?path=/')).status).toBe(200);
    relay.cut();
    try {
      const res = await call(s.url, alice, 'GET', '/v1/fs/stat?path=/');
      const text = await res.text();
      expect([res.status, res.headers.get('retry-after')]).toEqual([503, '1']);
      expect(JSON.parse(text)).toMatchObject({ error: { code: 'UNAVAILABLE' } });
      expect(text).not.toMatch(/127\.0\.0\.1|ECONN|mongo/i);
      expect((await fetch(`${s.url}/readyz`)).status).toBe(503);
    } finally {
      relay.restore();
    }
    await vi.waitFor(async () => expect((await call(s.url, alice, 'GET', '/v1/fs/stat?path=/')).status).toBe(200), { timeout: 20_000, interval: 200 });
    expect((await fetch(`${s.url}/readyz`)).status).toBe(200);
  });

  it('a put in flight rides out a 2.5 s outage on its retries and the file reads back whole', async () => {
    await generateKeyFile(path.join(work, 'k'));
    const keys = await KeyFileDataKeys.open(path.join(work, 'k'));
    const client = new VaultClient({ server: s.url, token: alice });
    const data = randomBytes(3 * 8 * MiB + 5);
    let release!: () => void;
    const paused = new Promise<void>((r) => (release = r));
    async function* trickle(): AsyncIterable<Uint8Array> {
      yield data.subarray(0, 8 * MiB + 1); // chunk 0 goes out; the rest waits for the outage
      await paused;
      yield data.subarray(8 * MiB + 1);
    }
    let sent = 0;
    try {
      const upload = uploadStream(client, trickle(), data.length, { path: '/outage.bin', keys, concurrency: 1, onProgress: (n) => (sent += n) });
      await vi.waitFor(() => expect(sent).toBeGreaterThan(0), { timeout: 20_000, interval: 20 }); // chunk 0 is durable
      relay.cut();
      setTimeout(() => relay.restore(), 2_500);
      release();
      const done = await upload;
      expect(done.size).toBe(data.length);
      await downloadFile(client, '/outage.bin', path.join(work, 'back.bin'), { keys });
      expect((await readFile(path.join(work, 'back.bin'))).equals(data)).toBe(true);
    } finally {
      relay.restore();
      client.close();
    }
  });

  it('a put started during an outage creates its upload once the store is back (creating is retried: it is idempotent)', async () => {
    await generateKeyFile(path.join(work, 'k3'));
    const keys = await KeyFileDataKeys.open(path.join(work, 'k3'));
    const client = new VaultClient({ server: s.url, token: alice });
    const data = randomBytes(1000);
    relay.cut();
    setTimeout(() => relay.restore(), 1_500);
    try {
      expect((await uploadStream(client, [data], data.length, { path: '/started-in-outage.bin', keys })).size).toBe(1000);
      await downloadFile(client, '/started-in-outage.bin', path.join(work, 'started.bin'), { keys });
      expect((await readFile(path.join(work, 'started.bin'))).equals(data)).toBe(true);
    } finally {
      relay.restore();
      client.close();
    }
  });
});
