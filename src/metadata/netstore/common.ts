// Errors shared by the two NetRecordStore adapters: a missed compare-and-set is decided by a follow-up read.
import { CofferError, ErrorCode } from '../../errors.js';
import type { NetRecord } from './types.js';

export function notFound(kind: string, id: string): CofferError {
  return new CofferError(ErrorCode.NOT_FOUND, `${kind} ${id} does not exist`, { details: { kind, id } });
}

export function conflict(kind: string, id: string, now: NetRecord): CofferError {
  return new CofferError(ErrorCode.CONFLICT, `${kind} ${id} changed or is still referenced (version ${now.version}, ${now.refs} references)`, {
    details: { kind, id, version: now.version, refs: now.refs },
  });
}
