// The one error root of Coffer. Every error a caller may act on is a CofferError with a stable code from
// ErrorCode; HTTP status and CLI exit status come from lookup tables here, never from string matching.

/** Stable error codes. Never renumber or rename: scripts and clients match on them. */
export const ErrorCode = Object.freeze({
  // generic
  INTERNAL: 'INTERNAL',
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  NOT_FOUND: 'NOT_FOUND',
  ALREADY_EXISTS: 'ALREADY_EXISTS',
  CONFLICT: 'CONFLICT',
  PRECONDITION_FAILED: 'PRECONDITION_FAILED',
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  PERMISSION_DENIED: 'PERMISSION_DENIED',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  HEADERS_TOO_LARGE: 'HEADERS_TOO_LARGE',
  TIMEOUT: 'TIMEOUT',
  UNAVAILABLE: 'UNAVAILABLE',
  RANGE_NOT_SATISFIABLE: 'RANGE_NOT_SATISFIABLE',
  // tree
  NOT_A_DIRECTORY: 'NOT_A_DIRECTORY',
  IS_A_DIRECTORY: 'IS_A_DIRECTORY',
  DIRECTORY_NOT_EMPTY: 'DIRECTORY_NOT_EMPTY',
  INVALID_PATH: 'INVALID_PATH',
  // chunks and storage
  CHUNK_FORMAT: 'CHUNK_FORMAT',
  CHUNK_AUTH_FAILED: 'CHUNK_AUTH_FAILED',
  CHUNK_MISMATCH: 'CHUNK_MISMATCH',
  CHUNK_MISSING: 'CHUNK_MISSING',
  INTEGRITY: 'INTEGRITY',
  NO_SPACE: 'NO_SPACE',
  PATH_OUTSIDE_ROOT: 'PATH_OUTSIDE_ROOT',
  UPLOAD_INCOMPLETE: 'UPLOAD_INCOMPLETE',
  UPLOAD_STATE: 'UPLOAD_STATE',
  // metadata and migrations
  SCHEMA_TOO_NEW: 'SCHEMA_TOO_NEW',
  METADATA: 'METADATA',
  AUDIT_CHAIN_BROKEN: 'AUDIT_CHAIN_BROKEN',
  // keys and attestation
  KEY_INVALID: 'KEY_INVALID',
  KMS: 'KMS',
  KMS_ACCESS_DENIED: 'KMS_ACCESS_DENIED',
  ATTESTATION_FORMAT: 'ATTESTATION_FORMAT',
  ATTESTATION_INVALID: 'ATTESTATION_INVALID',
  ATTESTATION_POLICY: 'ATTESTATION_POLICY',
  CMS: 'CMS',
  // network manager
  NETWORK: 'NETWORK',
} as const);

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** HTTP status for each code (api/ uses this table; nothing else decides statuses). */
export const httpStatusOf: Readonly<Record<ErrorCode, number>> = Object.freeze({
  INTERNAL: 500,
  INVALID_ARGUMENT: 400,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  CONFLICT: 409,
  PRECONDITION_FAILED: 412,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  PAYLOAD_TOO_LARGE: 413,
  HEADERS_TOO_LARGE: 431,
  TIMEOUT: 408,
  UNAVAILABLE: 503,
  RANGE_NOT_SATISFIABLE: 416,
  NOT_A_DIRECTORY: 409,
  IS_A_DIRECTORY: 409,
  DIRECTORY_NOT_EMPTY: 409,
  INVALID_PATH: 400,
  CHUNK_FORMAT: 400,
  CHUNK_AUTH_FAILED: 422,
  CHUNK_MISMATCH: 422,
  CHUNK_MISSING: 409,
  INTEGRITY: 500,
  NO_SPACE: 507,
  PATH_OUTSIDE_ROOT: 400,
  UPLOAD_INCOMPLETE: 409,
  UPLOAD_STATE: 409,
  SCHEMA_TOO_NEW: 503,
  METADATA: 500,
  AUDIT_CHAIN_BROKEN: 500,
  KEY_INVALID: 400,
  KMS: 502,
  KMS_ACCESS_DENIED: 403,
  ATTESTATION_FORMAT: 400,
  ATTESTATION_INVALID: 403,
  ATTESTATION_POLICY: 403,
  CMS: 400,
  NETWORK: 500,
});

