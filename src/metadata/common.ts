// Checks and helpers both metadata adapters share, so SQLite and MongoDB accept and refuse exactly the same
// inputs (fail closed: an unknown patch field or an out-of-range limit is INVALID_ARGUMENT, never ignored).
import { isDeepStrictEqual } from 'node:util';
import { CofferError, ErrorCode } from '../errors.js';
import type { BlobRecord, BlobState, Page, TreeNode } from './types.js';

export const DEFAULT_PAGE_LIMIT = 1000;
export const MAX_PAGE_LIMIT = 10_000;

/** Validates a page limit (1..10000, default 1000). Throws INVALID_ARGUMENT. */
export function pageLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_PAGE_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_LIMIT) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `page limit must be an integer in 1..${MAX_PAGE_LIMIT}, got ${limit}`);
  }
  return limit;
}

/** Validates a positive count limit for listBlobsByState / listAudit. Throws INVALID_ARGUMENT. */
export function countLimit(limit: number): number {
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_LIMIT) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `limit must be an integer in 1..${MAX_PAGE_LIMIT}, got ${limit}`);
  }
  return limit;
}

/** Turns `limit + 1` fetched rows into a page whose cursor is the key of its last item. */
export function toPage<T>(rows: T[], limit: number, keyOf: (item: T) => string): Page<T> {
  if (rows.length <= limit) return { items: rows, next: null };
  const items = rows.slice(0, limit);
  return { items, next: keyOf(items[items.length - 1] as T) };
}

const NODE_PATCH_KEYS = new Set(['parentId', 'name', 'blobId', 'size', 'owner', 'mac']);
const BLOB_PATCH_KEYS = new Set(['state', 'size', 'chunkCount', 'chunkSha256', 'keyRecord', 'keyGeneration', 'attrs', 'mac']);
const BLOB_STATES: ReadonlySet<string> = new Set<BlobState>(['uploading', 'committed', 'deleting']);

/** Drops undefined values and refuses unknown keys. Throws INVALID_ARGUMENT. */
function cleanPatch<T extends object>(patch: T, allowed: Set<string>, what: string): Partial<T> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(patch)) {
    if (!allowed.has(k)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `${what} patch: field ${k} cannot be changed`);
    if (v !== undefined) out[k] = v;
  }
  return out as Partial<T>;
}

export type NodePatch = Partial<Pick<TreeNode, 'parentId' | 'name' | 'blobId' | 'size' | 'owner' | 'mac'>>;
export type BlobPatch = Partial<
  Pick<BlobRecord, 'state' | 'size' | 'chunkCount' | 'chunkSha256' | 'keyRecord' | 'keyGeneration' | 'attrs' | 'mac'>
>;

/** Throws INVALID_ARGUMENT for unknown fields or a bad state; returns the patch without undefined values. */
export function checkNodePatch(patch: NodePatch): NodePatch {
  const p = cleanPatch(patch, NODE_PATCH_KEYS, 'node');
  if (p.name !== undefined && (typeof p.name !== 'string' || p.name === '')) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'node patch: name must be a non-empty string');
  }
  checkMac(p.mac);
  return p;
}

/** A blob's state only moves forward: uploading → committed → deleting (uploading → deleting too). */
const STATE_RANK: Readonly<Record<BlobState, number>> = { uploading: 0, committed: 1, deleting: 2 };

/**
 * Throws INVALID_ARGUMENT for unknown fields, a bad state, or a backward transition from `fromState`;
 * returns the patch without undefined values.
 */
export function checkBlobPatch(fromState: BlobState, patch: BlobPatch): BlobPatch {
  checkBlobState(fromState);
  const p = cleanPatch(patch, BLOB_PATCH_KEYS, 'blob');
  checkMac(p.mac);
  if (p.state !== undefined && STATE_RANK[checkBlobState(p.state)] < STATE_RANK[fromState]) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `blob state cannot go back from ${fromState} to ${p.state}`);
  }
  return p;
}

/** The longest MAC a store keeps: room for a later format's longer tag; MACs are opaque otherwise. */
export const MAX_MAC_LENGTH = 256;

/** Throws INVALID_ARGUMENT unless `mac` is undefined, null or a printable ASCII string of at most MAX_MAC_LENGTH. */
export function checkMac(mac: unknown): void {
  if (mac === undefined || mac === null) return;
  if (typeof mac !== 'string' || mac.length === 0 || mac.length > MAX_MAC_LENGTH || !/^[!-~]+$/.test(mac)) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `a record MAC must be 1..${MAX_MAC_LENGTH} printable ASCII characters`);
  }
}

/** `{ mac }` when a record carries one, `{}` otherwise (records without a MAC have no `mac` key). */
export function macField(mac: string | null | undefined): { mac?: string } {
  return typeof mac === 'string' ? { mac } : {};
}

