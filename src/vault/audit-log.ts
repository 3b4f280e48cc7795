// Reading the audit log for people (`coffer audit log`): every entry is checked against the chain as it is
// read (seq without gaps, prevHash = the previous hash, hash recomputed), from the first entry on, whatever
// the filter, so nothing shown was edited, removed or reordered inside the chain. A broken chain stops the
// listing at the first bad entry with AUDIT_CHAIN_BROKEN.
import { CofferError, ErrorCode } from '../errors.js';
import type { AuditEntry, MetadataStore } from '../metadata/types.js';
import { GENESIS_HASH, auditHash } from './audit.js';

export interface AuditFilter {
  /** Entries at or after this time. */
  since?: Date;
  /** Entries whose actor is this user. */
  user?: string;
  /** Entries whose target is this path or lies below it. */
  path?: string;
}

/** Verified entries matching `filter`, oldest first, page by page. Throws AUDIT_CHAIN_BROKEN, store errors. */
export async function* readAuditLog(store: MetadataStore, filter: AuditFilter = {}, pageSize = 1000): AsyncGenerator<AuditEntry> {
  let prev = { seq: 0, hash: GENESIS_HASH };
  const below = filter.path === undefined ? undefined : filter.path === '/' ? '/' : `${filter.path}/`;
  for (;;) {
    const page = await store.listAudit(prev.seq, pageSize);
    if (page.length === 0) return;
    for (const e of page) {
      const broken = (why: string): CofferError =>
        new CofferError(ErrorCode.AUDIT_CHAIN_BROKEN, `audit chain broken at entry ${e.seq}: ${why} (entries before it are verified)`, { details: { brokenAt: e.seq } });
      if (e.seq !== prev.seq + 1) throw broken(`entry ${prev.seq + 1} is missing`);
      if (e.prevHash !== prev.hash) throw broken(`prevHash does not match entry ${prev.seq}`);
      let hash: string;
      try {
        hash = auditHash(e);
      } catch {
        throw broken('details are not canonical JSON');
      }
      if (hash !== e.hash) throw broken('hash does not match its content');
      prev = { seq: e.seq, hash: e.hash };
      if (filter.since && e.at < filter.since) continue;
      if (filter.user !== undefined && e.actor !== filter.user) continue;
      if (filter.path !== undefined && e.target !== filter.path && !(below && e.target.startsWith(below))) continue;
      yield e;
    }
  }
}
