// What every operation handler gets: the key store, the server's settings, the authenticated caller, and the
// authorisation step (key policy evaluated with the request's condition keys).
import type { AttestationDocument, TrustRoot } from '../../attestation/index.js';
import { evaluatePolicy, parsePolicy, PolicyError } from '../policy/index.js';
import { accessDenied, KmsApiError } from './errors.js';
import type { KeyStore, KmsKey } from './key-store.js';

export interface ServerSettings {
  store: KeyStore;
  region: string;
  accountId: string;
  attestationRoot: TrustRoot;
  attestationMaxAgeMs: number;
  /** Release keys to debug-mode enclaves (PCR0 all zero: the host can read their memory). Tests only; default false. */
  allowDebugMode?: boolean;
  now: () => Date;
}

export interface Caller {
  principalArn: string;
  accessKeyId: string;
}

export interface OpContext {
  settings: ServerSettings;
  caller: Caller;
}

/** Facts of the request that condition keys can test. */
export interface RequestFacts {
  encryptionContext?: Readonly<Record<string, string>>;
  /** The VERIFIED attestation document of a Recipient, if the request has one. */
  attestation?: AttestationDocument;
  reEncryptOnSameKey?: boolean;
}

/** Condition-key values of a request (normalised names as in policy/parse.ts). */
export function conditionValues(caller: Caller, facts: RequestFacts): Map<string, string[]> {
  const m = new Map<string, string[]>();
  m.set('aws:principalarn', [caller.principalArn]);
  const account = /^arn:[^:]+:[^:]+::([0-9]{12}):/.exec(caller.principalArn)?.[1];
  if (account) m.set('kms:calleraccount', [account]);
  if (facts.encryptionContext) {
    const keys = Object.keys(facts.encryptionContext);
    for (const k of keys) m.set(`kms:encryptioncontext:${k}`, [facts.encryptionContext[k] as string]);
    if (keys.length > 0) m.set('kms:encryptioncontextkeys', keys);
  }
  if (facts.attestation) {
    for (const [i, v] of facts.attestation.pcrs) m.set(`kms:recipientattestation:pcr${i}`, [Buffer.from(v).toString('hex')]);
    const pcr0 = facts.attestation.pcrs.get(0);
    if (pcr0) m.set('kms:recipientattestation:imagesha384', [Buffer.from(pcr0).toString('hex')]);
  }
  if (facts.reEncryptOnSameKey !== undefined) m.set('kms:reencryptonsamekey', [String(facts.reEncryptOnSameKey)]);
  return m;
}

/**
 * Evaluates the key's policy for `action` (e.g. "kms:Decrypt"). A stored policy that no longer parses denies.
 * @throws KmsApiError AccessDeniedException unless some statement allows and none denies.
 */
export function authorize(op: OpContext, key: KmsKey, action: string, facts: RequestFacts = {}): void {
  const denied = (why: string): KmsApiError =>
    accessDenied(`User: ${op.caller.principalArn} is not authorized to perform: ${action} on resource: ${key.arn} ${why}`);
  let policy;
  try {
    policy = parsePolicy(key.policy);
  } catch (e) {
    if (e instanceof PolicyError) throw denied('because its key policy cannot be evaluated');
    throw e;
  }
  const decision = evaluatePolicy(policy, { principalArn: op.caller.principalArn, action, resourceArn: key.arn, conditions: conditionValues(op.caller, facts) });
  if (decision === 'explicit-deny') throw denied('with an explicit deny in a resource-based policy');
  if (decision !== 'allow') throw denied('because no resource-based policy allows the ' + action + ' action');
}

/** Crypto operations need an enabled key. @throws KmsApiError DisabledException */
export function requireEnabled(key: KmsKey): void {
  if (!key.enabled) throw new KmsApiError('DisabledException', `${key.arn} is disabled.`);
}

/** Epoch seconds, the JSON 1.1 timestamp form. */
export const epochSeconds = (ms: number): number => ms / 1000;
