// `coffer enclave run`: the process that stands for the enclave. At boot it measures its code bundle (PCR0),
// makes its RSA key (KMS Recipient) and its TLS key and certificate — in memory only —, checks that the KMS
// releases keys to it (a measurement the key policy does not admit ends the start with a clear message), then
// serves the plaintext gateway over TLS on the channel's gateway socket. Its only way out is the channel
// (host-channel.ts): the storage service and the KMS are reached through the host proxy's sockets.
import { rm } from 'node:fs/promises';
import { createServer as createHttpsServer, type Server } from 'node:https';
import { get as httpGet, type IncomingMessage, type ServerResponse } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import { KMSClient } from '@aws-sdk/client-kms';
import type { JWK } from 'jose';
import { createAuthenticator } from '../../src/api/auth/index.js';
import { sharedConnections } from '../../src/client/http.js';
import { VaultClient } from '../../src/client/vault-client.js';
import { CofferError, ErrorCode, isCofferError } from '../../src/errors.js';
import { AwsKeyService } from '../../src/kms/index.js';
import type { Logger } from '../../src/telemetry/index.js';
import { SimulatedNsm, type AttestationProvider } from '../attestation/index.js';
import { MacIntegrity, openMetadataKey, type IntegrityRefusal, type MetadataMacKey } from '../integrity/index.js';
import type { RootRole } from '../gateway/access.js';
import { EnclaveDataKeys } from '../gateway/data-keys.js';
import { FileOps } from '../gateway/files.js';
import { attest, makeEnclaveIdentity, type EnclaveIdentity } from '../gateway/identity.js';
import type { RecordIntegrity } from '../gateway/records.js';
import { createGatewayMetrics } from '../gateway/metrics.js';
import { createGatewayApp } from '../gateway/routes.js';
import { startEnclaveS3, type EnclaveS3 } from '../s3/enclave-s3.js';
import { measureEnclaveCode } from './bundle.js';
import { fileKeySlot } from './key-slot.js';
import { KMS_VIA_CHANNEL, STORAGE_VIA_CHANNEL, channelPaths, unixSocketAgent } from './host-channel.js';

export interface EnclaveOptions {
  channelDir: string;
  /** Development: the data directory whose development root the simulated NSM signs with. */
  devDataDir?: string;
  /** Use this provider instead of a simulated NSM (production: NitroNsmProvider). */
  provider?: AttestationProvider;
  /** KMS key for new data keys, and the region and credentials of the enclave's KMS principal. */
  kmsKeyId: string;
  kmsRegion: string;
  kmsCredentials?: { accessKeyId: string; secretAccessKey: string };
  /** The token issuer's public key (the enclave verifies every token itself). */
  tokenJwk: JWK;
  tokenIssuer?: string;
  tokenAudience?: string;
  tokenAlgorithms?: string[];
  /** Names the gateway certificate is valid for (default localhost, 127.0.0.1, ::1). */
  tlsNames?: string[];
  /** The role every user has on '/' when the enclave decides access from verified records (default 'none'). */
  defaultRootRole?: RootRole;
  /** Development homes: accept /home and /home/NAME as the storage service makes them (enclave/integrity/verifier.ts). */
  homes?: boolean;
  /** Replaces the record MAC checks (tests only: without it the enclave opens its metadata key and checks MACs). */
  integrity?: RecordIntegrity;
  logger?: Logger;
}

export interface RunningEnclave {
  pcr0: string;
  identity: EnclaveIdentity;
  files: FileOps;
  close(): Promise<void>;
}

/**
 * Boots the enclave. Throws CofferError KMS_ACCESS_DENIED with a plain message when the KMS will not release
 * keys to this measurement, UNAVAILABLE when the KMS cannot be reached through the channel, and the
 * provider's and listen errors.
 */
