// Test harness: an embedded KMS on loopback in a temporary data dir, and @aws-sdk/client-kms clients for it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KMSClient } from '@aws-sdk/client-kms';
import type { TrustRoot } from '../../attestation/index.js';
import { newCredential, startKmsServer, type KmsCredential, type KmsServer, type KmsServerOptions } from '../server/index.js';

export const ALICE_ARN = 'arn:aws:iam::000000000000:user/alice';
export const BOB_ARN = 'arn:aws:iam::000000000000:user/bob';
export const CAROL_ARN = 'arn:aws:iam::000000000000:user/carol';

export interface Harness {
  dataDir: string;
  server: KmsServer;
  alice: KmsCredential;
  bob: KmsCredential;
  /** A third principal: the key administrator in the custody tests. */
  carol: KmsCredential;
  client(cred: KmsCredential, extra?: Partial<ConstructorParameters<typeof KMSClient>[0]>): KMSClient;
  close(): Promise<void>;
}

export async function startHarness(
  rootFor: (dataDir: string) => TrustRoot | Promise<TrustRoot> = () => ({ kind: 'aws' }),
  extra: Partial<KmsServerOptions> = {},
): Promise<Harness> {
  const dataDir = mkdtempSync(join(tmpdir(), 'coffer-kms-'));
  const attestationRoot = await rootFor(dataDir);
  const alice = newCredential(ALICE_ARN);
  const bob = newCredential(BOB_ARN);
  const carol = newCredential(CAROL_ARN);
  const server = await startKmsServer({ dataDir, listen: '127.0.0.1:0', credentials: [alice, bob, carol], attestationRoot, ...extra });
  const clients: KMSClient[] = [];
  return {
    dataDir,
    server,
    alice,
    bob,
    carol,
    client(cred, more = {}) {
      const c = new KMSClient({
        region: server.region,
        endpoint: server.url,
        credentials: { accessKeyId: cred.accessKeyId, secretAccessKey: cred.secretAccessKey },
        maxAttempts: 1,
        ...more,
      });
      clients.push(c);
      return c;
    },
    async close() {
      for (const c of clients) c.destroy();
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
