// The "attestation rule" of a key policy, for the embedded KMS's custody invariants (docs/kms.md "Key custody").
// A policy that tests any kms:RecipientAttestation:* key is attestation-bound: its data keys are meant for
// attested enclaves. The KMS then refuses (a) any change of that policy and (b) any ReEncrypt that moves a data
// key to another key whose policy is not the same rule — otherwise whoever may rewrap could move a data key
// under a key they control and Decrypt it there, and whoever may PutKeyPolicy could rewrite who gets keys.
// "Same rule" is the strictest useful equivalence: the two parsed policies are identical once statement ids and
// the order of statements, principals, actions, resources, conditions and values are ignored. Identical
// policies grant identical access, so a move between them opens no new route to a plaintext key.
import { createHash } from 'node:crypto';
import { parsePolicy } from './parse.js';
import type { Condition, KeyPolicy, Statement } from './types.js';

const ATTESTATION_KEY_PREFIX = 'kms:recipientattestation:';

/** Whether a parsed policy tests any attestation condition key (anywhere, in an Allow or a Deny). */
export function isAttestationBound(policy: KeyPolicy): boolean {
  return policy.statements.some((s) => s.conditions.some((c) => c.key.startsWith(ATTESTATION_KEY_PREFIX)));
}

/**
 * Fingerprint (SHA-256 hex) of a policy's meaning, blind to statement ids, ordering and the case of values
 * compared case-insensitively. Two policies with the same fingerprint make every request the same decision.
 */
export function attestationRuleFingerprint(policy: KeyPolicy): string {
  const statements = policy.statements.map(canonicalStatement).sort();
  return createHash('sha256').update(JSON.stringify(statements)).digest('hex');
}

/**
 * Both facts about a stored policy text. A text that no longer parses is treated as bound with a fingerprint
 * that matches nothing (fail closed: it can neither be changed nor receive or give up data keys by ReEncrypt).
 */
export function attestationRuleOf(text: string): { bound: boolean; fingerprint: string } {
  try {
    const p = parsePolicy(text);
    return { bound: isAttestationBound(p), fingerprint: attestationRuleFingerprint(p) };
  } catch {
    return { bound: true, fingerprint: `unparseable:${createHash('sha256').update(text).digest('hex')}` };
  }
}

function canonicalStatement(s: Statement): string {
  return JSON.stringify([
    s.effect,
    s.principals === '*' ? '*' : [...new Set(s.principals)].sort(),
    [...new Set(s.actions)].sort(),
    [...new Set(s.resources)].sort(),
    s.conditions.map(canonicalCondition).sort(),
  ]);
}

function canonicalCondition(c: Condition): string {
  const fold = c.op === 'StringEqualsIgnoreCase' || c.op === 'StringNotEqualsIgnoreCase' || c.op === 'Bool';
  const values = [...new Set(c.values.map((v) => (fold ? v.toLowerCase() : v)))].sort();
  return JSON.stringify([c.qualifier, c.op, c.key, values]);
}
