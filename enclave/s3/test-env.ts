// Test support (not a test file): the whole S3 stack for real, on loopback — the storage service over SQLite
// and the fs chunk store, the S3 layer over the client library in key-file mode (sealed on the way in, opened
// on the way out), SigV4 with access keys sealed in a temporary data directory, and an https listener with a
// fresh self-signed certificate that clients pin.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startTestServer, type TestServer } from '../../src/api/test-server.js';
import { mintDevToken } from '../../src/api/auth/index.js';
import { KeyFileDataKeys } from '../../src/client/data-keys.js';
import { generateKeyFile } from '../../src/crypto/index.js';
import { AccessKeyStore, accessKeysPath, devSealer } from './access-keys.js';
import type { S3Limits } from './context.js';
import { makeDevCertificate } from './dev-certificate.js';
import { createS3Handler } from './handler.js';
import { startS3Server, type S3Server } from './server.js';
import { VaultClientBackend } from './vault-client-backend.js';

export interface S3TestEnv {
  storage: TestServer;
  s3: S3Server;
  /** https URL of the S3 endpoint. */
  url: string;
  /** The endpoint's certificate (PEM file path and text): the one thing clients trust. */
  caFile: string;
  caPem: string;
  work: string;
  keys: AccessKeyStore;
  backend: VaultClientBackend;
  /** A fresh access key for `user`. */
  accessKey(user: string): Promise<{ id: string; secret: string }>;
  close(): Promise<void>;
}

export async function startS3TestEnv(options: { limits?: Partial<S3Limits>; defaultRootRole?: 'none' | 'read' | 'write'; tls?: boolean } = {}): Promise<S3TestEnv> {
  const storage = await startTestServer({ defaultRootRole: options.defaultRootRole ?? 'write' });
  const work = await mkdtemp(path.join(os.tmpdir(), 'coffer-s3-'));
  await generateKeyFile(path.join(work, 'gateway.key'));
  const dataKeys = await KeyFileDataKeys.open(path.join(work, 'gateway.key'));
  const backend = new VaultClientBackend({
    server: storage.url, keys: dataKeys,
    mintToken: (who, ttlSeconds) => mintDevToken(storage.env.dir, { user: who.user, admin: who.admin, ttlSeconds }),
  });
  const keys = new AccessKeyStore(accessKeysPath(work), await devSealer(work));
  const tls = options.tls === false ? undefined : await makeDevCertificate();
  const caFile = path.join(work, 'endpoint.pem');
  if (tls) await writeFile(caFile, tls.cert);
  const handler = createS3Handler({ backend, lookup: (id) => keys.lookup(id), limits: options.limits });
  const s3 = await startS3Server({ handler, listen: { host: '127.0.0.1', port: 0 }, tls });
  return {
    storage, s3, url: s3.url, caFile, caPem: tls?.cert ?? '', work, keys, backend,
    accessKey: async (user) => keys.create(user),
    async close() {
      await s3.close();
      backend.close();
      await storage.close();
      await rm(work, { recursive: true, force: true });
    },
  };
}
