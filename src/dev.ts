// The development bundle behind `npm start` / `coffer dev`: the embedded KMS (attestation root = this data
// dir's development root), a vault key whose policy admits only the development enclave measurement, and the
// storage service — all on loopback, all state under the data directory, no other setup. KMS roles are separate
// (docs/kms.md "Key custody"): clients get the sealer credential, the enclave its own, and the administrator's
// stays in <dataDir>/kms/credentials.json (mode 0600) for admin commands such as `coffer keys rewrap`.
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CreateAliasCommand, CreateKeyCommand, DescribeKeyCommand, GetKeyPolicyCommand, KMSClient, ListAliasesCommand } from '@aws-sdk/client-kms';
import { devRootDir, ensureDevRoot } from '../enclave/attestation/index.js';
import { measureEnclaveCode } from '../enclave/runtime/bundle.js';
import { launchEnclave, type LaunchedEnclave } from '../enclave/runtime/launch.js';
import { launchHostProxy, type ProxyProcess } from '../enclave/runtime/proxy-process.js';
import { ENCLAVE_ISSUER_FILE, devPublicJwk } from './api/auth/index.js';
import type { ListenAddress } from './config.js';
import { lockDataDir } from './data-dir-lock.js';
import { CofferError, ErrorCode } from './errors.js';
import {
  attestationRuleOf, attestedKeyPolicy, loadOrCreateCredentials, roleCredentials, startKmsServer, type KmsCredential, type KmsServer, type RoleCredentials,
} from './kms/index.js';
import { startService, type RunningService } from './service.js';
import type { Logger } from './telemetry/index.js';

/** Development vault keys are aliased `alias/coffer-vault/<first 16 hex digits of their policy's rule fingerprint>`. */
export const DEV_KEY_ALIAS = 'alias/coffer-vault';

