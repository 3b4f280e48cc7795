// Key management operations: CreateKey, DescribeKey, ListKeys, CreateAlias, ListAliases, Get/PutKeyPolicy,
// key rotation (Enable/Disable/GetKeyRotationStatus, RotateKeyOnDemand) and Enable/DisableKey.
import { attestationRuleOf, defaultKeyPolicy, evaluatePolicy, parsePolicy, PolicyError } from '../../policy/index.js';
import { authorize, conditionValues, epochSeconds, type OpContext } from '../context.js';
import { accessDenied, KmsApiError, unsupported, validation } from '../errors.js';
import { KeyStore, type KmsKey } from '../key-store.js';
import type { Input, SCHEMAS } from '../validate.js';

type In<Op extends keyof typeof SCHEMAS> = Input<(typeof SCHEMAS)[Op]>;
type Out = Record<string, unknown>;

export function keyMetadata(k: KmsKey, accountId: string): Out {
  return {
    AWSAccountId: accountId,
    KeyId: k.keyId,
    Arn: k.arn,
    CreationDate: epochSeconds(k.creationDate),
    Enabled: k.enabled,
    Description: k.description,
    KeyUsage: 'ENCRYPT_DECRYPT',
    KeyState: k.enabled ? 'Enabled' : 'Disabled',
    Origin: 'AWS_KMS',
    KeyManager: 'CUSTOMER',
    CustomerMasterKeySpec: 'SYMMETRIC_DEFAULT',
    KeySpec: 'SYMMETRIC_DEFAULT',
    EncryptionAlgorithms: ['SYMMETRIC_DEFAULT'],
    MultiRegion: false,
    CurrentKeyMaterialId: k.materials[k.materials.length - 1]?.id,
  };
}

/**
 * Parses a policy and, unless bypassed, checks it still lets the caller change it (AWS's lockout safety check).
 * @throws KmsApiError MalformedPolicyDocumentException
 */
function acceptPolicy(op: OpContext, text: string, arn: string, bypass: boolean | undefined): void {
  let policy;
  try {
    policy = parsePolicy(text);
  } catch (e) {
    if (e instanceof PolicyError) throw new KmsApiError('MalformedPolicyDocumentException', `The key policy is not supported or malformed: ${e.message}`);
    throw e;
  }
  if (bypass) return;
  const ctx = { principalArn: op.caller.principalArn, action: 'kms:PutKeyPolicy', resourceArn: arn, conditions: conditionValues(op.caller, {}) };
  if (evaluatePolicy(policy, ctx) !== 'allow') {
    throw new KmsApiError('MalformedPolicyDocumentException', 'The new key policy will not allow you to update the key policy in the future.');
  }
}

export async function createKey(op: OpContext, i: In<'CreateKey'>): Promise<Out> {
  if (i.KeyUsage !== undefined && i.KeyUsage !== 'ENCRYPT_DECRYPT') throw unsupported(`KeyUsage ${i.KeyUsage} is not supported (only ENCRYPT_DECRYPT).`);
  for (const spec of [i.KeySpec, i.CustomerMasterKeySpec]) {
    if (spec !== undefined && spec !== 'SYMMETRIC_DEFAULT') throw unsupported(`KeySpec ${spec} is not supported (only SYMMETRIC_DEFAULT).`);
  }
  if (i.Origin !== undefined && i.Origin !== 'AWS_KMS') throw unsupported(`Origin ${i.Origin} is not supported.`);
  if (i.CustomKeyStoreId !== undefined || i.XksKeyId !== undefined) throw unsupported('Custom key stores are not supported.');
  if (i.MultiRegion) throw unsupported('Multi-Region keys are not supported.');
  const policy = i.Policy ?? defaultKeyPolicy(op.caller.principalArn);
  // the ARN is only known after creation; "*" resources are what key policies use, so check against a placeholder
  acceptPolicy(op, policy, `${op.settings.store.arnPrefix()}key/new`, i.BypassPolicyLockoutSafetyCheck);
  const key = await op.settings.store.createKey({ description: i.Description ?? '', policy, tags: i.Tags ?? [] }, op.settings.now().getTime());
  return { KeyMetadata: keyMetadata(key, op.settings.accountId) };
}

export function describeKey(op: OpContext, i: In<'DescribeKey'>): Out {
  const key = op.settings.store.resolve(i.KeyId);
  authorize(op, key, 'kms:DescribeKey');
  return { KeyMetadata: keyMetadata(key, op.settings.accountId) };
}

function page<T>(items: readonly T[], limit: number | undefined, marker: string | undefined): { items: T[]; next: string | undefined } {
  const start = marker === undefined ? 0 : Number.parseInt(marker, 10);
  if (!Number.isInteger(start) || start < 0 || start > items.length || (marker !== undefined && String(start) !== marker)) {
    throw new KmsApiError('InvalidMarkerException', 'The marker is not valid.');
  }
  const end = Math.min(items.length, start + (limit ?? 100));
  return { items: items.slice(start, end), next: end < items.length ? String(end) : undefined };
}

export function listKeys(op: OpContext, i: In<'ListKeys'>): Out {
  const { items, next } = page(op.settings.store.keys(), i.Limit, i.Marker);
  return { Keys: items.map((k) => ({ KeyId: k.keyId, KeyArn: k.arn })), Truncated: next !== undefined, ...(next ? { NextMarker: next } : {}) };
}

