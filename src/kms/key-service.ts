// KeyService: how the vault gets, unwraps and rewraps per-blob data keys through AWS KMS — the real service
// or the embedded KMS (same protocol, `endpoint` override). Plaintext keys leave KMS only to a caller its key
// policy lets encrypt (clients sealing new data) or, for enclaves, as CMS CiphertextForRecipient.
import type { KeyObject } from 'node:crypto';
import { DecryptCommand, GenerateDataKeyCommand, KMSClient, ReEncryptCommand, type KMSClientConfig } from '@aws-sdk/client-kms';
import { CofferError, ErrorCode } from '../errors.js';
import { openEnvelope } from './cms/index.js';
import { blobContext, parseKmsKeyRecord, type KmsKeyRecord } from './key-record.js';

export interface GeneratedDataKey {
  /** 32-byte DEK. The caller zeroes it when done. */
  plaintextKey: Uint8Array;
  keyRecord: KmsKeyRecord;
}

/**
 * Data keys for blobs. Every method makes one KMS call; none is idempotent in effect (each generate makes a new
 * key) but all are safe to retry. Permanent errors: KMS_ACCESS_DENIED (policy or attestation refused),
 * KEY_INVALID (record malformed, for another blob, or its ciphertext/context does not open), NOT_FOUND (no such
 * KMS key), CMS (the envelope does not open with the given private key). KMS errors marked retryable are
 * transient (network, throttling, 5xx).
 */
export interface KeyService {
  /** The KMS key (id, ARN or alias) new data keys are generated under. */
  readonly keyId: string;
  /** A new DEK in plaintext for a client sealing its own new blob. */
  generateDataKey(blobIdHex: string): Promise<GeneratedDataKey>;
  /** A new DEK for an enclave: delivered only as CiphertextForRecipient to the key inside the attestation document. */
  generateDataKeyForRecipient(blobIdHex: string, attestationDocument: Uint8Array, rsaPrivateKey: KeyObject): Promise<GeneratedDataKey>;
  /** Unwraps a blob's DEK inside an enclave: Decrypt with Recipient, then open the CMS envelope. */
  decryptForRecipient(keyRecord: unknown, blobIdHex: string, attestationDocument: Uint8Array, rsaPrivateKey: KeyObject): Promise<Uint8Array>;
  /** Re-wraps a DEK under another KMS key without it leaving KMS (ReEncrypt). Chunks are untouched. */
  rewrap(keyRecord: unknown, toKeyId: string): Promise<KmsKeyRecord>;
  close(): void;
}

export interface AwsKeyServiceOptions {
  /** KMS key for new data keys: key id, key ARN, alias name or alias ARN. */
  keyId: string;
  /** AWS region (default: the SDK's chain, e.g. AWS_REGION). */
  region?: string;
  /** Endpoint override, e.g. the embedded KMS's URL. */
  endpoint?: string;
  /** Credentials (default: the SDK's default provider chain). */
  credentials?: KMSClientConfig['credentials'];
  /** Use this client instead of making one (then region/endpoint/credentials are ignored). */
  client?: KMSClient;
}

const RECIPIENT_ALGORITHM = 'RSAES_OAEP_SHA_256';

export class AwsKeyService implements KeyService {
  readonly keyId: string;
  private readonly client: KMSClient;
  private readonly ownsClient: boolean;

  constructor(opts: AwsKeyServiceOptions) {
    this.keyId = opts.keyId;
    this.ownsClient = opts.client === undefined;
    this.client = opts.client ?? new KMSClient({
      ...(opts.region ? { region: opts.region } : {}),
      ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
      ...(opts.credentials ? { credentials: opts.credentials } : {}),
    });
  }

  async generateDataKey(blobIdHex: string): Promise<GeneratedDataKey> {
    const ctx = blobContext(blobIdHex);
    const out = await call(() => this.client.send(new GenerateDataKeyCommand({ KeyId: this.keyId, KeySpec: 'AES_256', EncryptionContext: ctx })));
    const key = out.Plaintext;
    if (!key || key.length !== 32 || !out.CiphertextBlob || !out.KeyId) throw kmsError('GenerateDataKey returned no 32-byte key');
    return { plaintextKey: key, keyRecord: record(out.KeyId, out.CiphertextBlob, blobIdHex) };
  }

  async generateDataKeyForRecipient(blobIdHex: string, attestationDocument: Uint8Array, rsaPrivateKey: KeyObject): Promise<GeneratedDataKey> {
    const ctx = blobContext(blobIdHex);
    const out = await call(() => this.client.send(new GenerateDataKeyCommand({
      KeyId: this.keyId, KeySpec: 'AES_256', EncryptionContext: ctx, Recipient: { KeyEncryptionAlgorithm: RECIPIENT_ALGORITHM, AttestationDocument: attestationDocument },
    })));
    refusePlaintext(out.Plaintext);
    if (!out.CiphertextForRecipient || !out.CiphertextBlob || !out.KeyId) throw kmsError('GenerateDataKey returned no CiphertextForRecipient');
    return { plaintextKey: openKey(out.CiphertextForRecipient, rsaPrivateKey), keyRecord: record(out.KeyId, out.CiphertextBlob, blobIdHex) };
  }

