// The trust roots a verifier may pin: the AWS Nitro Enclaves root G1 (its certificate is embedded here and
// checked against its published SHA-256 fingerprint at load) or a development root given as PEM, which must
// say "DEV" in its subject. A verifier pins exactly one of them; cabundle[0] is never trusted as given.
import { X509Certificate, createHash } from 'node:crypto';
import { CofferError, ErrorCode } from '../errors.js';
import type { TrustRoot } from './types.js';

/** SHA-256 of the DER of the AWS Nitro Enclaves root G1, as published by AWS. */
export const AWS_NITRO_ROOT_G1_SHA256 = '641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b';

/** AWS Nitro Enclaves root G1 (CN=aws.nitro-enclaves, P-384, valid 2019-10-28 … 2049-10-28). */
export const AWS_NITRO_ROOT_G1_PEM = `-----BEGIN CERTIFICATE-----
MIICETCCAZagAwIBAgIRAPkxdWgbkK/hHUbMtOTn+FYwCgYIKoZIzj0EAwMwSTEL
MAkGA1UEBhMCVVMxDzANBgNVBAoMBkFtYXpvbjEMMAoGA1UECwwDQVdTMRswGQYD
VQQDDBJhd3Mubml0cm8tZW5jbGF2ZXMwHhcNMTkxMDI4MTMyODA1WhcNNDkxMDI4
MTQyODA1WjBJMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQL
DANBV1MxGzAZBgNVBAMMEmF3cy5uaXRyby1lbmNsYXZlczB2MBAGByqGSM49AgEG
BSuBBAAiA2IABPwCVOumCMHzaHDimtqQvkY4MpJzbolL//Zy2YlES1BR5TSksfbb
48C8WBoyt7F2Bw7eEtaaP+ohG2bnUs990d0JX28TcPQXCEPZ3BABIeTPYwEoCWZE
h8l5YoQwTcU/9KNCMEAwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUkCW1DdkF
R+eWw5b6cp3PmanfS5YwDgYDVR0PAQH/BAQDAgGGMAoGCCqGSM49BAMDA2kAMGYC
MQCjfy+Rocm9Xue4YnwWmNJVA44fA0P5W2OpYow9OYCVRaEevL8uO1XYru5xtMPW
rfMCMQCi85sWBbJwKKXdS6BptQFuZbT73o/gBh1qUxl/nNr12UO8Yfwr6wPLb+6N
IwLz3/Y=
-----END CERTIFICATE-----
`;

/** A pinned root, parsed once. */
export interface PinnedRoot {
  kind: 'aws' | 'dev';
  cert: X509Certificate;
  der: Uint8Array;
  /** Lowercase hex SHA-256 of the DER. */
  fingerprint: string;
}

export function sha256Hex(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

let awsRoot: PinnedRoot | undefined;
// Accepted dev roots by their PEM text (a KMS verifies every request against the same one).
const devRoots = new Map<string, PinnedRoot>();

function awsPinnedRoot(): PinnedRoot {
  if (awsRoot) return awsRoot;
  const cert = new X509Certificate(AWS_NITRO_ROOT_G1_PEM);
  const der = new Uint8Array(cert.raw);
  const fingerprint = sha256Hex(der);
  // The embedded PEM must be the published root; a mismatch means the source was altered.
  if (fingerprint !== AWS_NITRO_ROOT_G1_SHA256) throw new CofferError(ErrorCode.INTERNAL, 'embedded AWS Nitro root does not match its pinned fingerprint');
  awsRoot = { kind: 'aws', cert, der, fingerprint };
  return awsRoot;
}

/**
 * Parses and checks the configured trust root. Throws CofferError INVALID_ARGUMENT when a dev root is not a
 * self-signed CA certificate with "DEV" in its subject, or is the AWS root itself (aws and dev never mix).
 */
export function resolveTrustRoot(root: TrustRoot): PinnedRoot {
  if (root?.kind === 'aws') return awsPinnedRoot();
  if (root?.kind !== 'dev' || typeof root.rootCertPem !== 'string') {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'trust root must be { kind: "aws" } or { kind: "dev", rootCertPem }');
  }
  const known = devRoots.get(root.rootCertPem);
  if (known) return known;
  const pinned = parseDevRoot(root.rootCertPem);
  if (devRoots.size >= 8) devRoots.delete(devRoots.keys().next().value as string);
  devRoots.set(root.rootCertPem, pinned);
  return pinned;
}

function parseDevRoot(rootCertPem: string): PinnedRoot {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(rootCertPem);
  } catch (e) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'development root is not a PEM certificate', { cause: e });
  }
  const der = new Uint8Array(cert.raw);
  const fingerprint = sha256Hex(der);
  if (fingerprint === AWS_NITRO_ROOT_G1_SHA256) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'the AWS Nitro root cannot be used as a development root');
  if (!/\bDEV\b/.test(cert.subject)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'a development root must say "DEV" in its subject; refused');
  if (!cert.ca || !cert.checkIssued(cert) || !cert.verify(cert.publicKey)) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'a development root must be a self-signed CA certificate');
  }
  return { kind: 'dev', cert, der, fingerprint };
}
