// Maps MongoDB driver errors to CofferError by class, server code and error label (never by message text):
// duplicate key → ALREADY_EXISTS; network, server selection, failover and timeouts → METADATA retryable;
// everything else → METADATA (permanent).
import {
  MongoError, MongoNetworkError, MongoNotConnectedError, MongoOperationTimeoutError, MongoServerError,
  MongoServerSelectionError, MongoStalePrimaryError, MongoTopologyClosedError, MongoWriteConcernError,
} from 'mongodb';
import { CofferError, ErrorCode } from '../../errors.js';

/** Server codes for a primary stepping down, shutting down, or a host being unreachable: worth a retry. */
const TRANSIENT_CODES = new Set([
  6, // HostUnreachable
  7, // HostNotFound
  89, // NetworkTimeout
  91, // ShutdownInProgress
  112, // WriteConflict
  189, // PrimarySteppedDown
  262, // ExceededTimeLimit
  9001, // SocketException
  10107, // NotWritablePrimary
  11600, // InterruptedAtShutdown
  11602, // InterruptedDueToReplStateChange
  13435, // NotPrimaryNoSecondaryOk
  13436, // NotPrimaryOrSecondary
]);

/** True for a unique-index violation (E11000). */
export function isDuplicateKey(e: unknown): boolean {
  return e instanceof MongoServerError && (e.code === 11000 || e.code === 11001);
}

function isTransient(e: MongoError): boolean {
  if (
    e instanceof MongoNetworkError ||
    e instanceof MongoServerSelectionError ||
    e instanceof MongoNotConnectedError ||
    e instanceof MongoOperationTimeoutError ||
    e instanceof MongoStalePrimaryError
  ) {
    return true;
  }
  if (e.hasErrorLabel('RetryableWriteError') || e.hasErrorLabel('TransientTransactionError')) return true;
  if (e instanceof MongoWriteConcernError) return true;
  return typeof e.code === 'number' && TRANSIENT_CODES.has(e.code);
}

/** Converts anything a driver call threw into a CofferError describing `what` failed. */
export function mongoError(e: unknown, what: string): CofferError {
  if (e instanceof CofferError) return e;
  if (isDuplicateKey(e)) return new CofferError(ErrorCode.ALREADY_EXISTS, `${what}: already exists`, { cause: e });
  if (e instanceof MongoTopologyClosedError) {
    return new CofferError(ErrorCode.METADATA, `${what}: the metadata store is closed`, { cause: e });
  }
  if (e instanceof MongoError) {
    const code = e.code === undefined ? '' : ` (code ${String(e.code)})`;
    return new CofferError(ErrorCode.METADATA, `${what}: ${e.message}${code}`, { cause: e, retryable: isTransient(e) });
  }
  const msg = e instanceof Error ? e.message : String(e);
  return new CofferError(ErrorCode.METADATA, `${what}: ${msg}`, { cause: e });
}
