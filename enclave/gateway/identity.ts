// The enclave's boot-time identity, held in its memory only: an RSA-2048 key pair for KMS Recipient requests
// (CiphertextForRecipient is sealed to it), and a P-256 TLS key pair with a self-signed certificate. Every
// attestation document the enclave issues binds both (docs/enclave-gateway.md, "Attested TLS"):
//   public_key = DER SPKI of the RSA key (what the KMS seals data keys to — the AWS Recipient contract), and
//   user_data  = "coffer-tls-v1:" ‖ lowercase hex SHA-256 of the DER SPKI of the TLS certificate's key.
// A client that sees certificate C in its TLS handshake and a document that verifies under the pinned root with
// the expected PCR0 and its own nonce, whose user_data names SHA-256(SPKI(C)), knows the TLS session ends in
// that enclave: the key never left it.
import { generateKeyPairSync, webcrypto, type KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { AttestationProvider } from '../attestation/index.js';
import { CofferError, ErrorCode } from '../../src/errors.js';
import { spkiSha256OfCertificate, tlsBinding } from '../../src/attestation/tls-binding.js';

export interface TlsIdentity {
  /** PEM of the private key (given to the TLS server inside the enclave only). */
  keyPem: string;
  /** PEM of the self-signed certificate (what clients pin after verification). */
  certPem: string;
  /** SHA-256 of the certificate's DER SPKI (lowercase hex). */
  spkiSha256: string;
}

export interface EnclaveIdentity {
  rsaPrivateKey: KeyObject;
  rsaPublicSpki: Uint8Array;
  tls: TlsIdentity;
  provider: AttestationProvider;
}

/**
 * A fresh TLS key pair and a self-signed certificate for it, valid for `names` (DNS names and IP addresses the
 * gateway is reached at) for 30 days. The certificate is self-issued (CA:TRUE, keyCertSign) so that clients can
 * use it directly as their only trust anchor (`curl --cacert`, `AWS_CA_BUNDLE`).
 */
export async function makeTlsIdentity(names: string[]): Promise<TlsIdentity> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const ipRe = /^(\d{1,3}\.){3}\d{1,3}$|:/;
  const san = names.map((n) => (ipRe.test(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n }));
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString('hex').replace(/^[89a-f]/, '1'),
    name: 'CN=Coffer enclave gateway (attested; verify before trusting)',
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 30 * 24 * 3600 * 1000),
    keys,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(san),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END PRIVATE KEY-----\n`;
  return { keyPem, certPem: cert.toString('pem') + '\n', spkiSha256: spkiSha256OfCertificate(new Uint8Array(cert.rawData)) };
}

/** Makes the boot identity. Throws CofferError INVALID_ARGUMENT for no names. */
export async function makeEnclaveIdentity(provider: AttestationProvider, names: string[]): Promise<EnclaveIdentity> {
  if (names.length === 0) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'the gateway certificate needs at least one name');
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const tls = await makeTlsIdentity(names);
  return { rsaPrivateKey: privateKey, rsaPublicSpki: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })), tls, provider };
}

/**
 * A fresh attestation document binding the identity (public_key = RSA SPKI, user_data = TLS binding) and the
 * caller's nonce, if any. Throws what the provider throws (UNAVAILABLE/TIMEOUT are retryable).
 */
export function attest(identity: EnclaveIdentity, nonce?: Uint8Array): Promise<Uint8Array> {
  return identity.provider.attest({
    publicKey: identity.rsaPublicSpki,
    userData: tlsBinding(identity.tls.spkiSha256),
    ...(nonce ? { nonce } : {}),
  });
}
