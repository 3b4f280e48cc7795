// Maps node:sqlite errors to CofferError codes by SQLite's extended result code (never by message text):
// uniqueness → ALREADY_EXISTS, lock contention → METADATA retryable, disk full → NO_SPACE, the rest → METADATA.
// node:sqlite throws an Error with code 'ERR_SQLITE_ERROR' and the numeric extended result code in `errcode`;
// the numbers are SQLite's stable C API constants (https://sqlite.org/rescode.html).
import { CofferError, ErrorCode } from '../../errors.js';

/** The result codes Coffer tells apart, by name; the primary code is the low 8 bits of an extended one. */
export const SQLITE_CODES = Object.freeze({
  SQLITE_BUSY: 5,
  SQLITE_LOCKED: 6,
  SQLITE_FULL: 13,
  SQLITE_CONSTRAINT: 19,
  SQLITE_MISMATCH: 20,
  SQLITE_CONSTRAINT_CHECK: 275,
  SQLITE_CONSTRAINT_NOTNULL: 1299,
  SQLITE_CONSTRAINT_PRIMARYKEY: 1555,
  SQLITE_CONSTRAINT_UNIQUE: 2067,
} as const);

const NAMES = new Map<number, string>(Object.entries(SQLITE_CODES).map(([name, n]) => [n, name]));

interface SqliteDriverError extends Error {
  code: 'ERR_SQLITE_ERROR';
  errcode: number;
  errstr: string;
}

function isSqliteError(e: unknown): e is SqliteDriverError {
  return e instanceof Error && (e as { code?: unknown }).code === 'ERR_SQLITE_ERROR' && typeof (e as { errcode?: unknown }).errcode === 'number';
}

/** "SQLITE_BUSY_SNAPSHOT"-style name of an extended result code where Coffer knows it, else its primary code's. */
function codeName(errcode: number): string {
  return NAMES.get(errcode) ?? `${NAMES.get(errcode & 0xff) ?? 'SQLITE_ERROR'}(${errcode})`;
}

/** Converts anything a SQLite call threw into a CofferError describing `what` failed. */
export function sqliteError(e: unknown, what: string): CofferError {
  if (e instanceof CofferError) return e;
  if (isSqliteError(e)) {
    const code = e.errcode;
    const primary = code & 0xff;
    if (code === SQLITE_CODES.SQLITE_CONSTRAINT_UNIQUE || code === SQLITE_CODES.SQLITE_CONSTRAINT_PRIMARYKEY) {
      return new CofferError(ErrorCode.ALREADY_EXISTS, `${what}: already exists`, { cause: e });
    }
    if (code === SQLITE_CODES.SQLITE_CONSTRAINT_CHECK || code === SQLITE_CODES.SQLITE_CONSTRAINT_NOTNULL || primary === SQLITE_CODES.SQLITE_MISMATCH) {
      return new CofferError(ErrorCode.INVALID_ARGUMENT, `${what}: invalid record (${e.message})`, { cause: e });
    }
    if (primary === SQLITE_CODES.SQLITE_FULL) return new CofferError(ErrorCode.NO_SPACE, `${what}: disk full`, { cause: e });
    const retryable = primary === SQLITE_CODES.SQLITE_BUSY || primary === SQLITE_CODES.SQLITE_LOCKED;
    return new CofferError(ErrorCode.METADATA, `${what}: ${e.message} (${codeName(code)})`, { cause: e, retryable });
  }
  if (e instanceof TypeError || e instanceof RangeError) {
    // node:sqlite raises these for values it cannot bind (undefined, objects, bigint out of range)
    return new CofferError(ErrorCode.INVALID_ARGUMENT, `${what}: ${e.message}`, { cause: e });
  }
  const msg = e instanceof Error ? e.message : String(e);
  return new CofferError(ErrorCode.METADATA, `${what}: ${msg}`, { cause: e });
}
