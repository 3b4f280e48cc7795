// Key policies of the embedded KMS: parse/validate (fail closed), evaluate (Deny wins, empty denies), and
// builders for the policies Coffer deploys (creator-default, attestation-gated vault key).
export { parsePolicy, PolicyError, MAX_POLICY_BYTES, conditionKey } from './parse.js';
export { evaluatePolicy, wildcardMatch } from './evaluate.js';
export { defaultKeyPolicy, attestedKeyPolicy, type AttestedKeyPolicyOptions } from './builders.js';
export { attestationRuleOf, attestationRuleFingerprint, isAttestationBound } from './attestation-rule.js';
export type { KeyPolicy, Statement, Condition, RequestContext, Decision } from './types.js';
