// How the `coffer` command reports a failure: one line on stderr (`coffer: <message> [CODE]`), or with --json
// one JSON object `{"error":{"code","message"}}`, and the exit status from exitCodeOf (src/errors.ts). A
// problem with a local file (ENOENT, EACCES…) gets its proper code and names the file, never INTERNAL.
import { CofferError, ErrorCode, EXIT_STATUSES, toCofferError } from '../errors.js';

/** errno codes of local file operations and the stable code each one means. */
const LOCAL_FILE_CODES: Readonly<Record<string, { code: ErrorCode; says: string }>> = Object.freeze({
  ENOENT: { code: ErrorCode.NOT_FOUND, says: 'no such file or directory' },
  EACCES: { code: ErrorCode.PERMISSION_DENIED, says: 'permission denied' },
  EPERM: { code: ErrorCode.PERMISSION_DENIED, says: 'operation not permitted' },
  EROFS: { code: ErrorCode.PERMISSION_DENIED, says: 'read-only filesystem' },
  EISDIR: { code: ErrorCode.IS_A_DIRECTORY, says: 'is a directory' },
  ENOTDIR: { code: ErrorCode.NOT_A_DIRECTORY, says: 'a parent is not a directory' },
  EEXIST: { code: ErrorCode.ALREADY_EXISTS, says: 'already exists' },
  ENAMETOOLONG: { code: ErrorCode.INVALID_ARGUMENT, says: 'name too long' },
  ELOOP: { code: ErrorCode.INVALID_ARGUMENT, says: 'too many symbolic links' },
  EMFILE: { code: ErrorCode.UNAVAILABLE, says: 'too many open files' },
});

/** The CofferError for anything a command threw; errno errors of local files keep their meaning. */
export function cliError(e: unknown): CofferError {
  if (e instanceof CofferError) return e;
  const err = e as NodeJS.ErrnoException | undefined;
  const local = err?.code === undefined ? undefined : LOCAL_FILE_CODES[err.code];
  if (local && err) {
    const file = err.path === undefined ? '' : ` ${err.path}`;
    const what = err.syscall ? `cannot ${err.syscall}${file}` : `local file${file}`;
    return new CofferError(local.code, `${what}: ${local.says}`, { cause: e });
  }
  if (err?.code === 'ENOSPC' || err?.code === 'EDQUOT') {
    return new CofferError(ErrorCode.NO_SPACE, `no space left on this machine's disk${err.path ? ` (writing ${err.path})` : ''}`, { cause: e });
  }
  return toCofferError(e);
}

/** True when the command line asks for JSON output (then errors are JSON too). */
export function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json');
}

/** Writes the failure to stderr in the form the command line asked for. */
export function writeError(code: ErrorCode, message: string, json: boolean): void {
  const line = message.replace(/\s*\n\s*/g, ' ').trim();
  process.stderr.write(json ? `${JSON.stringify({ error: { code, message: line } })}\n` : `coffer: ${line} [${code}]\n`);
}

/** The exit-status table for `coffer --help`. */
export function exitStatusHelp(): string {
  return ['', 'Exit status:', ...EXIT_STATUSES.map((e) => `  ${String(e.status).padStart(3)}  ${e.meaning}`),
    'With --json, a failure is one JSON object on stderr: {"error":{"code":"…","message":"…"}}.'].join('\n');
}
