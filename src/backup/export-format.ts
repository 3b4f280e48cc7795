// The metadata export of a snapshot (docs/backup.md "Metadata export"): JSON Lines, one record per line, in
// the order a restore inserts them: header, users, blobs, nodes (every parent before its children), grants,
// audit entries, end. It holds what the metadata store holds (wrapped keys only, never a plaintext key: the
// store never has one) and nothing of upload sessions in progress. The `end` record carries the record count,
// so a truncated export is refused even before its SHA-256 (pinned by the manifest) is compared.
import { CofferError, ErrorCode } from '../errors.js';
import type { AuditEntry, BlobRecord, Grant, TreeNode, User } from '../metadata/types.js';

export const EXPORT_FORMAT = 'coffer-backup-metadata';
export const EXPORT_VERSION = 1;

export type ExportRecord =
  | { type: 'header'; format: string; version: number; createdAt: string; source: 'sqlite' | 'mongo' }
  | { type: 'user'; user: User }
  | { type: 'blob'; blob: BlobRecord }
  | { type: 'node'; node: TreeNode }
  | { type: 'grant'; grant: Grant }
  | { type: 'audit'; entry: AuditEntry }
  | { type: 'end'; records: number };

const iso = (d: Date): string => d.toISOString();

/**
 * The enclave's MAC of a record (docs/format.md "Metadata MAC v1"), kept verbatim so a restored vault still
 * verifies at the gateway: the key `mac` is appended last, and only when the record has one (an export of a
 * vault without MACs is byte-identical to one written before this field existed).
 */
const withMac = (o: Record<string, unknown>, mac: string | null | undefined): Record<string, unknown> =>
  typeof mac === 'string' ? { ...o, mac } : o;

/** One line (with its newline) of the export. Dates are ISO-8601 UTC with milliseconds. */
export function encodeRecord(r: ExportRecord): string {
  switch (r.type) {
    case 'header':
    case 'end':
      return `${JSON.stringify(r)}\n`;
    case 'user':
      return `${JSON.stringify(withMac({ type: 'user', name: r.user.name, createdAt: iso(r.user.createdAt), disabled: r.user.disabled }, r.user.mac))}\n`;
    case 'blob': {
      const b = r.blob;
      return `${JSON.stringify(withMac({
        type: 'blob', id: b.id, state: b.state, owner: b.owner, keyGeneration: b.keyGeneration, keyRecord: b.keyRecord,
        size: b.size, chunkCount: b.chunkCount, chunkSha256: b.chunkSha256, createdAt: iso(b.createdAt), updatedAt: iso(b.updatedAt), attrs: b.attrs,
      }, b.mac))}\n`;
    }
    case 'node': {
      const n = r.node;
      return `${JSON.stringify(withMac({
        type: 'node', id: n.id, parentId: n.parentId, name: n.name, nodeType: n.type, blobId: n.blobId, size: n.size,
        owner: n.owner, createdAt: iso(n.createdAt), modifiedAt: iso(n.modifiedAt), version: n.version,
      }, n.mac))}\n`;
    }
    case 'grant':
      return `${JSON.stringify(withMac({ type: 'grant', nodeId: r.grant.nodeId, user: r.grant.user, role: r.grant.role, createdAt: iso(r.grant.createdAt) }, r.grant.mac))}\n`;
    case 'audit': {
      const e = r.entry;
      return `${JSON.stringify({
        type: 'audit', seq: e.seq, at: iso(e.at), actor: e.actor, action: e.action, target: e.target, details: e.details, prevHash: e.prevHash, hash: e.hash,
      })}\n`;
    }
  }
}

class LineReader {
  constructor(readonly line: number, readonly o: Record<string, unknown>) {}
  fail(why: string): never {
    throw new CofferError(ErrorCode.INTEGRITY, `metadata export line ${this.line}: ${why}`);
  }
  str(k: string): string {
    const v = this.o[k];
    return typeof v === 'string' ? v : this.fail(`"${k}" is not a string`);
  }
  strOrNull(k: string): string | null {
    return this.o[k] === null ? null : this.str(k);
  }
  int(k: string): number {
    const v = this.o[k];
    return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : this.fail(`"${k}" is not a non-negative integer`);
  }
  intOrNull(k: string): number | null {
    return this.o[k] === null ? null : this.int(k);
  }
  date(k: string): Date {
    const d = new Date(this.str(k));
    return Number.isNaN(d.getTime()) ? this.fail(`"${k}" is not a date`) : d;
  }
  obj(k: string): Record<string, unknown> {
    const v = this.o[k];
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : this.fail(`"${k}" is not an object`);
  }
  /** `{ mac }` when the record carries one, `{}` when the key is absent (exports written before it existed). */
  mac(): { mac?: string } {
    const v = this.o.mac;
    if (v === undefined) return {};
    return typeof v === 'string' && /^[\x21-\x7e]{1,256}$/.test(v) ? { mac: v } : this.fail('"mac" is not 1–256 printable ASCII characters');
  }
  /** A boolean that must be there (an export that lost it must not turn a disabled user into an enabled one). */
  bool(k: string): boolean {
    const v = this.o[k];
    return typeof v === 'boolean' ? v : this.fail(`"${k}" is not true or false`);
  }
  oneOf<T extends string>(k: string, values: readonly T[]): T {
    const v = this.str(k);
    return (values as readonly string[]).includes(v) ? (v as T) : this.fail(`"${k}" is not one of ${values.join(', ')}`);
  }
}