  async decryptForRecipient(keyRecord: unknown, blobIdHex: string, attestationDocument: Uint8Array, rsaPrivateKey: KeyObject): Promise<Uint8Array> {
    const r = parseKmsKeyRecord(keyRecord, blobIdHex);
    const out = await call(() => this.client.send(new DecryptCommand({
      KeyId: r.keyId,
      CiphertextBlob: Buffer.from(r.ciphertextBlob, 'base64'),
      EncryptionContext: r.encryptionContext,
      Recipient: { KeyEncryptionAlgorithm: RECIPIENT_ALGORITHM, AttestationDocument: attestationDocument },
    })));
    refusePlaintext(out.Plaintext);
    if (!out.CiphertextForRecipient) throw kmsError('Decrypt returned no CiphertextForRecipient');
    return openKey(out.CiphertextForRecipient, rsaPrivateKey);
  }

  async rewrap(keyRecord: unknown, toKeyId: string): Promise<KmsKeyRecord> {
    const r = parseKmsKeyRecord(keyRecord);
    const out = await call(() => this.client.send(new ReEncryptCommand({
      CiphertextBlob: Buffer.from(r.ciphertextBlob, 'base64'),
      SourceKeyId: r.keyId,
      SourceEncryptionContext: r.encryptionContext,
      DestinationKeyId: toKeyId,
      DestinationEncryptionContext: r.encryptionContext,
    })));
    if (!out.CiphertextBlob || !out.KeyId) throw kmsError('ReEncrypt returned no ciphertext');
    return record(out.KeyId, out.CiphertextBlob, r.encryptionContext['coffer:blob']);
  }

  close(): void {
    if (this.ownsClient) this.client.destroy();
  }
}

function record(keyId: string, blob: Uint8Array, blobIdHex: string): KmsKeyRecord {
  return { scheme: 'kms', keyId, ciphertextBlob: Buffer.from(blob).toString('base64'), encryptionContext: blobContext(blobIdHex) };
}

/** A KMS that answers a Recipient request with plaintext is not behaving as required: refuse, and wipe it. */
function refusePlaintext(p: Uint8Array | undefined): void {
  if (p && p.length > 0) {
    p.fill(0);
    throw kmsError('KMS returned a plaintext key to an attested recipient request; refusing');
  }
}

function openKey(envelope: Uint8Array, rsaPrivateKey: KeyObject): Uint8Array {
  const key = openEnvelope(envelope, rsaPrivateKey);
  if (key.length !== 32) {
    key.fill(0);
    throw new CofferError(ErrorCode.KEY_INVALID, `KMS released a ${key.length}-byte data key; expected 32`);
  }
  return new Uint8Array(key);
}

function kmsError(message: string): CofferError {
  return new CofferError(ErrorCode.KMS, message);
}

/**
 * AWS error type (the protocol's `__type`, which the SDK puts in `name`; AccessDeniedException and the auth
 * errors are not modelled as classes) → Coffer code. A lookup of the stable type name, never of a message.
 */
const PERMANENT: Readonly<Record<string, ErrorCode>> = Object.freeze({
  AccessDeniedException: ErrorCode.KMS_ACCESS_DENIED,
  InvalidCiphertextException: ErrorCode.KEY_INVALID,
  IncorrectKeyException: ErrorCode.KEY_INVALID,
  NotFoundException: ErrorCode.NOT_FOUND,
  InvalidSignatureException: ErrorCode.UNAUTHENTICATED,
  UnrecognizedClientException: ErrorCode.UNAUTHENTICATED,
  MissingAuthenticationTokenException: ErrorCode.UNAUTHENTICATED,
});
const TRANSIENT = new Set(['ThrottlingException', 'LimitExceededException', 'KMSInternalException', 'DependencyTimeoutException', 'KeyUnavailableException']);

/** Runs one KMS call, mapping SDK errors to CofferError codes by error type. */
async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const err = e as Error & { $metadata?: { httpStatusCode?: number } };
    const type = err?.name ?? 'Error';
    const code = PERMANENT[type];
    if (code) throw new CofferError(code, `KMS refused (${type}): ${err.message}`, { cause: e, details: { kmsError: type } });
    const status = err?.$metadata?.httpStatusCode;
    const retryable = status === undefined || status >= 500 || TRANSIENT.has(type);
    throw new CofferError(ErrorCode.KMS, `KMS request failed (${type}): ${err?.message ?? String(e)}`, { cause: e, retryable, details: { kmsError: type } });
  }
}
