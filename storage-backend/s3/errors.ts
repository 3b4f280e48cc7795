// Maps what the AWS SDK throws to CofferError, by error name and HTTP status (never by message text). The SDK
// has already retried transient failures (5xx, throttling, dropped connections) with backoff by the time an
// error reaches here, so a transient one is reported as UNAVAILABLE with `retryable` and the attempt count.
import { CofferError, ErrorCode } from '../../src/errors.js';

interface SdkError {
  name?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number; attempts?: number };
  $retryable?: unknown;
  message?: string;
}

const NOT_FOUND = new Set(['NoSuchKey', 'NotFound', 'NoSuchUpload']);
const NO_SPACE = new Set(['QuotaExceeded', 'EntityTooLarge', 'XMinioStorageFull', 'InsufficientStorage']);
const DENIED = new Set(['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken', 'AllAccessDisabled']);
const NETWORK = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'TimeoutError', 'RequestTimeout', 'AbortError']);

export function isNotFound(e: unknown): boolean {
  const err = e as SdkError;
  return NOT_FOUND.has(err?.name ?? '') || err?.$metadata?.httpStatusCode === 404;
}

/** `what`: the operation and key, for the message. `where`: endpoint/bucket. */
export function s3Error(e: unknown, what: string, where: string): CofferError {
  if (e instanceof CofferError) return e;
  const err = (e ?? {}) as SdkError;
  const name = err.name ?? err.code ?? 'Error';
  const status = err.$metadata?.httpStatusCode;
  const attempts = err.$metadata?.attempts;
  const tried = attempts && attempts > 1 ? ` after ${attempts} attempts` : '';
  const detail = `${name}${status ? ` (HTTP ${status})` : ''}: ${err.message ?? String(e)}`;
  if (isNotFound(e)) return new CofferError(ErrorCode.NOT_FOUND, `${what}: not found in ${where}`, { cause: e });
  if (name === 'InvalidRange' || status === 416) return new CofferError(ErrorCode.RANGE_NOT_SATISFIABLE, `${what}: range not satisfiable`, { cause: e });
  if (NO_SPACE.has(name) || status === 507) return new CofferError(ErrorCode.NO_SPACE, `${what}: ${where} refused the object for lack of space or quota (${detail}); nothing partial was kept`, { cause: e });
  if (name === 'NoSuchBucket') return new CofferError(ErrorCode.UNAVAILABLE, `${what}: ${where}: the bucket does not exist`, { cause: e });
  if (DENIED.has(name) || status === 403) return new CofferError(ErrorCode.UNAVAILABLE, `${what}: ${where} refused the credentials (${detail}); check the AWS settings`, { cause: e });
  const transient = (status !== undefined && status >= 500) || name === 'SlowDown' || name === 'Throttling' || NETWORK.has(name) || NETWORK.has(err.code ?? '') || status === undefined;
  if (transient) {
    return new CofferError(ErrorCode.UNAVAILABLE, `${what}: ${where} failed${tried} (${detail})`, { cause: e, retryable: true });
  }
  return new CofferError(ErrorCode.INTERNAL, `${what}: ${where} answered ${detail}`, { cause: e });
}
