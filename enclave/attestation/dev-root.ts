// Development attestation root: a per-data-directory P-384 root CA ("Coffer DEV attestation root — NOT FOR
// PRODUCTION") and an intermediate under it, created once and reused. The simulated NSM issues a short-lived
// leaf per document under the intermediate, so dev documents have the same chain shape as Nitro's. The
// verifier accepts them only with { kind: 'dev' } and this root's PEM; never under the AWS root.
import { randomBytes, webcrypto } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { CofferError, ErrorCode } from '../../src/errors.js';
import type { TrustRoot } from '../../src/attestation/index.js';
import { sha256Hex } from '../../src/attestation/roots.js';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export const DEV_ROOT_SUBJECT = 'CN=Coffer DEV attestation root — NOT FOR PRODUCTION, O=Coffer DEV';
export const DEV_INTERMEDIATE_SUBJECT = 'CN=Coffer DEV attestation intermediate — NOT FOR PRODUCTION, O=Coffer DEV';
/** ECDSA P-384 with SHA-384, as in the Nitro chain. */
export const ES384 = { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' } as const;
const YEAR_MS = 365 * 24 * 3600 * 1000;

/** The development root and the intermediate the simulated NSM signs leaves with. */
export interface DevRoot {
  /** Directory holding root.pem, root.key (0600), intermediate.pem, intermediate.key (0600). */
  dir: string;
  rootCertPem: string;
  /** Lowercase hex SHA-256 of the root DER. */
  rootFingerprint: string;
  intermediateCertPem: string;
  trustRoot: TrustRoot;
  rootCert: x509.X509Certificate;
  intermediateCert: x509.X509Certificate;
  intermediateKey: CryptoKey;
}

export function devRootDir(dataDir: string): string {
  return join(dataDir, 'attestation', 'dev-root');
}

export function serialNumber(): string {
  const b = randomBytes(16);
  b[0] = (b[0] as number) & 0x7f; // positive INTEGER
  return b.toString('hex');
}

async function pkcs8Pem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function writeDurably(path: string, data: string, mode: number): Promise<void> {
  await writeFile(path, data, { mode, flag: 'wx' });
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function create(dir: string): Promise<void> {
  const now = Date.now();
  const rootKeys = (await webcrypto.subtle.generateKey(ES384, true, ['sign', 'verify'])) as CryptoKeyPair;
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: DEV_ROOT_SUBJECT,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 20 * YEAR_MS),
    keys: rootKeys,
    signingAlgorithm: ES384,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey),
    ],
  });
  const interKeys = (await webcrypto.subtle.generateKey(ES384, true, ['sign', 'verify'])) as CryptoKeyPair;
  const inter = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: DEV_INTERMEDIATE_SUBJECT,
    issuer: root.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 10 * YEAR_MS),
    signingKey: rootKeys.privateKey,
    publicKey: interKeys.publicKey,
    signingAlgorithm: ES384,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(interKeys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(root),
    ],
  });
  await writeDurably(join(dir, 'root.pem'), root.toString('pem') + '\n', 0o644);
  await writeDurably(join(dir, 'root.key'), await pkcs8Pem(rootKeys.privateKey), 0o600);
  await writeDurably(join(dir, 'intermediate.pem'), inter.toString('pem') + '\n', 0o644);
  await writeDurably(join(dir, 'intermediate.key'), await pkcs8Pem(interKeys.privateKey), 0o600);
}

/**
 * Returns the data directory's development root, creating it on first use. Creation is atomic (built in a
 * temporary directory, then renamed), so concurrent callers end up sharing one root.
 * Throws CofferError INVALID_ARGUMENT if existing files are damaged or the key files are not mode 0600.
 */
export async function ensureDevRoot(dataDir: string): Promise<DevRoot> {
  const dir = devRootDir(dataDir);
  try {
    return await loadDevRoot(dataDir);
  } catch (e) {
    if (!(e instanceof CofferError && e.code === ErrorCode.NOT_FOUND)) throw e;
  }
  await mkdir(join(dataDir, 'attestation'), { recursive: true, mode: 0o700 });
  const tmp = join(dataDir, 'attestation', `.dev-root-${randomBytes(6).toString('hex')}`);
  await mkdir(tmp, { mode: 0o700 });
  try {
    await create(tmp);
    await rename(tmp, dir);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST' && code !== 'ENOTEMPTY') throw e; // another process created it first: use theirs
  }
  return loadDevRoot(dataDir);
}

/**
 * Loads an existing development root without creating one.
 * Throws CofferError NOT_FOUND (no dev root in this data directory) or INVALID_ARGUMENT (damaged, or a key
 * file readable by others).
 */
export async function loadDevRoot(dataDir: string): Promise<DevRoot> {
  const dir = devRootDir(dataDir);
  try {
    await stat(join(dir, 'root.pem'));
  } catch {
    throw new CofferError(ErrorCode.NOT_FOUND, `no development attestation root in ${dir}`);
  }
  try {
    for (const key of ['root.key', 'intermediate.key']) {
      const keyStat = await stat(join(dir, key));
      if ((keyStat.mode & 0o077) !== 0) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `${join(dir, key)} must be mode 0600`);
    }
    const rootCertPem = await readFile(join(dir, 'root.pem'), 'utf8');
    const intermediateCertPem = await readFile(join(dir, 'intermediate.pem'), 'utf8');
    const rootCert = new x509.X509Certificate(rootCertPem);
    const intermediateCert = new x509.X509Certificate(intermediateCertPem);
    const keyDer = x509.PemConverter.decodeFirst(await readFile(join(dir, 'intermediate.key'), 'utf8'));
    const intermediateKey = await webcrypto.subtle.importKey('pkcs8', keyDer, ES384, false, ['sign']);
    return {
      dir,
      rootCertPem,
      rootFingerprint: sha256Hex(new Uint8Array(rootCert.rawData)),
      intermediateCertPem,
      trustRoot: { kind: 'dev', rootCertPem },
      rootCert,
      intermediateCert,
      intermediateKey,
    };
  } catch (e) {
    if (e instanceof CofferError) throw e;
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `development attestation root in ${dir} is damaged: ${(e as Error).message}`, { cause: e });
  }
}
