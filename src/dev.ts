// The development bundle behind `npm start` / `coffer dev`: the embedded KMS (attestation root = this data
// dir's development root), a vault key whose policy admits only the development enclave measurement, and the
// storage service — all on loopback, all state under the data directory, no other setup.
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { CreateAliasCommand, CreateKeyCommand, DescribeKeyCommand, GetKeyPolicyCommand, KMSClient, ListAliasesCommand, PutKeyPolicyCommand } from '@aws-sdk/client-kms';
import { ensureDevRoot, measureEnclaveBundle } from '../enclave/attestation/index.js';
import type { ListenAddress } from './config.js';
import { lockDataDir } from './data-dir-lock.js';
import { attestedKeyPolicy, loadOrCreateCredentials, startKmsServer, type KmsCredential } from './kms/index.js';
import { startService } from './service.js';
import type { Logger } from './telemetry/index.js';

export const DEV_KEY_ALIAS = 'alias/coffer-vault';

export interface DevConfig {
  dataDir: string;
  listen: ListenAddress;
  kmsListen: string;
  logger?: Logger;
  /**
   * Each user gets /home/NAME, theirs alone, and nothing else without a grant (`coffer dev` sets this). Off,
   * every user may write anywhere (the library default, kept for callers that want a shared root).
   */
  homes?: boolean;
}

export interface RunningDev {
  storageUrl: string;
  kmsUrl: string;
  region: string;
  keyArn: string;
  keyAlias: string;
  measurement: { pcr0: string; bundleDir: string; files: number };
  sealer: KmsCredential;
  close(): Promise<void>;
}

/** The enclave code bundle whose measurement (PCR0) the development key policy admits. */
export function enclaveBundleDir(): string {
  return fileURLToPath(new URL('../enclave/', import.meta.url));
}

export async function startDev(config: DevConfig): Promise<RunningDev> {
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const lock = await lockDataDir(config.dataDir); // before the KMS touches the directory; the service shares it
  try {
    return await startDevLocked(config, lock.release);
  } catch (e) {
    await lock.release();
    throw e;
  }
}

async function startDevLocked(config: DevConfig, unlock: () => Promise<void>): Promise<RunningDev> {
  const devRoot = await ensureDevRoot(config.dataDir);
  const credentials = await loadOrCreateCredentials(config.dataDir);
  const admin = credentials[0] as KmsCredential;
  const bundleDir = enclaveBundleDir();
  const measurement = await measureEnclaveBundle(bundleDir);
  const kms = await startKmsServer({ dataDir: config.dataDir, listen: config.kmsListen, credentials, attestationRoot: devRoot.trustRoot });
  try {
    const keyArn = await ensureVaultKey(kms.url, kms.region, admin, measurement.pcr0);
    const service = await startService({ dataDir: config.dataDir, listen: config.listen, defaultRootRole: config.homes ? 'none' : 'write', homes: config.homes, logger: config.logger });
    return {
      storageUrl: service.url,
      kmsUrl: kms.url,
      region: kms.region,
      keyArn,
      keyAlias: DEV_KEY_ALIAS,
      measurement: { pcr0: measurement.pcr0, bundleDir, files: measurement.files },
      sealer: admin,
      close: async () => {
        await service.close();
        await kms.close();
        await unlock();
      },
    };
  } catch (e) {
    await kms.close();
    throw e;
  }
}

/**
 * Creates the development vault key (alias/coffer-vault) on first start; on later starts keeps it and, if the
 * enclave code changed, updates its policy to the new measurement (development only: production policies
 * are changed deliberately, never by a start-up).
 */
async function ensureVaultKey(endpoint: string, region: string, admin: KmsCredential, pcr0: string): Promise<string> {
  const client = new KMSClient({ region, endpoint, credentials: { accessKeyId: admin.accessKeyId, secretAccessKey: admin.secretAccessKey } });
  try {
    const policy = attestedKeyPolicy({ admins: [admin.principalArn], sealers: [admin.principalArn], enclaves: [admin.principalArn], imageSha384: [pcr0] });
    const aliases = await client.send(new ListAliasesCommand({}));
    const existing = aliases.Aliases?.find((a) => a.AliasName === DEV_KEY_ALIAS);
    if (existing?.TargetKeyId) {
      const current = await client.send(new GetKeyPolicyCommand({ KeyId: existing.TargetKeyId, PolicyName: 'default' }));
      if (current.Policy !== policy) await client.send(new PutKeyPolicyCommand({ KeyId: existing.TargetKeyId, PolicyName: 'default', Policy: policy }));
      const described = await client.send(new DescribeKeyCommand({ KeyId: existing.TargetKeyId }));
      return described.KeyMetadata?.Arn ?? existing.TargetKeyId;
    }
    const md = (await client.send(new CreateKeyCommand({ Policy: policy, Description: 'Coffer development vault key (dev enclave measurement only)' }))).KeyMetadata;
    await client.send(new CreateAliasCommand({ AliasName: DEV_KEY_ALIAS, TargetKeyId: md?.KeyId }));
    return md?.Arn ?? (md?.KeyId as string);
  } finally {
    client.destroy();
  }
}