/** CLI exit status for each code: 1 generic, 2 usage, 3 not found, 4 conflict, 5 auth, 6 integrity, 7 unavailable. */
export const exitCodeOf: Readonly<Record<ErrorCode, number>> = Object.freeze({
  INTERNAL: 1,
  INVALID_ARGUMENT: 2,
  NOT_FOUND: 3,
  ALREADY_EXISTS: 4,
  CONFLICT: 4,
  PRECONDITION_FAILED: 4,
  UNAUTHENTICATED: 5,
  PERMISSION_DENIED: 5,
  PAYLOAD_TOO_LARGE: 2,
  HEADERS_TOO_LARGE: 2,
  TIMEOUT: 7,
  UNAVAILABLE: 7,
  RANGE_NOT_SATISFIABLE: 2,
  NOT_A_DIRECTORY: 4,
  IS_A_DIRECTORY: 4,
  DIRECTORY_NOT_EMPTY: 4,
  INVALID_PATH: 2,
  CHUNK_FORMAT: 6,
  CHUNK_AUTH_FAILED: 6,
  CHUNK_MISMATCH: 6,
  CHUNK_MISSING: 6,
  INTEGRITY: 6,
  NO_SPACE: 1,
  PATH_OUTSIDE_ROOT: 2,
  UPLOAD_INCOMPLETE: 4,
  UPLOAD_STATE: 4,
  SCHEMA_TOO_NEW: 1,
  METADATA: 1,
  AUDIT_CHAIN_BROKEN: 6,
  KEY_INVALID: 2,
  KMS: 7,
  KMS_ACCESS_DENIED: 5,
  ATTESTATION_FORMAT: 6,
  ATTESTATION_INVALID: 6,
  ATTESTATION_POLICY: 5,
  CMS: 6,
  NETWORK: 1,
});

/**
 * What each CLI exit status means (README "Exit status", `coffer --help`): one table, so the documentation and
 * exitCodeOf cannot drift apart (test/e2e/cli-script.test.ts checks both against it).
 */
export const EXIT_STATUSES: ReadonlyArray<{ status: number; meaning: string }> = Object.freeze([
  { status: 0, meaning: 'success' },
  { status: 1, meaning: 'failure not covered below (INTERNAL, NO_SPACE, METADATA, SCHEMA_TOO_NEW, NETWORK)' },
  { status: 2, meaning: 'usage: bad flag, argument or path (INVALID_ARGUMENT, INVALID_PATH, KEY_INVALID, PAYLOAD_TOO_LARGE…)' },
  { status: 3, meaning: 'not found (NOT_FOUND), in the vault or on this machine' },
  { status: 4, meaning: 'conflict with the current state (ALREADY_EXISTS, IS_A_DIRECTORY, DIRECTORY_NOT_EMPTY, UPLOAD_STATE…)' },
  { status: 5, meaning: 'not allowed (UNAUTHENTICATED, PERMISSION_DENIED, KMS_ACCESS_DENIED, ATTESTATION_POLICY)' },
  { status: 6, meaning: 'integrity: data or log failed verification (CHUNK_AUTH_FAILED, INTEGRITY, AUDIT_CHAIN_BROKEN…)' },
  { status: 7, meaning: 'unavailable: service, KMS or network down or timed out; retrying later may work (UNAVAILABLE, TIMEOUT, KMS)' },
  { status: 130, meaning: 'interrupted (128 + signal number: 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP)' },
]);

export interface CofferErrorOptions {
  cause?: unknown;
  /** Safe to retry the same operation unchanged (transient I/O, network). */
  retryable?: boolean;
  /** Extra machine-readable facts (never secrets). */
  details?: Record<string, unknown>;
}

/** The root of every error Coffer raises on purpose. `code` is stable; `message` is for people. */
export class CofferError extends Error {
  override readonly name: string = 'CofferError';
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: CofferErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.details = options.details;
  }

  get httpStatus(): number {
    return httpStatusOf[this.code];
  }

  get exitCode(): number {
    return exitCodeOf[this.code];
  }
}

export function isCofferError(e: unknown, code?: ErrorCode): e is CofferError {
  return e instanceof CofferError && (code === undefined || e.code === code);
}

/** Wraps anything thrown into a CofferError (unknown errors become INTERNAL, keeping the cause). */
export function toCofferError(e: unknown): CofferError {
  if (e instanceof CofferError) return e;
  const err = e as NodeJS.ErrnoException | undefined;
  if (err?.code === 'ENOSPC' || err?.code === 'EDQUOT' || err?.code === 'EFBIG') {
    return new CofferError(ErrorCode.NO_SPACE, 'no space left on the storage device', { cause: e });
  }
  return new CofferError(ErrorCode.INTERNAL, err?.message ?? String(e), { cause: e });
}
