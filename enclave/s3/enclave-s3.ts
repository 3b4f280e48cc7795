// Composition root of the S3 API inside the enclave (`coffer enclave run`): its own listener on the channel's S3
// socket (the host proxy forwards a TCP port to it, bytes only), TLS with the gateway's attested certificate, the
// S3 handler over the gateway's FileOps (gateway-backend.ts) acting as the access key's user, access keys sealed
// under the KMS-released key (sealing-key.ts) in `<channel>/s3-access-keys.json`, the storage service reached
// with tokens the enclave signs for that user (storage-tokens.ts), and the admin routes that manage the keys.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { KMSClient } from '@aws-sdk/client-kms';
import type { Hono } from 'hono';
import type { Authenticator } from '../../src/api/auth/index.js';
import type { Logger } from '../../src/telemetry/index.js';
import type { FileOps } from '../gateway/index.js';
import { attest, type EnclaveIdentity } from '../gateway/identity.js';
import { fileKeySlot } from '../runtime/key-slot.js';
import { AccessKeyStore } from './access-keys.js';
import { createAccessKeyRoutes } from './admin-routes.js';
import { GatewayBackend } from './gateway-backend.js';
import { createS3Handler } from './handler.js';
import { S3_SEALING_KEY_FILE, openS3SealingKey } from './sealing-key.js';
import { startS3Server, type S3Server } from './server.js';
import { startEnclaveTokenIssuer } from './storage-tokens.js';
import { UploadSweeper } from './upload-sweep.js';

/** The sealed access-key records, in the channel directory (untrusted host storage: every record is AEAD-bound). */
export const S3_ACCESS_KEYS_FILE = 's3-access-keys.json';

export interface EnclaveS3Options {
  channelDir: string;
  /** The channel's S3 socket the listener serves on. */
  socket: string;
  identity: EnclaveIdentity;
  files: FileOps;
  kms: KMSClient;
  kmsKeyId: string;
  /** The gateway's token authenticator (the admin routes accept administrators' tokens only). */
  auth: Authenticator;
  logger?: Logger;
}

export interface EnclaveS3 {
  server: S3Server;
  /** Mount under /v1/s3 on the gateway's app. */
  adminRoutes: Hono<{ Variables: { actor: string } }>;
  close(): Promise<void>;
}

/** Starts the S3 listener. Throws the KMS errors of the sealing key (KMS_ACCESS_DENIED, KEY_INVALID, KMS) and listen errors. */
export async function startEnclaveS3(o: EnclaveS3Options): Promise<EnclaveS3> {
  const recipient = async (): Promise<{ attestationDocument: Uint8Array; privateKey: EnclaveIdentity['rsaPrivateKey'] }> =>
    ({ attestationDocument: await attest(o.identity), privateKey: o.identity.rsaPrivateKey });
  const sealer = await openS3SealingKey({ kms: o.kms, keyId: o.kmsKeyId, slot: fileKeySlot(o.channelDir, S3_SEALING_KEY_FILE), recipient });
  const store = new AccessKeyStore(path.join(o.channelDir, S3_ACCESS_KEYS_FILE), sealer);
  const issuer = await startEnclaveTokenIssuer(o.identity.provider, o.identity.rsaPublicSpki, o.channelDir);
  // an S3 request acts as the key's user, never as an administrator (docs/s3-api.md)
  const backend = new GatewayBackend(o.files, async (who) => ({ user: who.user, admin: false, token: await issuer.tokenFor(who.user) }));
  // abandoned multipart uploads: each bucket swept as a user who writes to it, at most hourly (upload-sweep.ts)
  const sweeper = new UploadSweeper({
    backend,
    onSwept: (bucket, user, r) => { if (r.removedUploads + r.removedTemps > 0) o.logger?.info({ bucket, user, ...r }, 's3 abandoned uploads swept'); },
    onError: (bucket, user, e) => o.logger?.warn({ bucket, user, err: e instanceof Error ? e.message : String(e) }, 's3 upload sweep failed'),
  });
  const handler = createS3Handler({ backend, lookup: (id) => store.lookup(id), sweeper });
  let server: S3Server;
  try {
    await rm(o.socket, { force: true }); // a socket file left by an earlier run
    server = await startS3Server({ handler, listen: { path: o.socket }, tls: { cert: o.identity.tls.certPem, key: o.identity.tls.keyPem } });
  } catch (e) {
    await issuer.close();
    throw e;
  }
  const audit = (event: Record<string, string>): void => o.logger?.info(event, event.audit ?? 's3');
  return {
    server,
    adminRoutes: createAccessKeyRoutes(store, o.auth, audit),
    async close() {
      await server.close();
      await sweeper.idle();
      await issuer.close();
    },
  };
}
