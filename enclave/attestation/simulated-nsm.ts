// Simulated NSM for development: issues attestation documents in exactly the Nitro format — an untagged
// ES384 COSE_Sign1 over the Nitro payload map, signed by a fresh short-lived P-384 leaf per document that
// chains to the data directory's development root (cabundle [root, intermediate]) — with PCRs measured from
// the enclave code bundle (measure.ts). Documents verify only under the dev root, never under AWS's.
import { randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { CofferError, ErrorCode } from '../../src/errors.js';
import type { AttestationRequest, TrustRoot } from '../../src/attestation/index.js';
import { encodeCoseSign1, encodePayload, es384ProtectedHeader, sigStructure } from '../../src/attestation/codec.js';
import { ensureDevRoot, ES384, serialNumber, type DevRoot } from './dev-root.js';
import { measureEnclaveBundle } from './measure.js';
import { validateAttestationRequest, type AttestationProvider } from './provider.js';

/** Like Nitro's leaves: each document's signing certificate lives three hours. */
export const DEFAULT_LEAF_LIFETIME_MS = 3 * 3600 * 1000;
const PCR_COUNT = 16;

export interface SimulatedNsmOptions {
  /** Data directory whose development root signs (created on first use). */
  dataDir: string;
  /** Enclave code bundle to measure into PCR0/1/2; or give `pcrs` directly. */
  bundleDir?: string;
  /** PCR index → lowercase hex (48 bytes); unset PCRs among 0..15 are zero, as on Nitro. */
  pcrs?: Record<number, string>;
  moduleId?: string;
  /** Injectable clock for tests. */
  clock?: () => Date;
  leafLifetimeMs?: number;
}

export class SimulatedNsm implements AttestationProvider {
  readonly kind = 'simulated' as const;
  readonly trustRoot: TrustRoot;

  private constructor(
    readonly devRoot: DevRoot,
    readonly pcrs: ReadonlyMap<number, Uint8Array>,
    readonly moduleId: string,
    private readonly clock: () => Date,
    private readonly leafLifetimeMs: number,
  ) {
    this.trustRoot = devRoot.trustRoot;
  }

  /** Creates a simulated NSM. Throws CofferError INVALID_ARGUMENT (no or malformed PCRs, bad moduleId) or measurement errors. */
  static async create(opts: SimulatedNsmOptions): Promise<SimulatedNsm> {
    let given: Record<number, string> | undefined = opts.pcrs;
    if (opts.bundleDir !== undefined) {
      const m = await measureEnclaveBundle(opts.bundleDir);
      given = { 0: m.pcr0, 1: m.pcr1, 2: m.pcr2, ...given };
    }
    if (given === undefined) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'simulated NSM needs a bundleDir or pcrs');
    const pcrs = new Map<number, Uint8Array>();
    for (let i = 0; i < PCR_COUNT; i++) pcrs.set(i, new Uint8Array(48));
    for (const [k, v] of Object.entries(given)) {
      const i = Number(k);
      if (!Number.isInteger(i) || i < 0 || i > 31 || typeof v !== 'string' || !/^[0-9a-f]{96}$/.test(v)) {
        throw new CofferError(ErrorCode.INVALID_ARGUMENT, `PCR${k} must be 96 lowercase hex digits`);
      }
      pcrs.set(i, new Uint8Array(Buffer.from(v, 'hex')));
    }
    const devRoot = await ensureDevRoot(opts.dataDir);
    const moduleId = opts.moduleId ?? `coffer-sim-enc${randomBytes(8).toString('hex')}`;
    // it becomes part of the leaf's subject name, so keep it to characters that need no escaping
    if (!/^[A-Za-z0-9._-]{1,200}$/.test(moduleId)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'moduleId may hold only letters, digits, ".", "_" and "-"');
    return new SimulatedNsm(devRoot, pcrs, moduleId, opts.clock ?? (() => new Date()), opts.leafLifetimeMs ?? DEFAULT_LEAF_LIFETIME_MS);
  }

  /** Issues a document. Throws CofferError INVALID_ARGUMENT when a field exceeds the NSM limits. */
  async attest(req: AttestationRequest): Promise<Uint8Array> {
    validateAttestationRequest(req);
    const now = this.clock();
    const leafKeys = (await webcrypto.subtle.generateKey(ES384, false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const notBefore = new Date(Math.floor(now.getTime() / 1000) * 1000); // X.509 times have whole seconds
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: serialNumber(),
      subject: `CN=${this.moduleId}.coffer-dev, O=Coffer DEV`,
      issuer: this.devRoot.intermediateCert.subject,
      notBefore,
      notAfter: new Date(notBefore.getTime() + this.leafLifetimeMs),
      signingKey: this.devRoot.intermediateKey,
      publicKey: leafKeys.publicKey,
      signingAlgorithm: ES384,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        await x509.AuthorityKeyIdentifierExtension.create(this.devRoot.intermediateCert),
      ],
    });
    const payload = encodePayload({
      moduleId: this.moduleId,
      timestamp: now,
      pcrs: new Map(this.pcrs),
      certificate: new Uint8Array(leaf.rawData),
      cabundle: [new Uint8Array(this.devRoot.rootCert.rawData), new Uint8Array(this.devRoot.intermediateCert.rawData)],
      publicKey: req.publicKey ?? null,
      userData: req.userData ?? null,
      nonce: req.nonce ?? null,
    });
    const protectedHeader = es384ProtectedHeader();
    // WebCrypto ECDSA signatures are r‖s (IEEE P1363), which is COSE's ES384 signature format.
    const signature = new Uint8Array(await webcrypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-384' }, leafKeys.privateKey, sigStructure(protectedHeader, payload)));
    return encodeCoseSign1(protectedHeader, payload, signature);
  }
}
