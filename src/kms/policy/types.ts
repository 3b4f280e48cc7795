// Parsed form of a KMS key policy (the subset of the AWS policy language Coffer supports; docs/kms.md "Key policies").

export type Effect = 'Allow' | 'Deny';

/** Condition operators we evaluate; anything else is a malformed policy. */
export const OPERATORS = [
  'StringEquals',
  'StringNotEquals',
  'StringEqualsIgnoreCase',
  'StringNotEqualsIgnoreCase',
  'StringLike',
  'StringNotLike',
  'Bool',
  'Null',
] as const;
export type Operator = (typeof OPERATORS)[number];
export type SetQualifier = 'ForAnyValue' | 'ForAllValues';

export interface Condition {
  qualifier: SetQualifier | null;
  op: Operator;
  /** Normalised key (see conditionKey in parse.ts). */
  key: string;
  values: string[];
}

export interface Statement {
  sid: string | null;
  effect: Effect;
  /** '*' = every authenticated principal; otherwise exact principal ARNs. */
  principals: '*' | string[];
  /** Action patterns, lowercased (`kms:*`, `kms:generatedatakey*`, `*`). */
  actions: string[];
  /** Resource patterns (`*` or this key's ARN). */
  resources: string[];
  conditions: Condition[];
}

export interface KeyPolicy {
  statements: Statement[];
}

/** Facts about one request that a policy is evaluated against. */
export interface RequestContext {
  principalArn: string;
  /** `kms:Decrypt`, `kms:ReEncryptFrom`, … */
  action: string;
  resourceArn: string;
  /** Normalised condition key → its values in this request; absent = key not present in the request. */
  conditions: ReadonlyMap<string, readonly string[]>;
}

export type Decision = 'allow' | 'explicit-deny' | 'implicit-deny';
