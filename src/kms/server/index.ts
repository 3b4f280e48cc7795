// The embedded AWS-KMS-compatible server: startKmsServer() listens on HOST:PORT and speaks the AWS KMS JSON 1.1
// protocol, so @aws-sdk/client-kms works against it unchanged with an `endpoint` override. See docs/kms.md.
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TrustRoot } from '../../attestation/index.js';
import { CofferError, ErrorCode } from '../../errors.js';
import { parseListen } from '../../config.js';
import { DEFAULT_ACCOUNT_ID } from './credentials.js';
import { KeyStore } from './key-store.js';
import { createKmsRequestListener } from './router.js';
import type { KmsCredential } from './sigv4.js';

export interface KmsServerOptions {
  dataDir: string;
  /** HOST:PORT (port 0 = any free port); `[::1]:PORT` for IPv6. */
  listen: string;
  credentials: readonly KmsCredential[];
  /** Root that Recipient attestation documents must chain to: the AWS Nitro root, or the dev root of this data dir. */
  attestationRoot: TrustRoot;
  /** Maximum age of an attestation document; default 5 minutes. */
  attestationMaxAgeMs?: number;
  /** Default us-east-1; SigV4 credential scopes must name it. */
  region?: string;
  /** Default 000000000000; appears in key ARNs. */
  accountId?: string;
  /** Serve HTTPS with this certificate and key (PEM) instead of plain HTTP. */
  tls?: { cert: string; key: string };
  /** Injectable clock (SigV4 skew, attestation age, rotation); default: the system clock. */
  now?: () => Date;
  onInternalError?: (e: unknown) => void;
}

export interface KmsServer {
  /** Endpoint for the SDK, e.g. http://127.0.0.1:41234 */
  url: string;
  region: string;
  accountId: string;
  close(): Promise<void>;
}

/**
 * Opens the key store of `dataDir` (creating master key and store on first start) and starts listening.
 * @throws CofferError INVALID_ARGUMENT (bad listen address or credentials), KEY_INVALID/INTEGRITY (key files),
 *   UNAVAILABLE (address in use).
 */
export async function startKmsServer(opts: KmsServerOptions): Promise<KmsServer> {
  const { host, port } = parseListen(opts.listen);
  const region = opts.region ?? 'us-east-1';
  const accountId = opts.accountId ?? DEFAULT_ACCOUNT_ID;
  const credentials = new Map<string, KmsCredential>();
  for (const c of opts.credentials) {
    if (credentials.has(c.accessKeyId)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `duplicate access key id ${c.accessKeyId}`);
    credentials.set(c.accessKeyId, c);
  }
  if (credentials.size === 0) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'the KMS server needs at least one credential');
  const store = await KeyStore.open(opts.dataDir, region, accountId);
  const listener = createKmsRequestListener({
    settings: { store, region, accountId, attestationRoot: opts.attestationRoot, attestationMaxAgeMs: opts.attestationMaxAgeMs ?? 5 * 60_000, now: opts.now ?? (() => new Date()) },
    credentials,
    onInternalError: opts.onInternalError,
  });
  const server: Server = opts.tls ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, listener) : createHttpServer(listener);
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new CofferError(e.code === 'EADDRINUSE' ? ErrorCode.UNAVAILABLE : ErrorCode.INTERNAL, `KMS server cannot listen on ${opts.listen}: ${e.message}`, { cause: e })));
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  const boundPort = typeof addr === 'object' && addr ? addr.port : port;
  const hostPart = host.includes(':') ? `[${host}]` : host;
  return {
    url: `${opts.tls ? 'https' : 'http'}://${hostPart}:${boundPort}`,
    region,
    accountId,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((e) => (e ? reject(e) : resolve()));
        server.closeAllConnections();
      }),
  };
}

export {
  loadOrCreateCredentials, newCredential, credentialsPath, roleCredentials, DEFAULT_ADMIN_ARN, DEFAULT_SEALER_ARN, DEFAULT_ENCLAVE_ARN, DEFAULT_ACCOUNT_ID,
  type RoleCredentials,
} from './credentials.js';
export type { KmsCredential } from './sigv4.js';
export { MAX_CLOCK_SKEW_MS } from './sigv4.js';
