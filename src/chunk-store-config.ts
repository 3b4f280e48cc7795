// Which chunk store a vault uses: COFFER_CHUNK_STORE=s3://bucket/prefix selects the S3-compatible store
// (endpoint, region and credentials from the AWS SDK's usual settings: AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL,
// AWS_REGION, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile; COFFER_S3_FORCE_PATH_STYLE=true for servers
// that need path-style addressing); otherwise the filesystem store in the data directory.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { openChunkStore, type ChunkStore, type ChunkStoreConfig, type FsChunkStoreOptions } from '../storage-backend/index.js';
import { directIoSetting } from './config.js';
import { CofferError, ErrorCode } from './errors.js';

/** `s3://bucket/prefix` → an S3 config. Throws INVALID_ARGUMENT for anything else. */
export function parseS3Url(url: string, env: NodeJS.ProcessEnv = process.env): ChunkStoreConfig & { kind: 's3' } {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url.trim());
  if (!m) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `"${url}" is not s3://bucket[/prefix] (bucket: 3-63 lowercase letters, digits, dots, hyphens)`);
  const prefix = (m[2] ?? '').replace(/\/+$/, '');
  const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  const pathStyle = (env.COFFER_S3_FORCE_PATH_STYLE ?? '').trim().toLowerCase();
  if (!['', 'true', 'false', '1', '0'].includes(pathStyle)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'COFFER_S3_FORCE_PATH_STYLE must be true or false');
  return {
    kind: 's3', bucket: m[1] as string, prefix: prefix ? `${prefix}/` : '',
    ...(endpoint ? { endpoint } : {}), ...(env.AWS_REGION ? { region: env.AWS_REGION } : {}),
    ...(pathStyle === 'true' || pathStyle === '1' ? { forcePathStyle: true } : {}),
  };
}

/** The vault's chunk store config: COFFER_CHUNK_STORE (s3://…) or the fs store rooted at the data dir. */
export function vaultChunkStoreConfig(dataDir: string, extra: Omit<FsChunkStoreOptions, 'root'> = {}, env: NodeJS.ProcessEnv = process.env): ChunkStoreConfig {
  const spec = env.COFFER_CHUNK_STORE?.trim();
  if (spec) {
    if (!spec.startsWith('s3://')) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `COFFER_CHUNK_STORE must be s3://bucket/prefix (unset means the data directory), not "${spec}"`);
    return parseS3Url(spec, env);
  }
  const directIo = directIoSetting(env.COFFER_DIRECT_IO);
  return { kind: 'fs', root: path.resolve(dataDir), ...extra, ...(directIo === undefined ? {} : { directIo }) };
}

/**
 * Opens the vault's chunk store; with `create` a missing data directory is made first, and with `bulk` an fs
 * store defers its fsyncs to FsChunkStore.flush() (restore).
 */
export async function openVaultChunkStore(dataDir: string, options: { create?: boolean; bulk?: boolean } = {}): Promise<ChunkStore> {
  const config = vaultChunkStoreConfig(dataDir, options.bulk ? { deferSync: true } : {});
  if (options.create) await mkdir(path.resolve(dataDir), { recursive: true, mode: 0o700 });
  return openChunkStore(config);
}
