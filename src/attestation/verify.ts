// Verification of a Nitro attestation document, in this order: strict decode → certificate chain to the one
// pinned root → validity of every certificate at the verifier's clock → ES384 signature of the leaf key over
// the COSE Sig_structure → document timestamp fresh (≤ maxAge old, not in the future, inside the leaf's
// validity) → nonce. PCRs are judged separately by enforcePcrPolicy; verifyAttestation does both.
import { timingSafeEqual, verify as cryptoVerify } from 'node:crypto';
import { CofferError, ErrorCode } from '../errors.js';
import { verifyCertificateChain } from './chain.js';
import { decodeCoseDocument, sigStructure } from './codec.js';
import { enforcePcrPolicy } from './policy.js';
import { resolveTrustRoot } from './roots.js';
import type { AttestationDocument, PcrPolicy, VerifyOptions } from './types.js';

export const DEFAULT_MAX_AGE_MS = 5 * 60 * 1000;
export const DEFAULT_CLOCK_SKEW_MS = 60 * 1000;

function invalid(message: string, cause?: unknown): CofferError {
  return new CofferError(ErrorCode.ATTESTATION_INVALID, `attestation document: ${message}`, cause === undefined ? {} : { cause });
}

function nonNegative(v: number | undefined, fallback: number, name: string): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `${name} must be a non-negative number of milliseconds`);
  return v;
}

/** Constant-time equality of two byte strings (lengths are not secret). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Verifies chain, signature, validity, age and nonce of a document — not its PCRs.
 * Throws CofferError ATTESTATION_FORMAT (not a Nitro document), ATTESTATION_INVALID (does not verify),
 * INVALID_ARGUMENT (bad options, e.g. a development root without "DEV" in its subject).
 */
export function verifyAttestationDocument(bytes: Uint8Array, opts: VerifyOptions): AttestationDocument {
  const root = resolveTrustRoot(opts?.root);
  const now = opts.now ?? new Date();
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'now must be a valid Date');
  const maxAgeMs = nonNegative(opts.maxAgeMs, DEFAULT_MAX_AGE_MS, 'maxAgeMs');
  const skewMs = nonNegative(opts.clockSkewMs, DEFAULT_CLOCK_SKEW_MS, 'clockSkewMs');

  const { document: doc, protectedHeader, payload, signature } = decodeCoseDocument(bytes);
  const chain = verifyCertificateChain(doc.certificate, doc.cabundle, root, now, skewMs);

  let ok = false;
  try {
    ok = cryptoVerify('sha384', sigStructure(protectedHeader, payload), { key: chain.leaf.publicKey, dsaEncoding: 'ieee-p1363' }, signature);
  } catch (e) {
    throw invalid('signature could not be checked', e);
  }
  if (!ok) throw invalid('ES384 signature does not verify under the leaf certificate');

  const ts = doc.timestamp.getTime();
  if (ts > now.getTime() + skewMs) throw invalid(`timestamp ${doc.timestamp.toISOString()} is in the future`);
  if (ts < now.getTime() - maxAgeMs - skewMs) throw invalid(`timestamp ${doc.timestamp.toISOString()} is older than ${maxAgeMs} ms`);
  if (ts < chain.notBefore.getTime() - skewMs || ts > chain.notAfter.getTime() + skewMs) throw invalid('timestamp lies outside the leaf certificate validity');

  if (opts.expectedNonce !== undefined) {
    if (!(opts.expectedNonce instanceof Uint8Array)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'expectedNonce must be bytes');
    if (doc.nonce === null) throw invalid('a nonce was expected but the document carries none');
    if (!bytesEqual(doc.nonce, opts.expectedNonce)) throw invalid('nonce does not match the expected one');
  }
  return doc;
}

/**
 * verifyAttestationDocument followed by enforcePcrPolicy. Throws ATTESTATION_FORMAT, ATTESTATION_INVALID,
 * ATTESTATION_POLICY or INVALID_ARGUMENT (see both).
 */
export function verifyAttestation(bytes: Uint8Array, opts: VerifyOptions & { pcrPolicy: PcrPolicy }): AttestationDocument {
  const doc = verifyAttestationDocument(bytes, opts);
  enforcePcrPolicy(doc, opts.pcrPolicy);
  return doc;
}
