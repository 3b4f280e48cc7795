// PCR policy: which enclave measurements may pass. Fails closed: a missing or empty policy denies, every
// listed PCR must be present and equal to (one of) its allowed values, malformed entries deny, and an
// all-zero value (a debug-mode enclave, whose PCRs measure nothing) is refused unless explicitly allowed.
import { CofferError, ErrorCode } from '../errors.js';
import type { AttestationDocument, PcrPolicy } from './types.js';

const PCR_HEX = /^[0-9a-f]{96}$/;
const ZERO_PCR = '0'.repeat(96);

function denied(message: string): CofferError {
  return new CofferError(ErrorCode.ATTESTATION_POLICY, `PCR policy: ${message}`);
}

/** Normalises a policy into index → allowed lowercase hex values. Throws ATTESTATION_POLICY when malformed or empty. */
export function normalizePcrPolicy(policy: PcrPolicy | undefined | null): Map<number, string[]> {
  if (policy === undefined || policy === null || typeof policy !== 'object' || policy.pcrs === null || typeof policy.pcrs !== 'object') {
    throw denied('no policy given; refusing every enclave');
  }
  const out = new Map<number, string[]>();
  for (const [key, value] of Object.entries(policy.pcrs)) {
    if (!/^(0|[1-9][0-9]?)$/.test(key) || Number(key) > 31) throw denied(`PCR index ${JSON.stringify(key)} is not 0..31`);
    const values = (Array.isArray(value) ? value : [value]).map((v: unknown) => (typeof v === 'string' ? v.toLowerCase() : ''));
    if (values.length === 0) throw denied(`PCR${key} has no allowed value`);
    for (const v of values) {
      if (!PCR_HEX.test(v)) throw denied(`PCR${key} value must be 96 hex digits (48 bytes)`);
      if (v === ZERO_PCR && policy.allowDebugMode !== true) throw denied(`PCR${key} all-zero (debug-mode enclave) is refused unless allowDebugMode is set`);
    }
    out.set(Number(key), values);
  }
  if (out.size === 0) throw denied('policy lists no PCR; refusing every enclave');
  return out;
}

/**
 * Checks the document's PCRs against the policy. Throws CofferError ATTESTATION_POLICY when the policy is
 * missing, empty or malformed, or when any listed PCR is absent from the document or differs.
 */
export function enforcePcrPolicy(doc: AttestationDocument, policy: PcrPolicy | undefined | null): void {
  const rules = normalizePcrPolicy(policy);
  // A debug-mode enclave reports PCR0-2 as zeros but keeps PCR3, 4 and 8 (role, instance, signer): a policy
  // pinning only those would otherwise accept an enclave whose memory the host can read.
  if (isDebugModeDocument(doc) && policy?.allowDebugMode !== true) {
    throw denied('the document comes from a debug-mode enclave (PCR0 missing or all zero); refused unless allowDebugMode is set');
  }
  for (const [index, allowed] of rules) {
    const actual = doc.pcrs.get(index);
    if (actual === undefined) throw denied(`document has no PCR${index}`);
    const hex = Buffer.from(actual).toString('hex');
    // PCR values are public measurements, so a plain comparison leaks nothing.
    if (!allowed.includes(hex)) throw denied(`PCR${index} ${hex.slice(0, 16)}… is not allowed`);
  }
}

/** A document from a debug-mode enclave (or one that does not measure its image): PCR0 absent or all zero. */
export function isDebugModeDocument(doc: AttestationDocument): boolean {
  const pcr0 = doc.pcrs.get(0);
  return pcr0 === undefined || pcr0.every((b) => b === 0);
}
