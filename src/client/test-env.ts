// Test support (not a test file): the real storage service on loopback, a fresh key file and a client for
// user alice, in a temporary directory.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startTestServer, type TestServer } from '../api/test-server.js';
import { generateKeyFile } from '../crypto/index.js';
import { KeyFileDataKeys } from './data-keys.js';
import { VaultClient } from './vault-client.js';

export interface ClientTestEnv {
  server: TestServer;
  /** A temporary directory for local files (removed by close). */
  work: string;
  client: VaultClient;
  keys: KeyFileDataKeys;
  close(): Promise<void>;
}

export async function startClientTestEnv(prefix: string): Promise<ClientTestEnv> {
  const server = await startTestServer();
  const work = await mkdtemp(path.join(os.tmpdir(), prefix));
  await generateKeyFile(path.join(work, 'k'));
  const keys = await KeyFileDataKeys.open(path.join(work, 'k'));
  const client = new VaultClient({ server: server.url, token: await server.token('alice') });
  return {
    server, work, client, keys,
    async close() {
      client.close();
      await server.close();
      await rm(work, { recursive: true, force: true });
    },
  };
}