/** Parses one line of an export. Throws INTEGRITY naming the line on anything malformed. */
export function parseRecord(text: string, line: number): ExportRecord {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new CofferError(ErrorCode.INTEGRITY, `metadata export line ${line}: not valid JSON`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new CofferError(ErrorCode.INTEGRITY, `metadata export line ${line}: not an object`);
  const r = new LineReader(line, raw as Record<string, unknown>);
  switch (r.str('type')) {
    case 'header':
      return { type: 'header', format: r.str('format'), version: r.int('version'), createdAt: r.str('createdAt'), source: r.oneOf('source', ['sqlite', 'mongo'] as const) };
    case 'end':
      return { type: 'end', records: r.int('records') };
    case 'user':
      return { type: 'user', user: { name: r.str('name'), createdAt: r.date('createdAt'), disabled: r.bool('disabled'), ...r.mac() } };
    case 'blob': {
      const sums = r.o.chunkSha256;
      if (sums !== null && (!Array.isArray(sums) || !sums.every((s) => typeof s === 'string' && /^[0-9a-f]{64}$/.test(s)))) r.fail('"chunkSha256" is not a list of SHA-256 digests');
      const keyRecord = r.obj('keyRecord');
      if (typeof keyRecord.scheme !== 'string') r.fail('"keyRecord" has no scheme');
      return {
        type: 'blob',
        blob: {
          id: r.str('id'), state: r.oneOf('state', ['uploading', 'committed', 'deleting'] as const), owner: r.str('owner'),
          keyGeneration: r.int('keyGeneration'), keyRecord: keyRecord as BlobRecord['keyRecord'], size: r.intOrNull('size'),
          chunkCount: r.intOrNull('chunkCount'), chunkSha256: sums as string[] | null, createdAt: r.date('createdAt'),
          updatedAt: r.date('updatedAt'), attrs: r.obj('attrs'), ...r.mac(),
        },
      };
    }
    case 'node':
      return {
        type: 'node',
        node: {
          id: r.str('id'), parentId: r.strOrNull('parentId'), name: r.str('name'), type: r.oneOf('nodeType', ['dir', 'file'] as const),
          blobId: r.strOrNull('blobId'), size: r.int('size'), owner: r.str('owner'), createdAt: r.date('createdAt'),
          modifiedAt: r.date('modifiedAt'), version: r.int('version'), ...r.mac(),
        },
      };
    case 'grant':
      return { type: 'grant', grant: { nodeId: r.str('nodeId'), user: r.str('user'), role: r.oneOf('role', ['read', 'write', 'admin'] as const), createdAt: r.date('createdAt'), ...r.mac() } };
    case 'audit':
      return {
        type: 'audit',
        entry: {
          seq: r.int('seq'), at: r.date('at'), actor: r.str('actor'), action: r.str('action'), target: r.str('target'),
          details: r.obj('details'), prevHash: r.str('prevHash'), hash: r.str('hash'),
        },
      };
    default:
      return r.fail(`unknown record type "${String(r.o.type)}"`);
  }
}

/**
 * Reads an export stream record by record, checking the header first and the end record's count last. Throws
 * INTEGRITY for a malformed line, a wrong format/version, records after `end`, or a missing `end` (truncated).
 */
export async function* readExport(lines: AsyncIterable<string>): AsyncGenerator<ExportRecord> {
  let n = 0;
  let ended = false;
  for await (const text of lines) {
    if (text === '') continue;
    n++;
    if (ended) throw new CofferError(ErrorCode.INTEGRITY, `metadata export line ${n}: records after the end record`);
    const rec = parseRecord(text, n);
    if (n === 1) {
      if (rec.type !== 'header' || rec.format !== EXPORT_FORMAT) throw new CofferError(ErrorCode.INTEGRITY, 'metadata export: no header line (not a Coffer metadata export)');
      if (rec.version !== EXPORT_VERSION) throw new CofferError(ErrorCode.INTEGRITY, `metadata export version ${rec.version} is not supported (this Coffer reads ${EXPORT_VERSION})`);
    } else if (rec.type === 'header') {
      throw new CofferError(ErrorCode.INTEGRITY, `metadata export line ${n}: a second header`);
    }
    if (rec.type === 'end') {
      if (rec.records !== n) throw new CofferError(ErrorCode.INTEGRITY, `metadata export: the end record counts ${rec.records} records, the file has ${n}`);
      ended = true;
    }
    yield rec;
  }
  if (!ended) throw new CofferError(ErrorCode.INTEGRITY, 'metadata export: no end record (truncated)');
}
