// The Recipient flow: verify the attestation document (chain to the configured root, signature, age — PCRs are
// judged by the key policy, not here), then seal the result to the RSA key inside it as CMS EnvelopedData.
import { isDebugModeDocument, verifyAttestationDocument, type AttestationDocument } from '../../attestation/index.js';
import { buildEnvelope, rsaPublicKey } from '../cms/index.js';
import { isCofferError } from '../../errors.js';
import { accessDenied, KmsApiError, validation } from './errors.js';
import type { ServerSettings } from './context.js';
import type { Recipient } from './validate.js';

export interface VerifiedRecipient {
  document: AttestationDocument;
  publicKey: Uint8Array;
}

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
    document = verifyAttestationDocument(r.AttestationDocument, { root: settings.attestationRoot, now: settings.now(), maxAgeMs: settings.attestationMaxAgeMs });
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
