// Unit tests of the key-policy parser and evaluator: Deny wins, empty/no-match denies, unknown things rejected.
import { describe, expect, it } from 'vitest';
import {
  attestationRuleFingerprint, attestationRuleOf, attestedKeyPolicy, defaultKeyPolicy, evaluatePolicy, isAttestationBound, parsePolicy, PolicyError,
  type RequestContext,
} from './index.js';
import { wildcardMatch } from './evaluate.js';

const ALICE = 'arn:aws:iam::000000000000:user/alice';
const BOB = 'arn:aws:iam::000000000000:user/bob';
const KEY = 'arn:aws:kms:us-east-1:000000000000:key/11111111-2222-4333-8444-555555555555';
const PCR0 = 'ab'.repeat(48);

function req(action: string, principalArn = ALICE, conditions: Record<string, string[]> = {}): RequestContext {
  return { principalArn, action, resourceArn: KEY, conditions: new Map(Object.entries(conditions)) };
}
const policy = (...Statement: unknown[]): string => JSON.stringify({ Version: '2012-10-17', Statement });
const allowAll = { Effect: 'Allow', Principal: { AWS: ALICE }, Action: 'kms:*', Resource: '*' };

describe('key policy evaluation', () => {
  it('allows a matching Allow and denies other principals and actions', () => {
    const p = parsePolicy(policy({ ...allowAll, Action: ['kms:Encrypt', 'kms:GenerateDataKey*'] }));
    expect(evaluatePolicy(p, req('kms:Encrypt'))).toBe('allow');
    expect(evaluatePolicy(p, req('kms:GenerateDataKeyWithoutPlaintext'))).toBe('allow');
    expect(evaluatePolicy(p, req('kms:Decrypt'))).toBe('implicit-deny');
    expect(evaluatePolicy(p, req('kms:Encrypt', BOB))).toBe('implicit-deny');
  });

  it('lets an explicit Deny win over any Allow', () => {
    const p = parsePolicy(policy(allowAll, { Effect: 'Deny', Principal: '*', Action: 'kms:Decrypt', Resource: '*' }));
    expect(evaluatePolicy(p, req('kms:Decrypt'))).toBe('explicit-deny');
    expect(evaluatePolicy(p, req('kms:Encrypt'))).toBe('allow');
  });

  it('refuses an empty policy rather than allowing everything', () => {
    expect(() => parsePolicy(policy())).toThrow(PolicyError);
    expect(() => parsePolicy('{}')).toThrow(PolicyError);
    expect(evaluatePolicy({ statements: [] }, req('kms:Encrypt'))).toBe('implicit-deny');
  });

  it('refuses a field given twice: JSON.parse would keep the last, another reader the first', () => {
    const text = policy({ ...allowAll, Condition: { StringEquals: { 'kms:RecipientAttestation:PCR0': 'aa' } } });
    expect(() => parsePolicy(text)).not.toThrow();
    const twice = text.replace('"Condition":', '"Condition":{},"Cond\\u0069tion":');
    expect(() => parsePolicy(twice)).toThrow(/"Condition" appears twice/);
    expect(() => parsePolicy(text.replace('"Effect":"Allow"', '"Effect":"Deny","Effect":"Allow"'))).toThrow(/"Effect" appears twice/);
  });

  it('rejects unknown operators, condition keys, fields and qualifiers', () => {
    const cond = (Condition: unknown): string => policy({ ...allowAll, Condition });
    expect(() => parsePolicy(cond({ NumericEquals: { 'kms:CallerAccount': '1' } }))).toThrow(/operator/);
    expect(() => parsePolicy(cond({ StringEqualsIfExists: { 'kms:CallerAccount': '1' } }))).toThrow(/operator/);
    expect(() => parsePolicy(cond({ StringEquals: { 'kms:ViaService': 'x' } }))).toThrow(/condition key/);
    expect(() => parsePolicy(cond({ StringEquals: { 'kms:RecipientAttestation:PCR32': 'x' } }))).toThrow(/condition key/);
    expect(() => parsePolicy(cond({ 'ForAllValues:StringEquals': { 'kms:RecipientAttestation:ImageSha384': PCR0 } }))).toThrow(/single-valued/);
    expect(() => parsePolicy(cond({ StringEquals: { 'kms:EncryptionContextKeys': 'a' } }))).toThrow(/multi-valued/);
    expect(() => parsePolicy(policy({ ...allowAll, NotAction: 'kms:Decrypt' }))).toThrow(/NotAction/);
    expect(() => parsePolicy(policy({ ...allowAll, Extra: 1 }))).toThrow(/unknown field/);
    expect(() => parsePolicy(policy({ ...allowAll, Principal: { Service: 'x' } }))).toThrow(PolicyError);
    expect(() => parsePolicy(policy({ ...allowAll, Effect: 'allow' }))).toThrow(/Effect/);
    expect(() => parsePolicy(policy({ ...allowAll, Action: 's3:GetObject' }))).toThrow(/kms:/);
    expect(() => parsePolicy(JSON.stringify({ Version: '2099-01-01', Statement: [allowAll] }))).toThrow(/Version/);
    // an empty condition would mean "no condition", i.e. allow: refused like an empty list of values
    expect(() => parsePolicy(cond({}))).toThrow(/Condition is empty/);
    expect(() => parsePolicy(cond({ StringEqualsIgnoreCase: {} }))).toThrow(/is empty/);
  });

  it('matches wildcards in linear time, whatever pattern and value callers send', () => {
    for (const [pattern, value, want] of [
      ['a*c', 'abbbc', true], ['a*c', 'abbb', false], ['*', '', true], ['?', '', false], ['a?c', 'abc', true],
      ['a?c', 'ac', false], ['*.bin', 'x.bin', true], ['*a*a*b', 'aab', true], ['[x]', '[x]', true], ['a.c', 'abc', false],
      ['**', 'anything', true], ['a*', 'a\nb', true],
    ] as Array<[string, string, boolean]>) {
      expect(wildcardMatch(pattern, value), `${pattern} ~ ${value}`).toBe(want);
    }
    // a backtracking regular expression takes longer than the test timeout on this (exponential in the stars)
    expect(wildcardMatch('*a*a*a*a*a*a*a*b', 'a'.repeat(20_000))).toBe(false);
  });

  it('evaluates attestation conditions: present and matching allows, absent or different denies', () => {
    const p = parsePolicy(policy({ ...allowAll, Action: 'kms:Decrypt', Condition: { StringEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': PCR0.toUpperCase(), 'kms:RecipientAttestation:PCR8': 'cd'.repeat(48) } } }));
    const ok = { 'kms:recipientattestation:imagesha384': [PCR0], 'kms:recipientattestation:pcr8': ['cd'.repeat(48)] };
    expect(evaluatePolicy(p, req('kms:Decrypt', ALICE, ok))).toBe('allow');
    expect(evaluatePolicy(p, req('kms:Decrypt', ALICE, { ...ok, 'kms:recipientattestation:pcr8': ['00'.repeat(48)] }))).toBe('implicit-deny');
    expect(evaluatePolicy(p, req('kms:Decrypt', ALICE, { 'kms:recipientattestation:pcr8': ['cd'.repeat(48)] }))).toBe('implicit-deny');
    expect(evaluatePolicy(p, req('kms:Decrypt'))).toBe('implicit-deny');
  });

  it('treats encryption-context keys case-sensitively and supports set operators', () => {
    const p = parsePolicy(policy({ ...allowAll, Condition: { StringLike: { 'kms:EncryptionContext:coffer:blob': '0a*' }, 'ForAllValues:StringEquals': { 'kms:EncryptionContextKeys': ['coffer:blob'] } } }));
    const ctx = (k: string, v: string): Record<string, string[]> => ({ [`kms:encryptioncontext:${k}`]: [v], 'kms:encryptioncontextkeys': [k] });
    expect(evaluatePolicy(p, req('kms:Encrypt', ALICE, ctx('coffer:blob', '0aff')))).toBe('allow');
    expect(evaluatePolicy(p, req('kms:Encrypt', ALICE, ctx('coffer:blob', '0bff')))).toBe('implicit-deny');
    expect(evaluatePolicy(p, req('kms:Encrypt', ALICE, ctx('Coffer:Blob', '0aff')))).toBe('implicit-deny');
    const anyOf = parsePolicy(policy({ ...allowAll, Condition: { 'ForAnyValue:StringEquals': { 'kms:EncryptionContextKeys': 'x' } } }));
    expect(evaluatePolicy(anyOf, req('kms:Encrypt', ALICE, { 'kms:encryptioncontextkeys': ['y', 'x'] }))).toBe('allow');
    expect(evaluatePolicy(anyOf, req('kms:Encrypt'))).toBe('implicit-deny');
  });

  it('Null and negated operators follow AWS semantics for absent keys', () => {
    const p = parsePolicy(policy(allowAll, { Effect: 'Deny', Principal: '*', Action: 'kms:Decrypt', Resource: '*', Condition: { Null: { 'kms:RecipientAttestation:ImageSha384': 'true' } } }));
    expect(evaluatePolicy(p, req('kms:Decrypt'))).toBe('explicit-deny');
    expect(evaluatePolicy(p, req('kms:Decrypt', ALICE, { 'kms:recipientattestation:imagesha384': [PCR0] }))).toBe('allow');
    const neg = parsePolicy(policy({ ...allowAll, Condition: { StringNotEquals: { 'kms:CallerAccount': '111111111111' } } }));
    expect(evaluatePolicy(neg, req('kms:Encrypt'))).toBe('allow');
    expect(evaluatePolicy(neg, req('kms:Encrypt', ALICE, { 'kms:calleraccount': ['111111111111'] }))).toBe('implicit-deny');
  });

  it('builds policies that parse and gate Decrypt on attestation', () => {
    expect(evaluatePolicy(parsePolicy(defaultKeyPolicy(ALICE)), req('kms:PutKeyPolicy'))).toBe('allow');
    const p = parsePolicy(attestedKeyPolicy({ admins: [ALICE], sealers: [ALICE], enclaves: [BOB], imageSha384: [PCR0] }));
    expect(evaluatePolicy(p, req('kms:GenerateDataKey'))).toBe('allow');
    // fixed at creation: nobody may change it, grant it away or move its aliases
    for (const action of ['kms:PutKeyPolicy', 'kms:CreateGrant', 'kms:UpdateAlias', 'kms:DeleteAlias']) {
      expect(evaluatePolicy(p, req(action))).toBe('explicit-deny');
      expect(evaluatePolicy(p, req(action, BOB))).toBe('explicit-deny');
    }
    expect(evaluatePolicy(p, req('kms:ReEncryptFrom', ALICE, { 'kms:reencryptonsamekey': ['false'] }))).toBe('allow');
    const awsVariant = parsePolicy(attestedKeyPolicy({ admins: [ALICE], sealers: [ALICE], enclaves: [BOB], imageSha384: [PCR0], sameKeyReEncryptOnly: true }));
    expect(evaluatePolicy(awsVariant, req('kms:ReEncryptFrom', ALICE, { 'kms:reencryptonsamekey': ['false'] }))).toBe('explicit-deny');
    expect(evaluatePolicy(awsVariant, req('kms:ReEncryptFrom', ALICE, { 'kms:reencryptonsamekey': ['true'] }))).toBe('allow');
    expect(evaluatePolicy(p, req('kms:Decrypt'))).toBe('explicit-deny');
    expect(evaluatePolicy(p, req('kms:Decrypt', BOB))).toBe('explicit-deny');
    expect(evaluatePolicy(p, req('kms:Decrypt', BOB, { 'kms:recipientattestation:imagesha384': [PCR0] }))).toBe('allow');
    expect(evaluatePolicy(p, req('kms:Decrypt', BOB, { 'kms:recipientattestation:imagesha384': ['00'.repeat(48)] }))).toBe('implicit-deny');
    expect(() => attestedKeyPolicy({ admins: [], sealers: [], enclaves: [BOB], imageSha384: [] })).toThrow(RangeError);
  });
});

describe('attestation rule (custody invariant)', () => {
  const vault = (over: Partial<Parameters<typeof attestedKeyPolicy>[0]> = {}): string =>
    attestedKeyPolicy({ admins: [ALICE], sealers: [ALICE], enclaves: [BOB], imageSha384: [PCR0], ...over });

  it('marks a policy bound when any statement tests an attestation key; the default policy is not', () => {
    expect(isAttestationBound(parsePolicy(vault()))).toBe(true);
    expect(isAttestationBound(parsePolicy(defaultKeyPolicy(ALICE)))).toBe(false);
    expect(attestationRuleOf('not json')).toMatchObject({ bound: true });
  });

  it('is blind to Sids, order and the case of case-insensitive values, and sees every change of meaning', () => {
    const base = JSON.parse(vault()) as { Statement: Array<Record<string, unknown>> };
    const reordered = { ...base, Id: 'other', Statement: [...base.Statement].reverse().map((s) => ({ ...s, Sid: `x${String(s.Sid)}` })) };
    const fp = (v: unknown): string => attestationRuleFingerprint(parsePolicy(typeof v === 'string' ? v : JSON.stringify(v)));
    expect(fp(reordered)).toBe(fp(vault()));
    expect(fp(vault({ imageSha384: [PCR0.toUpperCase()] }))).toBe(fp(vault()));
    expect(fp(vault({ imageSha384: ['cd'.repeat(48)] }))).not.toBe(fp(vault()));
    expect(fp(vault({ imageSha384: [PCR0, 'cd'.repeat(48)] }))).not.toBe(fp(vault()));
    expect(fp(vault({ enclaves: [ALICE] }))).not.toBe(fp(vault()));
    expect(fp(vault({ admins: [BOB] }))).not.toBe(fp(vault()));
    const withoutLock = { ...base, Statement: base.Statement.filter((s) => s.Sid !== 'DenyPolicyChange') };
    expect(fp(withoutLock)).not.toBe(fp(vault()));
  });
});
