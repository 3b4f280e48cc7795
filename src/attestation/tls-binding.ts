// How a Coffer enclave binds its TLS certificate into its attestation documents (docs/enclave-gateway.md,
// "Attested TLS"): user_data = ASCII "coffer-tls-v1:" followed by the lowercase hex SHA-256 of the DER
// SubjectPublicKeyInfo of the certificate's key (78 bytes). public_key stays the enclave's RSA key, which the KMS
// Recipient contract uses. Shared by the enclave (which writes it) and clients (which check it).
import { X509Certificate, createHash } from 'node:crypto';

export const TLS_BINDING_PREFIX = 'coffer-tls-v1:';

/** user_data binding a certificate key whose SPKI SHA-256 is `spkiSha256Hex`. */
export function tlsBinding(spkiSha256Hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(`${TLS_BINDING_PREFIX}${spkiSha256Hex}`, 'ascii'));
}

/** The SPKI SHA-256 a document's user_data names, or null when it carries no Coffer TLS binding. */
export function boundSpkiSha256(userData: Uint8Array | null): string | null {
  if (!userData) return null;
  const m = /^coffer-tls-v1:([0-9a-f]{64})$/.exec(Buffer.from(userData).toString('latin1'));
  return m ? (m[1] as string) : null;
}

/** SHA-256 (lowercase hex) of the DER SPKI of a certificate given as DER or PEM. */
export function spkiSha256OfCertificate(cert: Uint8Array | string): string {
  const spki = new X509Certificate(typeof cert === 'string' ? cert : Buffer.from(cert)).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('hex');
}