export async function startEnclave(options: EnclaveOptions): Promise<RunningEnclave> {
  const paths = channelPaths(options.channelDir);
  const measurement = await measureEnclaveCode();
  let provider = options.provider;
  if (!provider) {
    if (!options.devDataDir) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'without a Nitro NSM the enclave needs --data-dir (the development root of the simulated NSM)');
    provider = await SimulatedNsm.create({ dataDir: options.devDataDir, pcrs: { 0: measurement.pcr0, 1: measurement.pcr1, 2: measurement.pcr2 } });
  }
  const identity = await makeEnclaveIdentity(provider, options.tlsNames ?? ['localhost', '127.0.0.1', '::1']);
  const kmsClient = new KMSClient({
    region: options.kmsRegion,
    endpoint: KMS_VIA_CHANNEL,
    ...(options.kmsCredentials ? { credentials: options.kmsCredentials } : {}),
    requestHandler: { httpAgent: unixSocketAgent(paths.kms), requestTimeout: 30_000 },
    maxAttempts: 2,
  });
  const keys = new EnclaveDataKeys(identity, new AwsKeyService({ keyId: options.kmsKeyId, client: kmsClient }));
  try {
    await keys.probe();
  } catch (e) {
    keys.close();
    kmsClient.destroy();
    if (isCofferError(e, ErrorCode.KMS_ACCESS_DENIED)) {
      throw new CofferError(ErrorCode.KMS_ACCESS_DENIED, `the KMS key policy does not admit this enclave (PCR0 ${measurement.pcr0}): refusing to start. ${e.message}`, { cause: e });
    }
    throw new CofferError(isCofferError(e) ? e.code : ErrorCode.UNAVAILABLE, `cannot get a data key from the KMS through the host channel: ${(e as Error).message}`, { cause: e });
  }
  // the metadata MAC key (docs/metadata.md "Record MACs"): made by the first enclave, kept wrapped beside the channel
  let metadataKey: MetadataMacKey | null = null;
  let integrity = options.integrity;
  if (!integrity) {
    try {
      metadataKey = await openMetadataKey({
        kms: kmsClient, keyId: options.kmsKeyId, slot: fileKeySlot(paths.dir),
        recipient: async () => ({ attestationDocument: await attest(identity), privateKey: identity.rsaPrivateKey }),
      });
    } catch (e) {
      keys.close();
      kmsClient.destroy();
      throw new CofferError(isCofferError(e) ? e.code : ErrorCode.UNAVAILABLE, `cannot open the metadata MAC key: ${(e as Error).message}`, { cause: e });
    }
    const onRefused = (r: IntegrityRefusal): void => {
      // the audit record of a refused record: the enclave's log (the host keeps it; it cannot make one up that verifies)
      options.logger?.warn({ audit: 'integrity.refused', ...r }, `refused the ${r.kind} record of ${r.target}: ${r.reason}`);
    };
    integrity = new MacIntegrity(metadataKey, onRefused, keys, { homes: options.homes === true });
  }
  const auth = await createAuthenticator({
    kind: 'jwk', jwk: options.tokenJwk, issuer: options.tokenIssuer ?? 'coffer-dev', audience: options.tokenAudience ?? 'coffer', algorithms: options.tokenAlgorithms ?? ['EdDSA'],
  });
  // one set of keep-alive connections to the storage service for every caller: a request's records client then
  // costs no new connection through the channel (tokens go on each request, so users may share connections)
  const storageConnections = sharedConnections({ server: STORAGE_VIA_CHANNEL, socketPath: paths.storage, maxSockets: 64 });
  const files = new FileOps({
    storage: (caller) => new VaultClient({ server: STORAGE_VIA_CHANNEL, token: caller.token, socketPath: paths.storage, shared: storageConnections }),
    keys,
    integrity,
    defaultRootRole: options.defaultRootRole ?? 'none',
  });
  const storageAgent = unixSocketAgent(paths.storage);
  const ready = readiness(
    () => storageReady(storageAgent),
    () => keys.probe(),
  );
  const app = createGatewayApp({
    files, auth, attest: (nonce) => attest(identity, nonce), ready, metrics: createGatewayMetrics({ budgets: { seal: files.sealBudget, read: files.readBudget } }), ...(options.logger ? { logger: options.logger } : {}),
  });
  // the S3 API: its own listener on the channel's S3 socket, same attested certificate (docs/s3-api.md)
  let s3: EnclaveS3;
  try {
    s3 = await startEnclaveS3({ channelDir: paths.dir, socket: paths.s3, identity, files, kms: kmsClient, kmsKeyId: options.kmsKeyId, auth, ...(options.logger ? { logger: options.logger } : {}) });
  } catch (e) {
    storageConnections.close();
    keys.close();
    kmsClient.destroy();
    metadataKey?.destroy();
    throw new CofferError(isCofferError(e) ? e.code : ErrorCode.UNAVAILABLE, `cannot start the S3 listener: ${(e as Error).message}`, { cause: e });
  }
  app.route('/v1/s3', s3.adminRoutes);
  const listener = getRequestListener(app.fetch);
  const server: Server = createHttpsServer({
    key: identity.tls.keyPem,
    cert: identity.tls.certPem,
    maxHeaderSize: 16 * 1024,
    requestTimeout: 0, // large bodies stream for as long as they stream; idle sockets still time out
    headersTimeout: 30_000,
  }, (req: IncomingMessage, res: ServerResponse) => void listener(req, res));
  server.on('request', (req: IncomingMessage) => req.on('error', () => undefined));
  await rm(paths.gateway, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(paths.gateway, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    pcr0: measurement.pcr0,
    identity,
    files,
    close: () => new Promise<void>((resolve) => {
      void s3.close();
      server.close(() => resolve());
      server.closeAllConnections();
      storageAgent.destroy();
      storageConnections.close();
      keys.close();
      metadataKey?.destroy();
    }),
  };
}

/** The storage service's own /readyz, asked through the channel. Throws UNAVAILABLE unless it answers 200. */
function storageReady(agent: import('node:http').Agent): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = httpGet(`${STORAGE_VIA_CHANNEL}/readyz`, { agent, timeout: 2_000 }, (res) => {
      res.resume();
      if (res.statusCode === 200) resolve();
      else reject(new CofferError(ErrorCode.UNAVAILABLE, `the storage service is not ready (${res.statusCode})`, { retryable: true }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e) => reject(new CofferError(ErrorCode.UNAVAILABLE, `the storage service cannot be reached through the channel: ${e.message}`, { cause: e, retryable: true })));
  });
}

/** How long a successful KMS probe counts (a probe is a GenerateDataKey and a Decrypt with an attestation document). */
const KMS_READY_MS = 30_000;

/**
 * /readyz: the storage service answers through the channel (every time), and the KMS releases keys to this
 * enclave (probed at most every KMS_READY_MS while it succeeds; every time while it fails).
 */
function readiness(storage: () => Promise<void>, kms: () => Promise<void>): () => Promise<void> {
  let kmsOkUntil = 0;
  return async () => {
    await storage();
    if (Date.now() < kmsOkUntil) return;
    try {
      await kms();
    } catch (e) {
      if (isCofferError(e, ErrorCode.KMS_ACCESS_DENIED)) throw e;
      throw new CofferError(ErrorCode.UNAVAILABLE, `the KMS cannot be reached through the channel: ${(e as Error).message}`, { cause: e, retryable: true });
    }
    kmsOkUntil = Date.now() + KMS_READY_MS;
  };
}
