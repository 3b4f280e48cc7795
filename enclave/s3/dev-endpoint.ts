// Composition root of the development S3 endpoint (`coffer s3 serve`): the S3 layer over the client library in
// key-file mode, beside a storage service whose data directory it shares (it mints that service's development
// tokens per user, as the dev bundle does). Everything lives under `<data dir>/s3/`: the endpoint's key file
// (gateway.key), its pinned TLS certificate and key (endpoint.pem / endpoint.key), the sealing key and the
// sealed access keys. Inside the enclave the same handler runs over the gateway's FileOps (gateway-backend.ts)
// behind the attested certificate instead; see docs/s3-api.md.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { mintDevToken } from '../../src/api/auth/index.js';
import { KeyFileDataKeys } from '../../src/client/data-keys.js';
import { generateKeyFile } from '../../src/crypto/index.js';
import { ErrorCode, isCofferError } from '../../src/errors.js';
import { AccessKeyStore, accessKeysPath, devSealer } from './access-keys.js';
import { makeDevCertificate } from './dev-certificate.js';
import { createS3Handler } from './handler.js';
import { sweepAbandonedUploads } from './multipart.js';
import { startS3Server, type S3Server } from './server.js';
import { VaultClientBackend } from './vault-client-backend.js';

export interface DevS3Options {
  dataDir: string;
  storageUrl: string;
  listen: { host: string; port: number };
  /** Names for the generated certificate (default 127.0.0.1, localhost). */
  tlsNames?: string[];
  /** Multipart uploads untouched this long are removed (default 7 days); checked hourly. */
  abandonAfterMs?: number;
}

export interface DevS3Endpoint {
  url: string;
  certFile: string;
  server: S3Server;
  close(): Promise<void>;
}

export async function startDevS3Endpoint(options: DevS3Options): Promise<DevS3Endpoint> {
  const dir = path.join(options.dataDir, 's3');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const keyFile = path.join(dir, 'gateway.key');
  await generateKeyFile(keyFile).catch((e: unknown) => {
    if (!isCofferError(e, ErrorCode.ALREADY_EXISTS)) throw e; // made on an earlier start: kept
  });
  const tls = await loadOrMakeCertificate(dir, options.tlsNames ?? ['127.0.0.1', 'localhost']);
  const backend = new VaultClientBackend({
    server: options.storageUrl,
    keys: await KeyFileDataKeys.open(keyFile),
    mintToken: (who, ttlSeconds) => mintDevToken(options.dataDir, { user: who.user, admin: who.admin, ttlSeconds }),
  });
  const keys = new AccessKeyStore(accessKeysPath(options.dataDir), await devSealer(options.dataDir));
  const server = await startS3Server({ handler: createS3Handler({ backend, lookup: (id) => keys.lookup(id) }), listen: options.listen, tls });
  const sweep = setInterval(() => {
    void sweepAbandonedUploads(backend, { user: 'coffer-s3-gc', admin: true }, { maxAgeMs: options.abandonAfterMs ?? 7 * 24 * 3600_000 }).catch(() => undefined);
  }, 3600_000);
  sweep.unref();
  return {
    url: server.url,
    certFile: path.join(dir, 'endpoint.pem'),
    server,
    async close() {
      clearInterval(sweep);
      await server.close();
      backend.close();
    },
  };
}

async function loadOrMakeCertificate(dir: string, names: string[]): Promise<{ cert: string; key: string }> {
  const certFile = path.join(dir, 'endpoint.pem');
  const keyFile = path.join(dir, 'endpoint.key');
  try {
    return { cert: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8') };
  } catch {
    const ips = names.filter((n) => /^[\d.]+$|:/.test(n));
    const made = await makeDevCertificate({ ips, dns: names.filter((n) => !ips.includes(n)) });
    await writeFile(keyFile, made.key, { mode: 0o600 });
    await writeFile(certFile, made.cert, { mode: 0o644 });
    return made;
  }
}
