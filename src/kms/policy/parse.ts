// Parses and validates a KMS key policy document (AWS JSON policy language, the subset in docs/kms.md).
// Fails closed: any field, operator, condition key or shape we do not understand makes the policy malformed,
// so PutKeyPolicy/CreateKey reject it and a stored policy that somehow fails to parse denies everything.
import { OPERATORS, type Condition, type KeyPolicy, type Operator, type SetQualifier, type Statement } from './types.js';
import { JsonSyntaxError, parseStrictJson } from '../../strict-json.js';

/** AWS caps key policies at 32 KiB. */
export const MAX_POLICY_BYTES = 32_768;

/** A policy we refuse; the server maps it to MalformedPolicyDocumentException. */
export class PolicyError extends Error {
  override readonly name = 'PolicyError';
}

/** Condition keys whose request value is a set (must be used with ForAnyValue/ForAllValues). */
const MULTI_VALUED = new Set(['kms:encryptioncontextkeys']);
const SINGLE_VALUED = new Set(['kms:recipientattestation:imagesha384', 'aws:principalarn', 'kms:calleraccount', 'kms:reencryptonsamekey']);

/**
 * Normalises a condition key name, or returns null for a key we do not support. Key names are matched
 * case-insensitively as in AWS, except the context key inside `kms:EncryptionContext:<key>`, which is
 * case-sensitive (encryption contexts are).
 */
export function conditionKey(name: string): string | null {
  const lower = name.toLowerCase();
  const ecPrefix = 'kms:encryptioncontext:';
  if (lower.startsWith(ecPrefix) && name.length > ecPrefix.length) return ecPrefix + name.slice(ecPrefix.length);
  const pcr = /^kms:recipientattestation:pcr([0-9]|[12][0-9]|3[01])$/.exec(lower);
  if (pcr) return `kms:recipientattestation:pcr${pcr[1]}`;
  if (SINGLE_VALUED.has(lower) || MULTI_VALUED.has(lower)) return lower;
  return null;
}

export function isMultiValued(key: string): boolean {
  return MULTI_VALUED.has(key);
}

