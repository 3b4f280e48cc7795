// Key policies Coffer creates: the CreateKey default (the creator may do everything) and the attestation-gated
// policy of a vault key (data keys leave only as CiphertextForRecipient to an allowed enclave measurement).

/** The policy CreateKey applies when none is given: the creating principal may use and manage the key. */
export function defaultKeyPolicy(creatorArn: string): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Id: 'coffer-default',
    Statement: [{ Sid: 'CreatorFullAccess', Effect: 'Allow', Principal: { AWS: creatorArn }, Action: 'kms:*', Resource: '*' }],
  });
}

export interface AttestedKeyPolicyOptions {
  /** Principals that manage the key (policy, aliases, rotation) and may rewrap (ReEncrypt) its ciphertexts. */
  admins: string[];
  /** Principals that may seal new data: GenerateDataKey (plaintext to the caller), GenerateDataKeyWithoutPlaintext, Encrypt. */
  sealers: string[];
  /** Principals enclaves call KMS with; they get keys only through a Recipient whose measurement is allowed. */
  enclaves: string[];
  /** Allowed enclave images: PCR0 as hex (SHA-384, 96 hex digits); at least one. */
  imageSha384: string[];
  /** Further PCRs that must match (index → allowed hex values), e.g. PCR8 for the signing certificate. */
  pcrs?: Record<number, string[]>;
  /**
   * Deny ReEncrypt to any other key (`kms:ReEncryptOnSameKey` false). Required on AWS KMS, which has no
   * condition key naming a ReEncrypt's destination; the embedded KMS instead lets a data key move only to a key
   * with an identical policy (docs/kms.md "Key custody"), so `coffer keys rewrap` works there. Default false.
   */
  sameKeyReEncryptOnly?: boolean;
}

/**
 * The vault key policy: admins manage; sealers encrypt; enclaves Decrypt/GenerateDataKey only with an
 * attestation whose PCRs match; and explicit Denies that no later Allow can undo: no Decrypt without an
 * attestation, no policy change ever (the policy is fixed at creation, so CreateKey needs
 * BypassPolicyLockoutSafetyCheck), no grants, no alias moves or deletions.
 * @throws RangeError if no measurement is given (an empty allow-list must never mean "any enclave").
 */
export function attestedKeyPolicy(o: AttestedKeyPolicyOptions): string {
  if (o.imageSha384.length === 0) throw new RangeError('attestedKeyPolicy needs at least one allowed image (PCR0)');
  const hex = /^[0-9a-fA-F]{96}$/;
  for (const v of [...o.imageSha384, ...Object.values(o.pcrs ?? {}).flat()]) {
    if (!hex.test(v)) throw new RangeError(`measurement "${v}" is not 48 bytes of hex`);
    if (/^0+$/.test(v)) throw new RangeError('an all-zero measurement is what a debug-mode enclave reports; it is never allowed');
  }
  const attestation: Record<string, string[]> = { 'kms:RecipientAttestation:ImageSha384': o.imageSha384 };
  for (const [i, values] of Object.entries(o.pcrs ?? {})) attestation[`kms:RecipientAttestation:PCR${i}`] = values;
  const statements: unknown[] = [
    {
      Sid: 'DenyDecryptWithoutAttestation',
      Effect: 'Deny',
      Principal: '*',
      Action: 'kms:Decrypt',
      Resource: '*',
      Condition: { Null: { 'kms:RecipientAttestation:ImageSha384': 'true' } },
    },
    {
      // Nobody, whatever IAM or a later statement says, rewrites who gets keys: the policy is immutable.
      Sid: 'DenyPolicyChange',
      Effect: 'Deny',
      Principal: '*',
      Action: 'kms:PutKeyPolicy',
      Resource: '*',
    },
    {
      // Contexts with a coffer:purpose (the enclave's metadata MAC key) are made only by an attested enclave: were
      // a sealer or an administrator able to wrap a key they know under such a context, planted in the untrusted
      // store it would become the enclave's MAC key, and they could forge metadata (docs/kms.md "Key custody").
      Sid: 'DenyPurposeKeysWithoutAttestation',
      Effect: 'Deny',
      Principal: '*',
      Action: ['kms:Encrypt', 'kms:GenerateDataKey', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:ReEncryptTo'],
      Resource: '*',
      Condition: { Null: { 'kms:EncryptionContext:coffer:purpose': 'false', 'kms:RecipientAttestation:ImageSha384': 'true' } },
    },
    {
      // Grants and alias moves are other ways to hand out use of the key or to swap it under clients' feet.
      Sid: 'DenyGrantsAndAliasChanges',
      Effect: 'Deny',
      Principal: '*',
      Action: ['kms:CreateGrant', 'kms:UpdateAlias', 'kms:DeleteAlias'],
      Resource: '*',
    },
  ];
  if (o.sameKeyReEncryptOnly) {
    statements.push({
      Sid: 'DenyReEncryptToOtherKeys',
      Effect: 'Deny',
      Principal: '*',
      Action: 'kms:ReEncryptFrom',
      Resource: '*',
      Condition: { Bool: { 'kms:ReEncryptOnSameKey': 'false' } },
    });
  }
  if (o.admins.length > 0) {
    statements.push({
      Sid: 'Admins',
      Effect: 'Allow',
      Principal: { AWS: o.admins },
      Action: [
        'kms:DescribeKey', 'kms:GetKeyPolicy', 'kms:CreateAlias', 'kms:EnableKeyRotation',
        'kms:DisableKeyRotation', 'kms:GetKeyRotationStatus', 'kms:RotateKeyOnDemand', 'kms:EnableKey', 'kms:DisableKey',
        'kms:ReEncryptFrom', 'kms:ReEncryptTo',
      ],
      Resource: '*',
    });
  }
  if (o.sealers.length > 0) {
    statements.push({
      Sid: 'Sealers',
      Effect: 'Allow',
      Principal: { AWS: o.sealers },
      Action: ['kms:DescribeKey', 'kms:GenerateDataKey', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:Encrypt'],
      Resource: '*',
    });
  }
  if (o.enclaves.length > 0) {
    statements.push({
      Sid: 'AttestedEnclaves',
      Effect: 'Allow',
      Principal: { AWS: o.enclaves },
      Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
      Resource: '*',
      Condition: { StringEqualsIgnoreCase: attestation },
    });
  }
  return JSON.stringify({ Version: '2012-10-17', Id: 'coffer-attested', Statement: statements });
}
