// S3 errors: a stable S3 code, its HTTP status from one table, and the XML body S3 clients parse
// (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html). Vault errors (CofferError) are mapped
// to S3 codes in one place, toS3Error, never by matching messages.
import { CofferError, ErrorCode, isCofferError } from '../../src/errors.js';

/** S3 error codes used here and their HTTP statuses (from the S3 error-code list). */
export const S3_STATUS = Object.freeze({
  AccessDenied: 403,
  AuthorizationHeaderMalformed: 400,
  BadDigest: 400,
  BucketAlreadyOwnedByYou: 409,
  BucketNotEmpty: 409,
  EntityTooLarge: 400,
  EntityTooSmall: 400,
  IncompleteBody: 400,
  InternalError: 500,
  InvalidAccessKeyId: 403,
  InvalidArgument: 400,
  InvalidBucketName: 400,
  InvalidDigest: 400,
  InvalidPart: 400,
  InvalidPartOrder: 400,
  InvalidRange: 416,
  InvalidRequest: 400,
  KeyTooLongError: 400,
  MalformedXML: 400,
  MetadataTooLarge: 400,
  MethodNotAllowed: 405,
  MissingContentLength: 411,
  NoSuchBucket: 404,
  NoSuchKey: 404,
  NoSuchUpload: 404,
  NoSuchVersion: 404,
  NotImplemented: 501,
  NotModified: 304,
  PreconditionFailed: 412,
  RequestTimeTooSkewed: 403,
  ServiceUnavailable: 503,
  SignatureDoesNotMatch: 403,
  XAmzContentSHA256Mismatch: 400,
} as const);

export type S3Code = keyof typeof S3_STATUS;

export class S3Error extends Error {
  readonly status: number;
  constructor(readonly code: S3Code, message: string, readonly extra: Record<string, string> = {}) {
    super(message);
    this.name = 'S3Error';
    this.status = S3_STATUS[code];
  }
}

/** What a vault error means to an S3 client; `notFound` says which 404 (NoSuchKey, NoSuchBucket, NoSuchUpload). */
const FROM_COFFER: Partial<Record<ErrorCode, S3Code>> = {
  [ErrorCode.PERMISSION_DENIED]: 'AccessDenied',
  [ErrorCode.UNAUTHENTICATED]: 'AccessDenied',
  [ErrorCode.INVALID_PATH]: 'InvalidArgument',
  [ErrorCode.INVALID_ARGUMENT]: 'InvalidArgument',
  [ErrorCode.RANGE_NOT_SATISFIABLE]: 'InvalidRange',
  [ErrorCode.PAYLOAD_TOO_LARGE]: 'EntityTooLarge',
  [ErrorCode.UNAVAILABLE]: 'ServiceUnavailable',
  [ErrorCode.TIMEOUT]: 'ServiceUnavailable',
  [ErrorCode.NO_SPACE]: 'ServiceUnavailable',
  [ErrorCode.PRECONDITION_FAILED]: 'PreconditionFailed',
};

/** Any thrown value as an S3Error (unknown failures are InternalError with no detail leaked). */
export function toS3Error(e: unknown, notFound: 'NoSuchKey' | 'NoSuchBucket' | 'NoSuchUpload' = 'NoSuchKey'): S3Error {
  // an S3 refusal raised inside a request body (a bad digest or chunk signature) may come back wrapped by the
  // upload that was reading it: the refusal is the answer
  for (let c: unknown = e, depth = 0; c instanceof Error && depth < 8; c = c.cause, depth++) if (c instanceof S3Error) return c;
  if (isCofferError(e)) {
    if (e.code === ErrorCode.NOT_FOUND || e.code === ErrorCode.NOT_A_DIRECTORY || e.code === ErrorCode.IS_A_DIRECTORY) {
      return new S3Error(notFound, notFoundMessage(notFound));
    }
    const code = FROM_COFFER[e.code];
    if (code) return new S3Error(code, e.message);
    return new S3Error('InternalError', `internal error (${e.code})`);
  }
  return new S3Error('InternalError', 'internal error');
}

function notFoundMessage(code: 'NoSuchKey' | 'NoSuchBucket' | 'NoSuchUpload'): string {
  if (code === 'NoSuchBucket') return 'The specified bucket does not exist';
  if (code === 'NoSuchUpload') return 'The specified multipart upload does not exist';
  return 'The specified key does not exist.';
}

/** True for the vault's "nothing there" errors. */
export function isNotFound(e: unknown): boolean {
  return e instanceof CofferError && (e.code === ErrorCode.NOT_FOUND || e.code === ErrorCode.NOT_A_DIRECTORY);
}