/** Parses policy text. @throws PolicyError with a reason a person can act on. */
export function parsePolicy(text: string): KeyPolicy {
  if (Buffer.byteLength(text, 'utf8') > MAX_POLICY_BYTES) throw new PolicyError(`policy is larger than ${MAX_POLICY_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = parseStrictJson(text);
  } catch (e) {
    if (!(e instanceof JsonSyntaxError)) throw e;
    throw new PolicyError(`policy is not usable JSON: ${e.message}`);
  }
  const obj = asObject(doc, 'policy');
  onlyFields(obj, ['Version', 'Id', 'Statement'], 'policy');
  if (obj.Version !== '2012-10-17' && obj.Version !== '2008-10-17') throw new PolicyError('Version must be "2012-10-17"');
  if (obj.Id !== undefined && typeof obj.Id !== 'string') throw new PolicyError('Id must be a string');
  const raw = Array.isArray(obj.Statement) ? obj.Statement : obj.Statement === undefined ? [] : [obj.Statement];
  if (raw.length === 0) throw new PolicyError('policy has no statements');
  return { statements: raw.map((s, i) => parseStatement(s, i)) };
}

function parseStatement(s: unknown, i: number): Statement {
  const where = `Statement[${i}]`;
  const o = asObject(s, where);
  for (const unsupported of ['NotAction', 'NotResource', 'NotPrincipal']) {
    if (unsupported in o) throw new PolicyError(`${where}: ${unsupported} is not supported`);
  }
  onlyFields(o, ['Sid', 'Effect', 'Principal', 'Action', 'Resource', 'Condition'], where);
  if (o.Sid !== undefined && typeof o.Sid !== 'string') throw new PolicyError(`${where}: Sid must be a string`);
  if (o.Effect !== 'Allow' && o.Effect !== 'Deny') throw new PolicyError(`${where}: Effect must be "Allow" or "Deny"`);
  const actions = stringList(o.Action, `${where}.Action`).map((a) => {
    if (a !== '*' && !/^kms:[A-Za-z*?]+$/.test(a)) throw new PolicyError(`${where}: action "${a}" is not a kms: action`);
    return a.toLowerCase();
  });
  return {
    sid: (o.Sid as string | undefined) ?? null,
    effect: o.Effect,
    principals: parsePrincipal(o.Principal, where),
    actions,
    resources: stringList(o.Resource, `${where}.Resource`),
    conditions: o.Condition === undefined ? [] : parseConditions(o.Condition, where),
  };
}

function parsePrincipal(p: unknown, where: string): '*' | string[] {
  if (p === '*') return '*';
  if (p === undefined) throw new PolicyError(`${where}: Principal is required in a key policy`);
  const o = asObject(p, `${where}.Principal`);
  onlyFields(o, ['AWS'], `${where}.Principal (only "AWS" principals are supported)`);
  const list = stringList(o.AWS, `${where}.Principal.AWS`);
  if (list.includes('*')) return '*';
  for (const arn of list) {
    if (!/^arn:aws[a-z-]*:(iam|sts)::[0-9]{12}:[!-~]+$/.test(arn)) throw new PolicyError(`${where}: principal "${arn}" is not an IAM or STS ARN`);
  }
  return list;
}

function parseConditions(c: unknown, where: string): Condition[] {
  const out: Condition[] = [];
  const blocks = Object.entries(asObject(c, `${where}.Condition`));
  // an empty block would silently mean "no condition", i.e. allow: refused, as an empty list of values is
  if (blocks.length === 0) throw new PolicyError(`${where}.Condition is empty; leave it out, or give a condition`);
  for (const [opName, block] of blocks) {
    if (Object.keys(asObject(block, `${where}.Condition.${opName}`)).length === 0) throw new PolicyError(`${where}.Condition.${opName} is empty`);
    const m = /^(?:(ForAnyValue|ForAllValues):)?(.+)$/.exec(opName);
    const qualifier = (m?.[1] ?? null) as SetQualifier | null;
    const op = m?.[2] as Operator;
    if (!(OPERATORS as readonly string[]).includes(op)) throw new PolicyError(`${where}: condition operator "${opName}" is not supported`);
    for (const [keyName, value] of Object.entries(asObject(block, `${where}.Condition.${opName}`))) {
      const key = conditionKey(keyName);
      if (key === null) throw new PolicyError(`${where}: condition key "${keyName}" is not supported`);
      if (isMultiValued(key) && qualifier === null) throw new PolicyError(`${where}: "${keyName}" is multi-valued: use ForAnyValue: or ForAllValues:`);
      if (!isMultiValued(key) && qualifier !== null) throw new PolicyError(`${where}: "${keyName}" is single-valued: ${qualifier}: is not allowed with it`);
      if (qualifier !== null && op === 'Null') throw new PolicyError(`${where}: ${opName} is not supported`);
      const values = stringList(value, `${where}.Condition.${opName}.${keyName}`, true);
      if ((op === 'Bool' || op === 'Null') && values.some((v) => v !== 'true' && v !== 'false')) {
        throw new PolicyError(`${where}: ${op} takes "true" or "false"`);
      }
      out.push({ qualifier, op, key, values });
    }
  }
  return out;
}

function asObject(v: unknown, where: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new PolicyError(`${where} must be a JSON object`);
  return v as Record<string, unknown>;
}

function onlyFields(o: Record<string, unknown>, allowed: string[], where: string): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw new PolicyError(`${where}: unknown field "${k}"`);
}

function stringList(v: unknown, where: string, scalars = false): string[] {
  const list = Array.isArray(v) ? v : [v];
  if (list.length === 0 || v === undefined) throw new PolicyError(`${where} must not be empty`);
  return list.map((x) => {
    if (typeof x === 'string') return x;
    if (scalars && (typeof x === 'boolean' || typeof x === 'number')) return String(x);
    throw new PolicyError(`${where} must hold strings`);
  });
}
