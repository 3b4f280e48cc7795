// The `coffer` command in front of an enclave gateway: an https:// --server with an expected measurement
// (--expect-pcr0 / COFFER_EXPECT_PCR0) is verified before anything is sent (src/client/gateway-verify.ts), and
// every later connection pins the certificate the verification accepted. Anything that fails is one line.
import { readFile } from 'node:fs/promises';
import type { TrustRoot } from '../attestation/index.js';
import { CofferError, ErrorCode } from '../errors.js';

/** The root a gateway's documents must chain to: AWS Nitro, or a development root certificate file. */
export async function gatewayTrustRoot(kind: string | undefined, devRootCert: string | undefined): Promise<TrustRoot> {
  if ((kind ?? 'aws') === 'aws') {
    if (devRootCert) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'a development root certificate applies to --root dev only (aws and dev roots never mix)');
    return { kind: 'aws' };
  }
  if (kind !== 'dev') throw new CofferError(ErrorCode.INVALID_ARGUMENT, `unknown attestation root ${JSON.stringify(kind)} (aws or dev)`);
  if (!devRootCert) throw new CofferError(ErrorCode.INVALID_ARGUMENT, '--root dev needs the development root certificate (--dev-root-cert / COFFER_DEV_ROOT_CERT)');
  const pem = await readFile(devRootCert, 'utf8').catch((e: unknown) => {
    throw new CofferError(ErrorCode.NOT_FOUND, `cannot read the development root certificate ${devRootCert}`, { cause: e });
  });
  return { kind: 'dev', rootCertPem: pem };
}

export interface GatewayTarget {
  /** The certificate the verification accepted (PEM), to pin. */
  ca: string;
  pcr0: string;
}

/**
 * When COFFER_EXPECT_PCR0 (or `expectPcr0`) is set, `server` is an enclave gateway: verify it and return what to
 * pin; otherwise null (a plain storage service). Throws INVALID_ARGUMENT for an expected measurement with a
 * non-https server, and the verification's errors.
 */
export async function verifiedGateway(server: string, expectPcr0 = process.env.COFFER_EXPECT_PCR0): Promise<GatewayTarget | null> {
  if (!expectPcr0) return null;
  if (!server.startsWith('https://')) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'COFFER_EXPECT_PCR0 is set but --server is not https://: an enclave gateway is reached over attested TLS only');
  const { verifyGateway } = await import('../client/gateway-verify.js');
  const root = await gatewayTrustRoot(process.env.COFFER_ATTESTATION_ROOT, process.env.COFFER_DEV_ROOT_CERT);
  const v = await verifyGateway({ server, expectPcr0, root, allowDebugMode: process.env.COFFER_ALLOW_DEBUG_MODE === '1' });
  return { ca: v.certPem, pcr0: v.pcr0 };
}

/**
 * `coffer put`/`get` against a verified gateway: plaintext over the attested TLS, sealed and opened inside the
 * enclave (no key file or KMS credentials on this machine). Returns null when `flags` name no gateway.
 */
export async function gatewayClientFor(flags: { server: string; token?: string; expectPcr0?: string }): Promise<import('../client/gateway-client.js').GatewayClient | null> {
  if (!flags.expectPcr0) return null;
  if (!flags.token) throw new CofferError(ErrorCode.UNAUTHENTICATED, 'no token: pass --token or set COFFER_TOKEN');
  if (!flags.server.startsWith('https://')) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'an expected PCR0 is set but --server is not https://: an enclave gateway is reached over attested TLS only');
  const { GatewayClient } = await import('../client/gateway-client.js');
  const root = await gatewayTrustRoot(process.env.COFFER_ATTESTATION_ROOT, process.env.COFFER_DEV_ROOT_CERT);
  return GatewayClient.connect({ server: flags.server, token: flags.token, expectPcr0: flags.expectPcr0, root, allowDebugMode: process.env.COFFER_ALLOW_DEBUG_MODE === '1' });
}
