// Builds the storage-service client and the data-key provider from the shared flags.
import { Option, type Command } from 'commander';
import { KeyFileDataKeys, KmsDataKeys, type DataKeyProvider } from '../client/data-keys.js';
import { VaultClient } from '../client/vault-client.js';
import { CofferError, ErrorCode } from '../errors.js';
import { verifiedGateway } from './gateway-connect.js';
import { keyFileOption, serverOption, tokenOption } from './options.js';

export interface ServerFlags {
  server: string;
  token?: string;
  /** An enclave gateway's expected measurement: verify the https --server before anything is sent. */
  expectPcr0?: string;
}

export interface KeyFlags {
  keyFile?: string;
  kmsEndpoint?: string;
  kmsKeyId?: string;
  region?: string;
}

/** Adds --server and --token (with their environment variables) to a command. */
export function withServer(cmd: Command): Command {
  return cmd.addOption(serverOption()).addOption(tokenOption())
    .addOption(new Option('--expect-pcr0 <hex>', 'the --server is an enclave gateway: verify it runs this measurement (attested TLS) and pin its certificate').env('COFFER_EXPECT_PCR0'));
}

export function withKeys(cmd: Command): Command {
  return cmd
    .addOption(keyFileOption())
    .addOption(new Option('--kms-endpoint <url>', 'KMS endpoint (the embedded KMS, or a custom AWS KMS endpoint)').env('COFFER_KMS_ENDPOINT'))
    .addOption(new Option('--kms-key-id <id>', 'KMS key for new data keys (id, ARN or alias)').env('COFFER_KMS_KEY_ID'))
    .addOption(new Option('--region <region>', 'AWS region').env('AWS_REGION'));
}

export function connect(flags: ServerFlags, concurrency = 4, ca?: string): VaultClient {
  if (!flags.token) {
    throw new CofferError(ErrorCode.UNAUTHENTICATED, 'no token: pass --token or set COFFER_TOKEN (`coffer token --user NAME` mints a development token)');
  }
  return new VaultClient({ server: flags.server, token: flags.token, maxSockets: concurrency + 2, ...(ca ? { ca } : {}) });
}

export const DEFAULT_KMS_KEY_ID = 'alias/coffer-vault';

/**
 * Client-held-key mode when a key file is given; otherwise KMS mode when a KMS endpoint or key id is configured
 * (credentials from the AWS SDK's default chain: AWS_ACCESS_KEY_ID…, profiles, instance roles).
 */
export async function dataKeys(flags: KeyFlags): Promise<DataKeyProvider> {
  if (flags.keyFile) return KeyFileDataKeys.open(flags.keyFile);
  if (flags.kmsEndpoint || flags.kmsKeyId) {
    const region = flags.region ?? (flags.kmsEndpoint ? 'us-east-1' : undefined);
    // loaded only in KMS mode: the AWS SDK costs start-up time and memory that key-file users need not pay
    const { AwsKeyService } = await import('../kms/index.js');
    return new KmsDataKeys(new AwsKeyService({ keyId: flags.kmsKeyId ?? DEFAULT_KMS_KEY_ID, endpoint: flags.kmsEndpoint, region }));
  }
  throw new CofferError(
    ErrorCode.INVALID_ARGUMENT,
    'no key source: pass --key-file (client-held key; `coffer keygen --out FILE` creates one) or configure a KMS (COFFER_KMS_ENDPOINT / COFFER_KMS_KEY_ID)',
  );
}

/** Runs fn with a connected client and always closes it. */
export async function withClient<T>(flags: ServerFlags, fn: (client: VaultClient) => Promise<T>, concurrency?: number): Promise<T> {
  // an enclave gateway (--expect-pcr0) is verified first and its certificate pinned; its tree API has the same shapes
  const gateway = await verifiedGateway(flags.server, flags.expectPcr0);
  const client = connect(flags, concurrency, gateway?.ca);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

/**
 * A vault path as typed on the command line: one trailing `/` (what shell completion adds after a directory) is
 * dropped, so `coffer ls /docs/` means /docs. The HTTP API itself stays strict.
 */
export function vaultPathArg(value: string): string {
  return value.length > 1 && value.endsWith('/') && !value.endsWith('//') ? value.slice(0, -1) : value;
}

/** Joins a vault directory path and a name. */
export function joinVaultPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir.replace(/\/+$/, '')}/${name}`;
}
