// Request validation for the embedded KMS: every operation declares its fields; an unknown field, a wrong
// type, bad base64 or an out-of-range value is a ValidationException (fail closed: nothing is ignored).
import { validation } from './errors.js';
import { isWellFormed } from '../../unicode.js';

export type Kind = 'string' | 'blob' | 'context' | 'int' | 'bool' | 'stringList' | 'recipient' | 'tags';
export interface FieldSpec {
  readonly kind: Kind;
  readonly required?: boolean;
  /** Inclusive bounds: string/blob length, list length, or integer value. */
  readonly min?: number;
  readonly max?: number;
}
export type Schema = Readonly<Record<string, FieldSpec>>;

export interface Recipient {
  KeyEncryptionAlgorithm: string;
  AttestationDocument: Buffer;
}
type KindType<K extends Kind> = K extends 'string' ? string
  : K extends 'blob' ? Buffer
  : K extends 'context' ? Record<string, string>
  : K extends 'int' ? number
  : K extends 'bool' ? boolean
  : K extends 'stringList' ? string[]
  : K extends 'recipient' ? Recipient
  : Array<{ TagKey: string; TagValue: string }>;

/** The typed input of an operation: required fields present, the others optional. */
export type Input<S extends Schema> = { -readonly [F in keyof S as S[F]['required'] extends true ? F : never]: KindType<S[F]['kind']> } & {
  -readonly [F in keyof S as S[F]['required'] extends true ? never : F]?: KindType<S[F]['kind']>;
};

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Validates a parsed JSON request body against a schema. @throws KmsApiError ValidationException */
export function parseInput<S extends Schema>(schema: S, body: unknown): Input<S> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw validation('The request body must be a JSON object.');
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(body)) {
    const spec = schema[name];
    if (!spec) throw validation(`Unknown field '${name}' in the request (this KMS rejects fields it does not support).`);
    if (value === null) continue;
    out[name] = convert(name, spec, value);
  }
  for (const [name, spec] of Object.entries(schema)) {
    if (spec.required && out[name] === undefined) {
      throw validation(`1 validation error detected: Value null at '${lowerFirst(name)}' failed to satisfy constraint: Member must not be null`);
    }
  }
  return out as Input<S>;
}

function convert(name: string, spec: FieldSpec, v: unknown): unknown {
  const bad = (constraint: string): never => {
    throw validation(`1 validation error detected: Value at '${lowerFirst(name)}' failed to satisfy constraint: ${constraint}`);
  };
  const bounded = (n: number, what: string): void => {
    if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
      bad(`Member must have ${what} between ${spec.min ?? 0} and ${spec.max ?? 'unbounded'}`);
    }
  };
  switch (spec.kind) {
    case 'string':
      if (typeof v !== 'string') return bad('Member must be a string');
      bounded(v.length, 'length');
      return v;
    case 'blob': {
      if (typeof v !== 'string' || !BASE64.test(v)) return bad('Member must be base64-encoded binary');
      const b = Buffer.from(v, 'base64');
      bounded(b.length, 'length');
      return b;
    }
    case 'int':
      if (typeof v !== 'number' || !Number.isInteger(v)) return bad('Member must be an integer');
      bounded(v, 'value');
      return v;
    case 'bool':
      if (typeof v !== 'boolean') return bad('Member must be a boolean');
      return v;
    case 'stringList':
      if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) return bad('Member must be a list of strings');
      bounded(v.length, 'length');
      return v;
    case 'context': {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return bad('Member must be a map of strings');
      const entries = Object.entries(v as Record<string, unknown>);
      if (entries.some(([k, x]) => typeof x !== 'string' || k.length === 0)) return bad('Member must map non-empty strings to strings');
      // a lone surrogate encodes as U+FFFD: two different contexts would authenticate as the same one
      if (entries.some(([k, x]) => !isWellFormed(k) || !isWellFormed(x as string))) return bad('Member must be well-formed Unicode (no lone surrogates)');
      return Object.fromEntries(entries) as Record<string, string>;
    }
    case 'recipient': {
      const r = parseInput(RECIPIENT, v);
      return r;
    }
    case 'tags': {
      if (!Array.isArray(v)) return bad('Member must be a list of tags');
      return v.map((t) => parseInput(TAG, t));
    }
  }
}

const RECIPIENT = {
  KeyEncryptionAlgorithm: { kind: 'string', required: true },
  AttestationDocument: { kind: 'blob', required: true, min: 1, max: 16384 },
} as const satisfies Schema;
const TAG = { TagKey: { kind: 'string', required: true, min: 1, max: 128 }, TagValue: { kind: 'string', required: true, max: 256 } } as const satisfies Schema;

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