export interface DevConfig {
  dataDir: string;
  listen: ListenAddress;
  kmsListen: string;
  /** Where the enclave gateway's host proxy listens (https). */
  gatewayListen?: ListenAddress;
  /** Where the host proxy forwards S3 clients to the enclave's S3 listener (https; default 127.0.0.1:7701). */
  s3Listen?: ListenAddress;
  /** Run without the enclave gateway (storage service + KMS only). */
  noGateway?: boolean;
  /** The enclave's network namespace (see enclave/runtime/launch.ts). */
  isolateNetwork?: 'auto' | 'on' | 'off';
  /** The role every user has on '/', for the storage service and the enclave alike (default 'write'). */
  defaultRootRole?: 'none' | 'read' | 'write';
  /** Metadata in this MongoDB-wire database instead of SQLite (default: COFFER_MONGODB_URI, else SQLite). */
  mongoUri?: string;
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
  /** The credential for clients: GenerateDataKey/Encrypt of their own new data only. */
  sealer: KmsCredential;
  /** The credential enclaves call the KMS with: data keys only through an admitted Recipient. */
  enclaveCredential: KmsCredential;
  /** The vault key's policy text (a key made with the same text is the only place `keys rewrap` can move data keys to). */
  keyPolicy: string;
  /** https:// URL of the enclave gateway (null with noGateway). */
  gatewayUrl: string | null;
  /** https:// URL of the enclave's S3 listener, path-style, same attested certificate (null with noGateway). */
  s3Url: string | null;
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
  const roles = roleCredentials(credentials);
  // the one measurement: the enclave code bundle (enclave/runtime/bundle.ts), the same from dist/ or source
  const measurement = await measureEnclaveCode();
  const bundleDir = measurement.root;
  const kms = await startKmsServer({ dataDir: config.dataDir, listen: config.kmsListen, credentials, attestationRoot: devRoot.trustRoot });
  try {
    const keyPolicy = vaultKeyPolicy(roles, measurement.pcr0);
    const { keyArn, keyAlias } = await ensureVaultKey(kms.url, kms.region, roles.admin, keyPolicy);
    const rootRole = config.defaultRootRole ?? (config.homes ? 'none' : 'write');
    const channelDir = path.join(config.dataDir, 'enclave');
    // the storage service accepts the enclave's tokens for S3 users only from this measurement (src/api/auth/enclave-issuer.ts)
    const enclaveIssuer = { file: path.join(channelDir, ENCLAVE_ISSUER_FILE), root: devRoot.trustRoot, pcrPolicy: { pcrs: { 0: measurement.pcr0 } } };
    const service = await startService({
      dataDir: config.dataDir, listen: config.listen, defaultRootRole: rootRole, homes: config.homes, logger: config.logger, ...(config.mongoUri ? { mongoUri: config.mongoUri } : {}),
      ...(config.noGateway ? {} : { enclaveIssuer }),
    });
    let proxy: ProxyProcess | null = null;
    let enclave: LaunchedEnclave | null = null;
    try {
      if (!config.noGateway) {
        await mkdir(channelDir, { recursive: true, mode: 0o700 });
        await chmod(channelDir, 0o700);
        // the enclave verifies tokens with the issuer's public key only; it never reads the signing key
        const jwkFile = path.join(channelDir, 'token-issuer.jwk.json');
        await writeFile(jwkFile, JSON.stringify(await devPublicJwk(config.dataDir)) + '\n', { mode: 0o644 });
        proxy = await launchHostProxy({ channelDir, listen: config.gatewayListen ?? { host: '127.0.0.1', port: 7443 }, s3Listen: config.s3Listen ?? s3ListenBeside(config.gatewayListen), storageUrl: service.url, kmsUrl: kms.url });
        enclave = await launchEnclave({
          args: ['enclave', 'run', '--channel', channelDir, '--data-dir', config.dataDir, '--kms-key-id', keyArn, '--region', kms.region, '--token-jwk', jwkFile, '--default-root-role', rootRole, ...(config.homes ? ['--homes'] : [])],
          env: { AWS_ACCESS_KEY_ID: roles.enclave.accessKeyId, AWS_SECRET_ACCESS_KEY: roles.enclave.secretAccessKey, COFFER_LOG_LEVEL: process.env.COFFER_LOG_LEVEL ?? 'warn' },
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
      keyAlias,
      measurement: { pcr0: measurement.pcr0, bundleDir, files: measurement.files },
      sealer: roles.sealer,
      enclaveCredential: roles.enclave,
      keyPolicy,
      gatewayUrl: proxy?.url ?? null,
      s3Url: proxy?.s3Url ?? null,
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
        await unlock();
      },
    };
    return running;
  } catch (e) {
    await kms.close();
    throw e;
  }
}

/** The S3 listener's default: 7701 beside the gateway's host, or any free port when the gateway takes any (tests). */
function s3ListenBeside(gateway: ListenAddress | undefined): ListenAddress {
  return { host: gateway?.host ?? '127.0.0.1', port: gateway?.port === 0 ? 0 : 7701 };
}

/** The development vault key's policy: each role its own principal; the development enclave measurement only. */
export function vaultKeyPolicy(roles: RoleCredentials, pcr0: string): string {
  return attestedKeyPolicy({ admins: [roles.admin.principalArn], sealers: [roles.sealer.principalArn], enclaves: [roles.enclave.principalArn], imageSha384: [pcr0] });
}

/**
 * Finds or creates the development vault key for this policy. The policy is immutable (attestation-bound), so a
 * changed enclave measurement means a new key under a new alias; files sealed under an earlier key stay readable
 * only by the enclave code that key admits (development only: production keys are made deliberately).
 */
async function ensureVaultKey(endpoint: string, region: string, admin: KmsCredential, policy: string): Promise<{ keyArn: string; keyAlias: string }> {
  const client = new KMSClient({ region, endpoint, credentials: { accessKeyId: admin.accessKeyId, secretAccessKey: admin.secretAccessKey } });
  const keyAlias = `${DEV_KEY_ALIAS}/${attestationRuleOf(policy).fingerprint.slice(0, 16)}`;
  try {
    const aliases = await client.send(new ListAliasesCommand({}));
    const existing = aliases.Aliases?.find((a) => a.AliasName === keyAlias);
    if (existing?.TargetKeyId) {
      const current = await client.send(new GetKeyPolicyCommand({ KeyId: existing.TargetKeyId, PolicyName: 'default' }));
      if (attestationRuleOf(current.Policy ?? '').fingerprint !== attestationRuleOf(policy).fingerprint) {
        throw new CofferError(ErrorCode.INTEGRITY, `${keyAlias} names a key whose policy is not the development vault policy; refusing to seal under it`);
      }
      const described = await client.send(new DescribeKeyCommand({ KeyId: existing.TargetKeyId }));
      return { keyArn: described.KeyMetadata?.Arn ?? existing.TargetKeyId, keyAlias };
    }
    // the policy denies PutKeyPolicy to everyone, so AWS's lockout check must be bypassed, deliberately
    const md = (await client.send(new CreateKeyCommand({ Policy: policy, BypassPolicyLockoutSafetyCheck: true, Description: 'Coffer development vault key (dev enclave measurement only)' }))).KeyMetadata;
    await client.send(new CreateAliasCommand({ AliasName: keyAlias, TargetKeyId: md?.KeyId }));
    return { keyArn: md?.Arn ?? (md?.KeyId as string), keyAlias };
  } finally {
    client.destroy();
  }
}
