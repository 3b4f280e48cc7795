// Shared keep-alive connections (http.ts sharedConnections): many short-lived clients, of different users, over
// one set of connections to the real storage service — each request still acts as its own client's user, a
// client's close() leaves the shared connections to the others, and a fresh client costs no new connection.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintDevToken } from '../api/auth/index.js';
import { startTestServer, type TestServer } from '../api/test-server.js';
import { sharedConnections } from './http.js';
import { VaultClient } from './vault-client.js';

let storage: TestServer;
let relay: net.Server;
let relayUrl: string;
let accepted = 0;

beforeAll(async () => {
  storage = await startTestServer({ defaultRootRole: 'write' });
  const target = new URL(storage.url);
  // a TCP relay in front of the service that counts the connections clients open
  relay = net.createServer((s) => {
    accepted++;
    const up = net.connect(Number(target.port), target.hostname);
    s.pipe(up).pipe(s);
    s.on('error', () => up.destroy());
    up.on('error', () => s.destroy());
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  relayUrl = `http://127.0.0.1:${(relay.address() as net.AddressInfo).port}`;
}, 60_000);

afterAll(async () => {
  relay?.close();
  await storage?.close();
});

describe('sharedConnections', () => {
  it('serves many clients of different users over a few kept-alive connections, each as its own user', async () => {
    const shared = sharedConnections({ server: relayUrl, maxSockets: 4 });
    const token = (user: string): Promise<string> => mintDevToken(storage.env.dir, { user, admin: false, ttlSeconds: 600 });
    const tokens = { alice: await token('alice'), bob: await token('bob') };
    const before = accepted;
    try {
      for (let i = 0; i < 12; i++) {
        const user = i % 2 === 0 ? 'alice' : 'bob';
        const c = new VaultClient({ server: relayUrl, token: tokens[user], shared });
        expect((await c.whoami()).user).toBe(user);
        c.close(); // leaves the shared connections open
      }
      expect(accepted - before).toBeLessThanOrEqual(2);
    } finally {
      shared.close();
    }
    // without sharing, every client opens its own
    const own = accepted;
    for (let i = 0; i < 3; i++) {
      const c = new VaultClient({ server: relayUrl, token: tokens.alice });
      await c.whoami();
      c.close();
    }
    expect(accepted - own).toBe(3);
  });

  it('refuses a client for another server than the connections reach', () => {
    const shared = sharedConnections({ server: relayUrl });
    try {
      expect(() => new VaultClient({ server: 'http://127.0.0.1:1/', shared })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    } finally {
      shared.close();
    }
  });
});