const keyId = { kind: 'string', required: true, min: 1, max: 2048 } as const;
const grants = { kind: 'stringList', max: 10 } as const;
const ciphertext = { kind: 'blob', min: 1, max: 6144 } as const;

/** Fields of each supported operation (AWS KMS API reference, minus what we do not support — see docs/kms.md). */
export const SCHEMAS = {
  CreateKey: {
    Policy: { kind: 'string', min: 1, max: 32768 }, Description: { kind: 'string', max: 8192 }, KeyUsage: { kind: 'string' },
    CustomerMasterKeySpec: { kind: 'string' }, KeySpec: { kind: 'string' }, Origin: { kind: 'string' }, CustomKeyStoreId: { kind: 'string' },
    BypassPolicyLockoutSafetyCheck: { kind: 'bool' }, Tags: { kind: 'tags' }, MultiRegion: { kind: 'bool' }, XksKeyId: { kind: 'string' },
  },
  DescribeKey: { KeyId: keyId, GrantTokens: grants },
  ListKeys: { Limit: { kind: 'int', min: 1, max: 1000 }, Marker: { kind: 'string', min: 1, max: 1024 } },
  CreateAlias: { AliasName: { kind: 'string', required: true, min: 1, max: 256 }, TargetKeyId: keyId },
  ListAliases: { KeyId: { kind: 'string', min: 1, max: 2048 }, Limit: { kind: 'int', min: 1, max: 100 }, Marker: { kind: 'string', min: 1, max: 1024 } },
  GenerateDataKey: {
    KeyId: keyId, EncryptionContext: { kind: 'context' }, NumberOfBytes: { kind: 'int', min: 1, max: 1024 }, KeySpec: { kind: 'string' },
    GrantTokens: grants, Recipient: { kind: 'recipient' }, DryRun: { kind: 'bool' },
  },
  GenerateDataKeyWithoutPlaintext: {
    KeyId: keyId, EncryptionContext: { kind: 'context' }, NumberOfBytes: { kind: 'int', min: 1, max: 1024 }, KeySpec: { kind: 'string' },
    GrantTokens: grants, DryRun: { kind: 'bool' },
  },
  Encrypt: {
    KeyId: keyId, Plaintext: { kind: 'blob', required: true, min: 1, max: 4096 }, EncryptionContext: { kind: 'context' }, GrantTokens: grants,
    EncryptionAlgorithm: { kind: 'string' }, DryRun: { kind: 'bool' },
  },
  Decrypt: {
    CiphertextBlob: { ...ciphertext, required: true }, EncryptionContext: { kind: 'context' }, GrantTokens: grants, KeyId: { kind: 'string', min: 1, max: 2048 },
    EncryptionAlgorithm: { kind: 'string' }, Recipient: { kind: 'recipient' }, DryRun: { kind: 'bool' }, DryRunModifiers: { kind: 'stringList' },
  },
  ReEncrypt: {
    CiphertextBlob: { ...ciphertext, required: true }, SourceEncryptionContext: { kind: 'context' }, SourceKeyId: { kind: 'string', min: 1, max: 2048 },
    DestinationKeyId: keyId, DestinationEncryptionContext: { kind: 'context' }, SourceEncryptionAlgorithm: { kind: 'string' },
    DestinationEncryptionAlgorithm: { kind: 'string' }, GrantTokens: grants, DryRun: { kind: 'bool' }, DryRunModifiers: { kind: 'stringList' },
  },
  GetKeyPolicy: { KeyId: keyId, PolicyName: { kind: 'string', min: 1, max: 128 } },
  PutKeyPolicy: { KeyId: keyId, PolicyName: { kind: 'string', min: 1, max: 128 }, Policy: { kind: 'string', required: true, min: 1, max: 32768 }, BypassPolicyLockoutSafetyCheck: { kind: 'bool' } },
  EnableKeyRotation: { KeyId: keyId, RotationPeriodInDays: { kind: 'int', min: 90, max: 2560 } },
  DisableKeyRotation: { KeyId: keyId },
  GetKeyRotationStatus: { KeyId: keyId },
  RotateKeyOnDemand: { KeyId: keyId },
  EnableKey: { KeyId: keyId },
  DisableKey: { KeyId: keyId },
} as const satisfies Record<string, Schema>;

export type Operation = keyof typeof SCHEMAS;
