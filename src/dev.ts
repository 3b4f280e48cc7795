// The development bundle behind `npm start` / `coffer dev`: the embedded KMS (attestation root = this data
// dir's development root), a vault key whose policy admits only the development enclave measurement, and the
// storage service — all on loopback, all state under the data directory, no other setup.
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CreateAliasCommand, CreateKeyCommand, DescribeKeyCommand, GetKeyPolicyCommand, KMSClient, ListAliasesCommand, PutKeyPolicyCommand } from '@aws-sdk/client-kms';
import { devRootDir, ensureDevRoot } from '../enclave/attestation/index.js';
import { measureEnclaveCode } from '../enclave/runtime/bundle.js';
import { launchEnclave, type LaunchedEnclave } from '../enclave/runtime/launch.js';
import { launchHostProxy, type ProxyProcess } from '../enclave/runtime/proxy-process.js';
import { devPublicJwk } from './api/auth/index.js';
import type { ListenAddress } from './config.js';
import { attestedKeyPolicy, loadOrCreateCredentials, startKmsServer, type KmsCredential, type KmsServer } from './kms/index.js';
import { startService, type RunningService } from './service.js';
import type { Logger } from './telemetry/index.js';

export const DEV_KEY_ALIAS = 'alias/coffer-vault';

export interface DevConfig {
  dataDir: string;
  listen: ListenAddress;
  kmsListen: string;
  /** Where the enclave gateway's host proxy listens (https). */
  gatewayListen?: ListenAddress;
  /** Run without the enclave gateway (storage service + KMS only). */
  noGateway?: boolean;
  /** The enclave's network namespace (see enclave/runtime/launch.ts). */
  isolateNetwork?: 'auto' | 'on' | 'off';
  logger?: Logger;
}

export interface RunningDev {
  storageUrl: string;
  kmsUrl: string;
  region: string;
  keyArn: string;
  keyAlias: string;
  measurement: { pcr0: string; bundleDir: string; files: number };
  sealer: KmsCredential;
  /** https:// URL of the enclave gateway (null with noGateway). */
  gatewayUrl: string | null;
  /** The development attestation root clients verify the gateway against. */
  devRootCert: string;
  enclave: LaunchedEnclave | null;
  /** The host proxy, a process of its own (enclave/runtime/proxy-process.ts says why). */
  proxy: ProxyProcess | null;
  /** The embedded KMS (tests stop it to show what an unreachable KMS does). */
  kms: KmsServer;
  /** The storage service (tests restart it mid-upload). */
  service: RunningService;
  close(): Promise<void>;
}

export async function startDev(config: DevConfig): Promise<RunningDev> {
  const devRoot = await ensureDevRoot(config.dataDir);
  const credentials = await loadOrCreateCredentials(config.dataDir);
  const admin = credentials[0] as KmsCredential;
  // the one measurement: the enclave code bundle (enclave/runtime/bundle.ts), the same from dist/ or source
  const measurement = await measureEnclaveCode();
  const bundleDir = measurement.root;
  const kms = await startKmsServer({ dataDir: config.dataDir, listen: config.kmsListen, credentials, attestationRoot: devRoot.trustRoot });
  try {
    const keyArn = await ensureVaultKey(kms.url, kms.region, admin, measurement.pcr0);
    const service = await startService({ dataDir: config.dataDir, listen: config.listen, defaultRootRole: 'write', logger: config.logger });
    let proxy: ProxyProcess | null = null;
    let enclave: LaunchedEnclave | null = null;
    try {
      if (!config.noGateway) {
        const channelDir = path.join(config.dataDir, 'enclave');
        await mkdir(channelDir, { recursive: true, mode: 0o700 });
        await chmod(channelDir, 0o700);
        // the enclave verifies tokens with the issuer's public key only; it never reads the signing key
        const jwkFile = path.join(channelDir, 'token-issuer.jwk.json');
        await writeFile(jwkFile, JSON.stringify(await devPublicJwk(config.dataDir)) + '\n', { mode: 0o644 });
        proxy = await launchHostProxy({ channelDir, listen: config.gatewayListen ?? { host: '127.0.0.1', port: 7443 }, storageUrl: service.url, kmsUrl: kms.url });
        enclave = await launchEnclave({
          args: ['enclave', 'run', '--channel', channelDir, '--data-dir', config.dataDir, '--kms-key-id', keyArn, '--region', kms.region, '--token-jwk', jwkFile],
          env: { AWS_ACCESS_KEY_ID: admin.accessKeyId, AWS_SECRET_ACCESS_KEY: admin.secretAccessKey, COFFER_LOG_LEVEL: process.env.COFFER_LOG_LEVEL ?? 'warn' },
          ...(config.isolateNetwork ? { isolateNetwork: config.isolateNetwork } : {}),
        });
        if (enclave.pcr0 !== measurement.pcr0) throw new Error(`the enclave measured ${enclave.pcr0}, the key policy admits ${measurement.pcr0}`);
      }
    } catch (e) {
      await enclave?.stop();
      await proxy?.close();
      await service.close();
      throw e;
    }
    const running: RunningDev = {
      storageUrl: service.url,
      kmsUrl: kms.url,
      region: kms.region,
      keyArn,
      keyAlias: DEV_KEY_ALIAS,
      measurement: { pcr0: measurement.pcr0, bundleDir, files: measurement.files },
      sealer: admin,
      gatewayUrl: proxy?.url ?? null,
      devRootCert: path.join(devRootDir(config.dataDir), 'root.pem'),
      enclave,
      proxy,
      kms,
      service,
      close: async () => {
        await enclave?.stop();
        await proxy?.close();
        await running.service.close();
        await running.kms.close(); // the current one: a test may have replaced it
      },
    };
    return running;
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
