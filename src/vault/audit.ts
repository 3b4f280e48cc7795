// The audit log: an append-only hash chain over every state change of the vault (docs/vault.md "Audit").
// hash(entry) = SHA-256( "coffer-audit-v1\n" ‖ canonical JSON of
//   { action, actor, at, details, prevHash, seq, target } )
// where canonical JSON = JSON with object keys sorted by UTF-16 code unit order, no whitespace, `at` as an
// ISO-8601 string with milliseconds (UTC). The first entry has seq 1 and prevHash = 64 zeros.
// This detects an edited, removed (seq gap) or reordered entry inside the chain; a truncated tail needs an
// external anchor (record the head hash somewhere the host cannot edit).
import { createHash } from 'node:crypto';
import { CofferError, ErrorCode, isCofferError } from '../errors.js';
import type { AuditEntry, MetadataStore } from '../metadata/types.js';

export const GENESIS_HASH = '0'.repeat(64);
const DOMAIN = 'coffer-audit-v1\n';
const MAX_APPEND_ATTEMPTS = 100;

/** JSON with sorted keys. Throws INVALID_ARGUMENT on values JSON cannot represent exactly (undefined, NaN, functions…). */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'audit details: non-finite number');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const keys = Object.keys(value).sort();
    const obj = value as Record<string, unknown>;
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
  }
  throw new CofferError(ErrorCode.INVALID_ARGUMENT, `audit details: ${typeof value} is not canonical JSON`);
}

/** The hash of an entry (every field but `hash` itself). */
export function auditHash(entry: Omit<AuditEntry, 'hash'>): string {
  const body = canonicalJson({
    action: entry.action,
    actor: entry.actor,
    at: entry.at.toISOString(),
    details: entry.details,
    prevHash: entry.prevHash,
    seq: entry.seq,
    target: entry.target,
  });
  return createHash('sha256').update(DOMAIN).update(body, 'utf8').digest('hex');
}

export interface AuditEvent {
  actor: string;
  action: string;
  target: string;
  details?: Record<string, unknown>;
}

/**
 * Appends one entry at the end of the chain: read the head, build seq+1, append; another writer winning the
 * same seq (ALREADY_EXISTS) means re-read and retry. Throws METADATA errors from the store, or CONFLICT after
 * too many lost races.
 */
export async function appendAudit(store: MetadataStore, event: AuditEvent, now: () => Date = () => new Date()): Promise<AuditEntry> {
  const details = event.details ?? {};
  canonicalJson(details); // fail before touching the store
  for (let attempt = 0; attempt < MAX_APPEND_ATTEMPTS; attempt++) {
    const last = await store.lastAudit();
    const base = {
      seq: (last?.seq ?? 0) + 1,
      at: new Date(Math.floor(now().getTime())),
      actor: event.actor,
      action: event.action,
      target: event.target,
      details,
      prevHash: last?.hash ?? GENESIS_HASH,
    };
    const entry: AuditEntry = { ...base, hash: auditHash(base) };
    try {
      await store.appendAudit(entry);
      return entry;
    } catch (e) {
      if (!isCofferError(e, ErrorCode.ALREADY_EXISTS)) throw e;
      await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, 2 ** attempt)));
    }
  }
  throw new CofferError(ErrorCode.CONFLICT, 'audit log: too many concurrent appends', { retryable: true });
}

export type AuditVerification =
  | { ok: true; count: number; head: { seq: number; hash: string } }
  | { ok: false; count: number; brokenAt: number; reason: string; head: { seq: number; hash: string } };

/**
 * Streams the whole log and checks the chain: seq 1, 2, 3… without gaps, each prevHash equal to the previous
 * entry's hash, each hash recomputed. Reports the first broken seq (never throws for a broken chain; throws
 * only store errors). `head` is the last entry verified good.
 */
export async function verifyAuditChain(store: MetadataStore, pageSize = 1000): Promise<AuditVerification> {
  let prev = { seq: 0, hash: GENESIS_HASH };
  let count = 0;
  for (;;) {
    const page = await store.listAudit(prev.seq, pageSize);
    if (page.length === 0) return { ok: true, count, head: prev };
    for (const e of page) {
      const fail = (reason: string): AuditVerification => ({ ok: false, count, brokenAt: e.seq, reason, head: prev });
      if (e.seq !== prev.seq + 1) return { ok: false, count, brokenAt: prev.seq + 1, reason: `entry ${prev.seq + 1} is missing (next is ${e.seq})`, head: prev };
      if (e.prevHash !== prev.hash) return fail(`entry ${e.seq}: prevHash does not match entry ${prev.seq}`);
      let recomputed: string;
      try {
        recomputed = auditHash(e);
      } catch (_err) {
        return fail(`entry ${e.seq}: details are not canonical JSON`);
      }
      if (recomputed !== e.hash) return fail(`entry ${e.seq}: hash does not match its content`);
      prev = { seq: e.seq, hash: e.hash };
      count++;
    }
  }
}

/** The head of the chain (seq 0 and 64 zeros when empty): the value to anchor externally. */
export async function auditHead(store: MetadataStore): Promise<{ seq: number; hash: string }> {
  const last = await store.lastAudit();
  return last ? { seq: last.seq, hash: last.hash } : { seq: 0, hash: GENESIS_HASH };
}
