// Test support (not a test file): the whole S3 stack for real, on loopback — the storage service over SQLite
// and the fs chunk store, the S3 layer over the client library in key-file mode (sealed on the way in, opened
// on the way out), SigV4 with access keys sealed in a temporary data directory, and an https listener with a
// fresh self-signed certificate that clients pin.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startTestServer, type TestServer } from '../../src/api/test-server.js';
import { mintDevToken } from '../../src/api/auth/index.js';
import { KeyFileDataKeys } from '../../src/client/data-keys.js';
import { generateKeyFile } from '../../src/crypto/index.js';
import { AccessKeyStore, AesGcmSealer } from './access-keys.js';
import type { S3Limits } from './context.js';
import { makeDevCertificate } from './dev-certificate.js';
import { createS3Handler } from './handler.js';
import { startS3Server, type S3Server } from './server.js';
import { VaultClientBackend } from './vault-client-backend.js';
import { VaultClient } from '../../src/client/vault-client.js';
import { FileOps, type EnclaveDataKeys } from '../gateway/index.js';
import type { VaultBackend } from './backend.js';
import { GatewayBackend } from './gateway-backend.js';
import { MacIntegrity, MetadataMacKey } from '../integrity/index.js';
import { UploadSweeper, type UploadSweeperOptions } from './upload-sweep.js';

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
  /** The backend the S3 layer runs over. */
  backend: VaultBackend;
  /** The sweeper the handler triggers (only with the `sweep` option). */
  sweeper?: UploadSweeper;
  /** A fresh access key for `user`. */
  accessKey(user: string): Promise<{ id: string; secret: string }>;
  close(): Promise<void>;
}

/**
 * `backend: 'gateway'` runs the S3 layer over the enclave gateway's FileOps (its sealing, ranged reads and
 * record checks) instead of the client library; both seal with the same key file here (no KMS in this env).
 */
export async function startS3TestEnv(options: { limits?: Partial<S3Limits>; defaultRootRole?: 'none' | 'read' | 'write'; tls?: boolean; backend?: 'client' | 'gateway'; macs?: boolean;
  sweep?: Omit<UploadSweeperOptions, 'backend'>;
} = {}): Promise<S3TestEnv> {
  const storage = await startTestServer({ defaultRootRole: options.defaultRootRole ?? 'write' });
  const work = await mkdtemp(path.join(os.tmpdir(), 'coffer-s3-'));
  await generateKeyFile(path.join(work, 'gateway.key'));
  const dataKeys = await KeyFileDataKeys.open(path.join(work, 'gateway.key'));
  const backend = new VaultClientBackend({
    server: storage.url, keys: dataKeys,
    mintToken: (who, ttlSeconds) => mintDevToken(storage.env.dir, { user: who.user, admin: who.admin, ttlSeconds }),
  });
  const mint = (who: { user: string; admin: boolean }, ttlSeconds = 3600): Promise<string> => mintDevToken(storage.env.dir, { user: who.user, admin: who.admin, ttlSeconds });
  const s3Backend: VaultBackend = options.backend === 'gateway'
    ? new GatewayBackend(new FileOps({
      storage: (caller) => new VaultClient({ server: storage.url, token: caller.token }),
      keys: dataKeys as unknown as EnclaveDataKeys, // same shape (DataKeyProvider); the enclave's comes from the KMS
      // `macs`: the enclave's record MACs (a random metadata key here), so host-side record edits are refused
      ...(options.macs ? { integrity: new MacIntegrity(new MetadataMacKey(randomBytes(32)), undefined, dataKeys), defaultRootRole: 'write' as const } : {}),
    }), async (who) => ({ ...who, token: await mint(who) }))
    : backend;
  const keys = new AccessKeyStore(path.join(work, 's3', 'access-keys.json'), new AesGcmSealer(randomBytes(32)));
  const tls = options.tls === false ? undefined : await makeDevCertificate();
  const caFile = path.join(work, 'endpoint.pem');
  if (tls) await writeFile(caFile, tls.cert);
  const sweeper = options.sweep ? new UploadSweeper({ ...options.sweep, backend: s3Backend }) : undefined;
  const handler = createS3Handler({ backend: s3Backend, lookup: (id) => keys.lookup(id), limits: options.limits, ...(sweeper ? { sweeper } : {}) });
  const s3 = await startS3Server({ handler, listen: { host: '127.0.0.1', port: 0 }, tls });
  return {
    storage, s3, url: s3.url, caFile, caPem: tls?.cert ?? '', work, keys, backend: s3Backend, ...(sweeper ? { sweeper } : {}),
    accessKey: async (user) => keys.create(user),
    async close() {
      await s3.close();
      await sweeper?.idle();
      backend.close();
      await storage.close();
      await rm(work, { recursive: true, force: true });
    },
  };
}
