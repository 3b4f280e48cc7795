// The Recipient flow: verify the attestation document (chain to the configured root, signature, age — PCRs are
// judged by the key policy, not here), then seal the result to the RSA key inside it as CMS EnvelopedData.
import { createHash } from 'node:crypto';
import { DEFAULT_CLOCK_SKEW_MS, isDebugModeDocument, verifyAttestationDocument, type AttestationDocument } from '../../attestation/index.js';
import { buildEnvelope, rsaPublicKey } from '../cms/index.js';
import { isCofferError } from '../../errors.js';
import { accessDenied, KmsApiError, validation } from './errors.js';
import type { ServerSettings } from './context.js';
import type { Recipient } from './validate.js';

export interface VerifiedRecipient {
  document: AttestationDocument;
  publicKey: Uint8Array;
}

// Documents verified lately, by SHA-256 of their bytes (and the root they verified under). An enclave sends the
// same document with every call for up to a minute (enclave/gateway/data-keys.ts), and the chain and ES384 checks
// cost ≈ 15 ms of CPU each: one per staged S3 part was the largest CPU cost of the storage process in an rclone
// upload (docs/s3-api.md "Where an rclone part's CPU goes"). A hit skips only the signature and chain checks, which
// give the same answer for the same bytes; the document's age is checked again on every use, and an entry counts
// for VERIFIED_FOR_MS at most, so a certificate that expires is honoured at most that much longer (inside the clock
// skew already granted).
const VERIFIED_FOR_MS = 10_000;
const VERIFIED_MAX = 64;
const verified = new Map<string, { document: AttestationDocument; at: number }>();

function verifiedDocument(settings: ServerSettings, bytes: Uint8Array): AttestationDocument {
  const now = settings.now();
  const maxAgeMs = settings.attestationMaxAgeMs;
  const key = createHash('sha256').update(bytes).digest('hex');
  const hit = verified.get(key);
  if (hit && hit.at <= now.getTime() && now.getTime() - hit.at < VERIFIED_FOR_MS && rootOf.get(hit.document) === settings.attestationRoot) {
    const ts = hit.document.timestamp.getTime();
    if (ts <= now.getTime() + DEFAULT_CLOCK_SKEW_MS && ts >= now.getTime() - maxAgeMs - DEFAULT_CLOCK_SKEW_MS) return hit.document;
  }
  const document = verifyAttestationDocument(bytes, { root: settings.attestationRoot, now, maxAgeMs: settings.attestationMaxAgeMs });
  verified.delete(key);
  verified.set(key, { document, at: now.getTime() });
  rootOf.set(document, settings.attestationRoot);
  while (verified.size > VERIFIED_MAX) verified.delete(verified.keys().next().value as string);
  return document;
}
const rootOf = new WeakMap<AttestationDocument, ServerSettings['attestationRoot']>();

/**
 * @throws KmsApiError ValidationException (unsupported algorithm, not a Nitro document, no public key),
 *   AccessDeniedException (the document does not verify: wrong root, bad signature, expired or too old).
 */
export function verifyRecipient(settings: ServerSettings, r: Recipient): VerifiedRecipient {
  if (r.KeyEncryptionAlgorithm !== 'RSAES_OAEP_SHA_256') {
    throw validation(`KeyEncryptionAlgorithm '${r.KeyEncryptionAlgorithm}' is not supported; use RSAES_OAEP_SHA_256.`);
  }
  let document: AttestationDocument;
  try {
    document = verifiedDocument(settings, r.AttestationDocument);
  } catch (e) {
    if (isCofferError(e, 'ATTESTATION_FORMAT')) throw validation(`The attestation document is malformed: ${e.message}`);
    if (isCofferError(e, 'ATTESTATION_INVALID')) throw accessDenied(`The attestation document was rejected: ${e.message}`);
    throw e;
  }
  // Whatever the key policy pins (a policy may test only PCR3/4/8, which debug enclaves keep), no key goes to an
  // enclave in debug mode: its memory is open to the host, so releasing a key to it releases it to the host.
  if (isDebugModeDocument(document) && settings.allowDebugMode !== true) {
    throw accessDenied('The attestation document comes from a debug-mode enclave (PCR0 missing or all zero); keys are never released to one.');
  }
  if (!document.publicKey) throw validation('The attestation document carries no public key to encrypt the response to.');
  return { document, publicKey: document.publicKey };
}

/**
 * Checks the document's public key can receive an envelope (RSA SPKI ≥ 2048 bits); called after authorisation,
 * before any key material is used. @throws KmsApiError ValidationException
 */
export function assertUsableRecipientKey(r: VerifiedRecipient): void {
  try {
    rsaPublicKey(r.publicKey);
  } catch (e) {
    if (isCofferError(e, 'CMS')) throw validation(`The public key in the attestation document cannot be used: ${e.message}`);
    throw e;
  }
}

/** CiphertextForRecipient for `plaintext`. @throws KmsApiError ValidationException if the key is not RSA ≥ 2048 bits. */
export function sealForRecipient(r: VerifiedRecipient, plaintext: Uint8Array): Buffer {
  try {
    return buildEnvelope(plaintext, r.publicKey);
  } catch (e) {
    if (isCofferError(e, 'CMS')) throw new KmsApiError('ValidationException', `The public key in the attestation document cannot be used: ${e.message}`);
    throw e;
  }
}