/** Throws INVALID_ARGUMENT for unknown fields or wrong types; returns the patch without undefined values. */
export function checkUserPatch(patch: { disabled?: boolean; mac?: string | null }): { disabled?: boolean; mac?: string | null } {
  const p = cleanPatch(patch, USER_PATCH_KEYS, 'user');
  if (p.disabled !== undefined && typeof p.disabled !== 'boolean') throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'user patch: disabled must be a boolean');
  checkMac(p.mac);
  return p;
}
const USER_PATCH_KEYS = new Set(['disabled', 'mac']);

/** ensureUser's options: the creation date to record (default now). Throws INVALID_ARGUMENT for unknown keys or an invalid date. */
export function checkUserCreatedAt(options: { createdAt?: Date }): Date {
  if (typeof options !== 'object' || options === null) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'ensureUser: options must be an object');
  for (const k of Object.keys(options)) if (k !== 'createdAt') throw new CofferError(ErrorCode.INVALID_ARGUMENT, `ensureUser: unknown option ${k}`);
  const o = options;
  if (o.createdAt === undefined) return new Date();
  if (!(o.createdAt instanceof Date) || Number.isNaN(o.createdAt.getTime())) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'ensureUser: createdAt must be a valid Date');
  return o.createdAt;
}

/** Throws INVALID_ARGUMENT unless `state` is a BlobState. */
export function checkBlobState(state: string): BlobState {
  if (!BLOB_STATES.has(state)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `unknown blob state ${state}`);
  return state as BlobState;
}

/**
 * Decides what a failed compare-and-set on a blob's state means. The CAS missed, so the blob is absent
 * (NOT_FOUND) or in another state. If that state is the patch's target and every other patched field already
 * holds the patched value, the same transition already happened (a retry after a timeout): return the
 * current record. Anything else is UPLOAD_STATE.
 */
export function resolveBlobCasMiss(id: string, fromState: BlobState, patch: BlobPatch, current: BlobRecord | null, strict = false): BlobRecord {
  if (current === null) throw new CofferError(ErrorCode.NOT_FOUND, `blob ${id} not found`);
  const alreadyApplied =
    !strict &&
    patch.state !== undefined &&
    patch.state !== fromState &&
    current.state === patch.state &&
    Object.entries(patch).every(([k, v]) => isDeepStrictEqual(current[k as keyof BlobRecord], v));
  if (alreadyApplied) return current;
  throw new CofferError(ErrorCode.UPLOAD_STATE, `blob ${id} is ${current.state}, not ${fromState}`, {
    details: { blobId: id, state: current.state, expected: fromState },
  });
}

/** NOT_FOUND or CONFLICT for a node whose compare-and-set update missed. */
export function nodeCasMiss(id: string, expectedVersion: number, current: TreeNode | null): CofferError {
  if (current === null) return new CofferError(ErrorCode.NOT_FOUND, `node ${id} not found`);
  return new CofferError(ErrorCode.CONFLICT, `node ${id} is at version ${current.version}, not ${expectedVersion}`, {
    details: { nodeId: id, version: current.version, expected: expectedVersion },
  });
}

/** Throws INVALID_ARGUMENT unless `v` is a non-negative safe integer. */
export function checkVersion(v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `bad version ${v}`);
  return v;
}

/** The most records one insertBlobs / insertNodes call takes. */
export const MAX_BATCH = 10_000;

/** Throws INVALID_ARGUMENT unless `items` is an array of at most MAX_BATCH records. */
export function checkBatch(items: unknown): void {
  if (!Array.isArray(items) || items.length > MAX_BATCH) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `a batch is an array of at most ${MAX_BATCH} records`);
  }
}

/**
 * Throws INVALID_ARGUMENT unless `keys` is an array of at most MAX_BATCH strings (getChildren, getBlobs).
 * Returns them without repeats, in first-seen order: what the adapter looks up.
 */
export function distinctKeys(keys: readonly string[]): string[] {
  if (!Array.isArray(keys) || keys.length > MAX_BATCH || keys.some((k) => typeof k !== 'string')) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `a look-up names an array of at most ${MAX_BATCH} strings`);
  }
  return [...new Set(keys)];
}

/** Each key's record from `found` (by `keyOf`), or null, in the order of `keys`: a batch look-up's answer. */
export function inKeyOrder<T>(keys: readonly string[], found: readonly T[], keyOf: (r: T) => string): Array<T | null> {
  const by = new Map<string, T>();
  for (const r of found) by.set(keyOf(r), r);
  const given = new Set<T>();
  return keys.map((k) => {
    const r = by.get(k);
    if (r === undefined) return null;
    if (given.has(r)) return structuredClone(r); // a key asked twice: its own copy, as two single look-ups give
    given.add(r);
    return r;
  });
}

/** Runs a record's own checks, returning the error instead of throwing it (a batch fails one record alone). */
export function checked(check: () => void): CofferError | null {
  try {
    check();
    return null;
  } catch (e) {
    if (e instanceof CofferError) return e;
    throw e;
  }
}
