// Maps better-sqlite3 errors to CofferError codes by SQLite's extended result code (never by message text):
// uniqueness → ALREADY_EXISTS, lock contention → METADATA retryable, disk full → NO_SPACE, the rest → METADATA.
import Database from 'better-sqlite3';
import { CofferError, ErrorCode } from '../../errors.js';

const RETRYABLE = /^SQLITE_(BUSY|LOCKED)(_|$)/;

/** Converts anything a SQLite call threw into a CofferError describing `what` failed. */
export function sqliteError(e: unknown, what: string): CofferError {
  if (e instanceof CofferError) return e;
  if (e instanceof Database.SqliteError) {
    const code = e.code;
    if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
      return new CofferError(ErrorCode.ALREADY_EXISTS, `${what}: already exists`, { cause: e });
    }
    if (code === 'SQLITE_CONSTRAINT_CHECK' || code === 'SQLITE_CONSTRAINT_NOTNULL' || code === 'SQLITE_MISMATCH') {
      return new CofferError(ErrorCode.INVALID_ARGUMENT, `${what}: invalid record (${e.message})`, { cause: e });
    }
    if (code === 'SQLITE_FULL') return new CofferError(ErrorCode.NO_SPACE, `${what}: disk full`, { cause: e });
    return new CofferError(ErrorCode.METADATA, `${what}: ${e.message} (${code})`, { cause: e, retryable: RETRYABLE.test(code) });
  }
  if (e instanceof TypeError || e instanceof RangeError) {
    // better-sqlite3 raises these for values it cannot bind (undefined, objects, bigint out of range)
    return new CofferError(ErrorCode.INVALID_ARGUMENT, `${what}: ${e.message}`, { cause: e });
  }
  const msg = e instanceof Error ? e.message : String(e);
  return new CofferError(ErrorCode.METADATA, `${what}: ${msg}`, { cause: e });
}
