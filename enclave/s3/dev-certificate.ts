// A self-signed ECDSA P-256 certificate for the S3 listener when it runs outside the enclave gateway
// (development and tests): clients pin exactly this certificate (AWS_CA_BUNDLE, rclone --ca-cert), as they
// pin the attested gateway's in production. Made with @peculiar/x509 (no hand-written ASN.1).
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { serialNumber } from '../attestation/dev-root.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export async function makeDevCertificate(options: { ips?: string[]; dns?: string[]; days?: number } = {}): Promise<{ cert: string; key: string }> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const now = Date.now();
  const names = [
    ...(options.ips ?? ['127.0.0.1']).map((value) => ({ type: 'ip' as const, value })),
    ...(options.dns ?? ['localhost']).map((value) => ({ type: 'dns' as const, value })),
  ];
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: 'CN=Coffer S3 endpoint (development)',
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + (options.days ?? 365) * 24 * 3600 * 1000),
    signingAlgorithm: ALG,
    keys: keys as unknown as Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]["keys"],
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(names, false),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { cert: cert.toString('pem'), key: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') };
}
