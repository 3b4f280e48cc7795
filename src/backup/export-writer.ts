// Writes a snapshot's metadata export (export-format.ts) to the target, streaming: records are produced page by
// page and written in ~1 MiB pieces, so memory holds the selection, not the file.
import { randomBytes } from 'node:crypto';
import type { MetadataStore } from '../metadata/types.js';
import { encodeRecord, EXPORT_FORMAT, EXPORT_VERSION, type ExportRecord } from './export-format.js';
import { parentFirst, type Selection } from './select.js';
import { stampOf } from './snapshots.js';
import type { BackupTarget } from './target.js';

const GRANT_BATCH = 500;
const AUDIT_PAGE = 1000;

async function* records(store: MetadataStore, sel: Selection, createdAt: Date): AsyncGenerator<ExportRecord> {
  yield { type: 'header', format: EXPORT_FORMAT, version: EXPORT_VERSION, createdAt: createdAt.toISOString(), source: store.kind };
  for (const user of await store.listUsers()) yield { type: 'user', user };
  for (const id of [...sel.blobs.keys()].sort()) yield { type: 'blob', blob: sel.blobs.get(id) as NonNullable<ReturnType<typeof sel.blobs.get>> };
  const ordered = parentFirst(sel.nodes);
  for (const node of ordered) yield { type: 'node', node };
  for (let i = 0; i < ordered.length; i += GRANT_BATCH) {
    const ids = ordered.slice(i, i + GRANT_BATCH).map((n) => n.id);
    const grants = (await store.listGrants(ids)).sort((a, b) => (a.nodeId + a.user < b.nodeId + b.user ? -1 : 1));
    for (const grant of grants) yield { type: 'grant', grant };
  }
  for (let after = 0; after < sel.auditSeq;) {
    const page = await store.listAudit(after, AUDIT_PAGE);
    if (page.length === 0) break;
    for (const entry of page) {
      if (entry.seq > sel.auditSeq) return;
      yield { type: 'audit', entry };
    }
    after = (page.at(-1) as (typeof page)[number]).seq;
  }
}

async function* encoded(store: MetadataStore, sel: Selection, createdAt: Date): AsyncGenerator<Uint8Array> {
  let pending: string[] = [];
  let pendingBytes = 0;
  let count = 0;
  const take = (): Buffer => {
    const b = Buffer.from(pending.join(''), 'utf8');
    pending = [];
    pendingBytes = 0;
    return b;
  };
  for await (const r of records(store, sel, createdAt)) {
    count++;
    const line = encodeRecord(r);
    pending.push(line);
    pendingBytes += line.length;
    if (pendingBytes >= 1 << 20) yield take();
  }
  pending.push(encodeRecord({ type: 'end', records: count + 1 }));
  yield take();
}

/** Returns the export's path (relative to the target), size and SHA-256 for the manifest. */
export async function writeExport(store: MetadataStore, sel: Selection, target: BackupTarget, createdAt: Date): Promise<{ path: string; size: number; sha256: string }> {
  const name = `${stampOf(sel.startedAt.toISOString())}-${randomBytes(8).toString('hex')}.jsonl`;
  const { size, sha256 } = await target.writeFile('metadata', name, encoded(store, sel, createdAt));
  return { path: `metadata/${name}`, size, sha256 };
}
