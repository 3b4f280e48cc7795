// The attestation provider interface every enclave uses to obtain a Nitro-format attestation document:
// SimulatedNsm (development, dev root) and NitroNsmProvider (production, /dev/nsm through a helper command).
// Both run the shared contract suite in provider.case.ts.
import { CofferError, ErrorCode } from '../../src/errors.js';
import { NSM_LIMITS, type AttestationRequest, type TrustRoot } from '../../src/attestation/index.js';

export type { AttestationRequest };

export interface AttestationProvider {
  readonly kind: 'simulated' | 'nitro';
  /** The root under which this provider's documents verify ({ kind: 'aws' } for real Nitro). */
  readonly trustRoot: TrustRoot;
  /**
   * Produces a fresh attestation document (COSE_Sign1 bytes) binding exactly the given fields; absent
   * fields are null in the document. Not idempotent: each call yields a new document with a new timestamp;
   * safe to retry. Throws CofferError INVALID_ARGUMENT (a field over the NSM limit; permanent),
   * TIMEOUT / UNAVAILABLE (the NSM did not answer; retryable), ATTESTATION_FORMAT (it answered garbage)
   * or ATTESTATION_INVALID (it answered a document for other fields).
   */
  attest(req: AttestationRequest): Promise<Uint8Array>;
}

/** Checks a request against the NSM limits. Throws CofferError INVALID_ARGUMENT. */
export function validateAttestationRequest(req: AttestationRequest): void {
  if (req === null || typeof req !== 'object') throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'attestation request must be an object');
  for (const key of Object.keys(req)) {
    if (!['publicKey', 'userData', 'nonce'].includes(key)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `unknown attestation request field ${key}`);
  }
  for (const [name, max] of [['publicKey', NSM_LIMITS.publicKey], ['userData', NSM_LIMITS.userData], ['nonce', NSM_LIMITS.nonce]] as const) {
    const v = req[name];
    if (v === undefined) continue;
    if (!(v instanceof Uint8Array)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `${name} must be bytes`);
    if (v.length > max) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `${name} is ${v.length} bytes; the NSM accepts at most ${max}`);
    if (name === 'publicKey' && v.length === 0) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'publicKey must not be empty');
  }
}
