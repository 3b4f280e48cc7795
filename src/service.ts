// Wires one storage service from configuration: metadata store (SQLite in the data dir or MongoDB; pending
// migrations applied at start, a newer schema refused), the filesystem chunk store, the vault, auth, and the
// HTTP server. Used by `coffer serve` and `coffer dev`.
import { constants } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { createAuthenticator, startStorageServer, type AuthConfig } from './api/index.js';
import { createEnclaveIssuerAuthenticator, withEnclaveIssuer, type EnclaveIssuerConfig } from './api/auth/index.js';
import { metadataConfig, type ListenAddress } from './config.js';
import { lockDataDir } from './data-dir-lock.js';
import { releasingReserveWhenFull, SpaceReserve, spaceReserveBytes, withHeadroom } from './space/index.js';
import { vaultChunkStoreConfig } from './chunk-store-config.js';
import { CofferError, ErrorCode } from './errors.js';
import { openMetadataStore } from './metadata/index.js';
import { createLogger, createServiceMetrics, type Logger } from './telemetry/index.js';
import { Vault, type RootRole } from './vault/index.js';
import { openChunkStore } from '../storage-backend/index.js';

export interface ServiceConfig {
  dataDir: string;
  listen: ListenAddress;
  mongoUri?: string;
  defaultRootRole: RootRole;
  /** JWKS issuer for production tokens; development key in the data dir when absent. */
  jwks?: { url: string; issuer: string; audience: string };
  gcIntervalMs?: number;
  uploadGraceMs?: number;
  /** Give each user /home/NAME on first sight (development mode; see docs/vault.md "Homes"). */
  homes?: boolean;
  /**
   * Accept tokens the attested enclave signs for the users it authenticated itself (S3 access keys): its
   * published issuer key, checked against this root and PCR policy (src/api/auth/enclave-issuer.ts). Absent,
   * such tokens are refused.
   */
  enclaveIssuer?: EnclaveIssuerConfig;
  logger?: Logger;
}

export interface RunningService {
  url: string;
  close(): Promise<void>;
}

/** Creates the data directory if needed and checks it is a directory this process can write, said plainly if not. */
async function prepareDataDir(dataDir: string): Promise<void> {
  try {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    await access(dataDir, constants.W_OK | constants.X_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    const why = code === 'EEXIST' || code === 'ENOTDIR' ? 'a file stands where a directory is needed'
      : code === 'EROFS' ? 'the filesystem is read-only'
      : code === 'EACCES' || code === 'EPERM' ? 'permission denied'
      : code === 'ENOENT' ? 'a parent directory cannot be created (read-only filesystem?)'
      : (e as Error).message;
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `data directory ${dataDir} is not usable: ${why} (check --data-dir or COFFER_DATA_DIR)`, { cause: e });
  }
}

/** Starts the service. Throws CONFLICT (another service holds the data directory), SCHEMA_TOO_NEW, METADATA, NO_SPACE, listen errors. Closes what it opened on failure. */
export async function startService(config: ServiceConfig): Promise<RunningService> {
  const dataDir = path.resolve(config.dataDir);
  await prepareDataDir(dataDir);
  const logger = config.logger ?? createLogger();
  // a start on a full disk (the usual moment for a restart) first gives back the space reserve: the lock file,
  // the database's journal and the first GC pass need a little room
  const reserve = await SpaceReserve.open(dataDir, spaceReserveBytes(), (message) => logger.warn({ dataDir }, message));
  if (reserve.held && (await reserve.free()) < reserve.bytes) await reserve.release();
  // a second service on this directory is refused here (with MongoDB, on this machine: replicas on other
  // machines may share the directory on a shared filesystem)
  const metadata = metadataConfig(dataDir, config.mongoUri);
  const lock = await lockDataDir(dataDir, { perHost: metadata.kind === 'mongo' });
  let opened;
  try {
    opened = await openMetadataStore(metadata);
  } catch (e) {
    await lock.release();
    throw e;
  }
  const rawStore = opened;
  const store = releasingReserveWhenFull(rawStore, reserve);
  const closers: Array<() => Promise<void>> = [() => lock.release(), () => rawStore.close()];
  const closeAll = async (): Promise<void> => {
    for (const c of closers.reverse()) await c().catch((e: unknown) => logger.error({ err: e }, 'close failed'));
  };
  try {
    const metrics = createServiceMetrics();
    // COFFER_CHUNK_STORE=s3://bucket/prefix selects the S3 store; otherwise the fs store in the data dir
    const chunks = await openChunkStore(vaultChunkStoreConfig(dataDir, {
      onFsync: (seconds, target) => metrics.fsyncDuration.observe({ target }, seconds),
    }));
    closers.push(() => chunks.close());
    const vault = await Vault.open(store, withHeadroom(chunks, reserve), { defaultRootRole: config.defaultRootRole, uploadGraceMs: config.uploadGraceMs, homes: config.homes });
    const authConfig: AuthConfig = config.jwks
      ? { kind: 'jwks', jwksUrl: config.jwks.url, issuer: config.jwks.issuer, audience: config.jwks.audience }
      : { kind: 'dev', dataDir };
    const auth = withEnclaveIssuer(await createAuthenticator(authConfig), config.enclaveIssuer ? createEnclaveIssuerAuthenticator(config.enclaveIssuer) : null);
    await reserve.ensure();
    const server = await startStorageServer({ vault, auth, listen: config.listen, logger, metrics, gcIntervalMs: config.gcIntervalMs, afterGc: () => void reserve.ensure() });
    closers.push(() => server.close());
    logger.info({ url: server.url, metadata: store.kind, dataDir, chunkStore: 'bucket' in chunks ? `s3://${String(chunks.bucket)}` : 'fs', directIo: 'directIo' in chunks ? chunks.directIo : false }, 'storage service started');
    return { url: server.url, close: closeAll };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

/** Resolves when the process is asked to stop (SIGINT/SIGTERM), after closing `service`. */
export function untilSignal(close: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void close().finally(resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
