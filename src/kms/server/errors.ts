// Errors of the embedded KMS in the AWS JSON 1.1 shape: `{"__type": "<Name>", "message": "…"}` plus an HTTP status,
// so @aws-sdk/client-kms raises its matching exception classes (AccessDeniedException, NotFoundException, …).

/** Error type names we emit (AWS KMS's modelled exceptions plus the common auth errors). */
export type KmsErrorType =
  | 'AccessDeniedException'
  | 'AlreadyExistsException'
  | 'DisabledException'
  | 'DryRunOperationException'
  | 'IncorrectKeyException'
  | 'InvalidAliasNameException'
  | 'InvalidCiphertextException'
  | 'InvalidKeyUsageException'
  | 'InvalidMarkerException'
  | 'KMSInternalException'
  | 'KMSInvalidStateException'
  | 'MalformedPolicyDocumentException'
  | 'NotFoundException'
  | 'UnsupportedOperationException'
  | 'ValidationException'
  | 'SerializationException'
  | 'UnknownOperationException'
  | 'MissingAuthenticationTokenException'
  | 'InvalidSignatureException'
  | 'IncompleteSignatureException'
  | 'UnrecognizedClientException'
  | 'RequestEntityTooLargeException';

/** HTTP status AWS KMS uses for each type: 400 for nearly everything; see docs/kms.md. */
const STATUS: Partial<Record<KmsErrorType, number>> = {
  KMSInternalException: 500,
  DryRunOperationException: 412,
  MissingAuthenticationTokenException: 403,
  RequestEntityTooLargeException: 413,
};

/** An error to return to the KMS client verbatim. Anything else thrown in a handler becomes KMSInternalException. */
export class KmsApiError extends Error {
  override readonly name = 'KmsApiError';
  readonly type: KmsErrorType;
  readonly status: number;

  constructor(type: KmsErrorType, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.type = type;
    this.status = STATUS[type] ?? 400;
  }
}

export const accessDenied = (m: string): KmsApiError => new KmsApiError('AccessDeniedException', m);
export const validation = (m: string): KmsApiError => new KmsApiError('ValidationException', m);
export const notFound = (m: string): KmsApiError => new KmsApiError('NotFoundException', m);
export const unsupported = (m: string): KmsApiError => new KmsApiError('UnsupportedOperationException', m);