export async function createAlias(op: OpContext, i: In<'CreateAlias'>): Promise<Out> {
  if (!/^alias\/[a-zA-Z0-9/_-]{1,250}$/.test(i.AliasName) || i.AliasName.startsWith('alias/aws/')) {
    throw new KmsApiError('InvalidAliasNameException', `Alias name ${i.AliasName} is invalid: use alias/ followed by letters, digits, /, _ or -, not alias/aws/.`);
  }
  if (i.TargetKeyId.startsWith('alias/') || i.TargetKeyId.includes(':alias/')) throw validation('TargetKeyId must be a key id or key ARN, not an alias.');
  const key = op.settings.store.resolve(i.TargetKeyId);
  authorize(op, key, 'kms:CreateAlias');
  await op.settings.store.createAlias(i.AliasName, key.keyId, op.settings.now().getTime());
  return {};
}

export function listAliases(op: OpContext, i: In<'ListAliases'>): Out {
  const store = op.settings.store;
  const keyId = i.KeyId === undefined ? undefined : store.resolve(i.KeyId).keyId;
  const all = store.aliases().filter((a) => keyId === undefined || a.targetKeyId === keyId);
  const { items, next } = page(all, i.Limit, i.Marker);
  return {
    Aliases: items.map((a) => ({
      AliasName: a.name, AliasArn: `${store.arnPrefix()}${a.name}`, TargetKeyId: a.targetKeyId,
      CreationDate: epochSeconds(a.creationDate), LastUpdatedDate: epochSeconds(a.lastUpdatedDate),
    })),
    Truncated: next !== undefined,
    ...(next ? { NextMarker: next } : {}),
  };
}

function policyName(name: string | undefined): void {
  if (name !== undefined && name !== 'default') throw new KmsApiError('NotFoundException', `Policy ${name} does not exist (only "default").`);
}

export function getKeyPolicy(op: OpContext, i: In<'GetKeyPolicy'>): Out {
  policyName(i.PolicyName);
  const key = op.settings.store.resolve(i.KeyId);
  authorize(op, key, 'kms:GetKeyPolicy');
  return { Policy: key.policy, PolicyName: 'default' };
}

export async function putKeyPolicy(op: OpContext, i: In<'PutKeyPolicy'>): Promise<Out> {
  policyName(i.PolicyName);
  const key = op.settings.store.resolve(i.KeyId);
  authorize(op, key, 'kms:PutKeyPolicy');
  // Custody invariant, whatever the policy itself says: who may get an attestation-bound key's data keys is
  // fixed when the key is made (docs/kms.md "Key custody").
  if (attestationRuleOf(key.policy).bound) {
    throw accessDenied(`User: ${op.caller.principalArn} is not authorized to perform: kms:PutKeyPolicy on resource: ${key.arn}: the policy of a key bound to enclave attestation cannot be changed`);
  }
  acceptPolicy(op, i.Policy, key.arn, i.BypassPolicyLockoutSafetyCheck);
  await op.settings.store.update(key.keyId, (k) => void (k.policy = i.Policy));
  return {};
}

export async function enableKeyRotation(op: OpContext, i: In<'EnableKeyRotation'>): Promise<Out> {
  const key = op.settings.store.resolve(i.KeyId);
  authorize(op, key, 'kms:EnableKeyRotation');
  if (!key.enabled) throw new KmsApiError('KMSInvalidStateException', `${key.arn} is disabled.`);
  const days = i.RotationPeriodInDays ?? 365;
  const now = op.settings.now().getTime();
  await op.settings.store.update(key.keyId, (k) => {
    k.rotation.enabled = true;
    k.rotation.periodDays = days;
    k.rotation.nextRotationDate = now + KeyStore.rotationPeriodMs(days);
  });
  return {};
}

export async function disableKeyRotation(op: OpContext, i: In<'DisableKeyRotation'>): Promise<Out> {
  const key = op.settings.store.resolve(i.KeyId);
  authorize(op, key, 'kms:DisableKeyRotation');
  await op.settings.store.update(key.keyId, (k) => {
    k.rotation.enabled = false;
    k.rotation.nextRotationDate = null;
  });
  return {};
}

export function getKeyRotationStatus(op: OpContext, i: In<'GetKeyRotationStatus'>): Out {
  const key = op.settings.store.resolve(i.KeyId);
  authorize(op, key, 'kms:GetKeyRotationStatus');
  const r = key.rotation;
  return {
    KeyId: key.arn,
    KeyRotationEnabled: r.enabled,
    ...(r.enabled ? { RotationPeriodInDays: r.periodDays } : {}),
    ...(r.enabled && r.nextRotationDate !== null ? { NextRotationDate: epochSeconds(r.nextRotationDate) } : {}),
  };
}

export async function rotateKeyOnDemand(op: OpContext, i: In<'RotateKeyOnDemand'>): Promise<Out> {
  const key = op.settings.store.resolve(i.KeyId);
  authorize(op, key, 'kms:RotateKeyOnDemand');
  if (!key.enabled) throw new KmsApiError('KMSInvalidStateException', `${key.arn} is disabled.`);
  await op.settings.store.rotate(key.keyId, op.settings.now().getTime());
  return { KeyId: key.arn };
}

export async function setKeyEnabled(op: OpContext, i: In<'EnableKey'>, enabled: boolean): Promise<Out> {
  const key = op.settings.store.resolve(i.KeyId);
  authorize(op, key, enabled ? 'kms:EnableKey' : 'kms:DisableKey');
  await op.settings.store.update(key.keyId, (k) => void (k.enabled = enabled));
  return {};
}
