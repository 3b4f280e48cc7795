// Maps Node filesystem errors (errno codes) to CofferError codes for the filesystem chunk store, in one
// table, so that "disk full" is NO_SPACE everywhere and transient faults are marked retryable.
import { CofferError, ErrorCode } from '../../src/errors.js';

/** errno codes that mean "the device (or this process's share of it) is full". */
const NO_SPACE_ERRNOS = new Set([
  'ENOSPC', // no space left on device
  'EDQUOT', // disk quota exceeded
  'EFBIG', // file too large for the filesystem or for RLIMIT_FSIZE: the same remedy, free or grant space
]);

/** errno codes that a retry of the same operation may not see again. */
const TRANSIENT_ERRNOS = new Set(['EIO', 'EAGAIN', 'EBUSY', 'EINTR', 'ETIMEDOUT', 'ESTALE', 'EMFILE', 'ENFILE', 'ENOMEM']);

export function errnoOf(e: unknown): string | undefined {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Converts anything a filesystem call threw into a CofferError describing `what` was being done.
 * CofferErrors pass through unchanged. ENOSPC/EDQUOT/EFBIG → NO_SPACE; ELOOP (a symlink met with
 * O_NOFOLLOW) → PATH_OUTSIDE_ROOT; transient errnos → INTERNAL, retryable; everything else → INTERNAL.
 */
export function fsError(e: unknown, what: string, root: string): CofferError {
  if (e instanceof CofferError) return e;
  const errno = errnoOf(e);
  const message = e instanceof Error ? e.message : String(e);
  if (errno !== undefined && NO_SPACE_ERRNOS.has(errno)) {
    return new CofferError(
      ErrorCode.NO_SPACE,
      `no space left for the chunk store at ${root} (${errno}) while ${what}; free space or raise the quota, nothing partial was kept`,
      { cause: e, details: { errno, root } },
    );
  }
  if (errno === 'ELOOP') {
    return new CofferError(ErrorCode.PATH_OUTSIDE_ROOT, `refused a symbolic link inside the chunk store at ${root} while ${what}`, {
      cause: e,
      details: { errno, root },
    });
  }
  return new CofferError(ErrorCode.INTERNAL, `chunk store at ${root}: ${what} failed: ${message}`, {
    cause: e,
    retryable: errno !== undefined && TRANSIENT_ERRNOS.has(errno),
    details: errno === undefined ? { root } : { errno, root },
  });
}
