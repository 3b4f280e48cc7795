// Names from the storage service become local file names (`get` into a directory, `get -r`). The service is
// untrusted (DESIGN.md): a name like "..", "../../etc/x" or "a/b" would write outside the destination. Such a
// name is refused as damage, exactly like a forged chunk, before anything touches the disk.
import { CofferError, ErrorCode, isCofferError } from '../errors.js';
import { checkName } from '../vault/paths.js';

/** `name` if it is one safe path segment (what the vault itself allows); throws INTEGRITY otherwise. */
export function localName(name: unknown): string {
  try {
    if (typeof name !== 'string') throw new CofferError(ErrorCode.INVALID_PATH, 'not a string');
    checkName(name);
    return name;
  } catch (e) {
    if (!isCofferError(e, ErrorCode.INVALID_PATH)) throw e;
    throw new CofferError(ErrorCode.INTEGRITY, `the storage service named a file ${JSON.stringify(name)}, which is not a safe local file name (${e.message}); nothing was written`);
  }
}
