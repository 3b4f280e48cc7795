// The snapshot manifest (docs/backup.md "Snapshot manifest"): which chunk files and which metadata export make
// up one snapshot, each with its size and SHA-256. A manifest is stored under the SHA-256 of its own bytes
// (`snapshots/<stamp>-<sha256>.json`), so the snapshot id *is* its digest: a manifest edited by hand no longer
// matches its name and is refused. Parsing is strict: unknown fields, wrong types and duplicates are refused too.
import { createHash } from 'node:crypto';
import { CofferError, ErrorCode } from '../errors.js';

export const MANIFEST_FORMAT = 'coffer-backup-snapshot';
export const MANIFEST_VERSION = 1;

export interface ManifestChunk {
  blob: string;
  index: number;
  size: number;
  sha256: string;
}

export interface SnapshotManifest {
  format: typeof MANIFEST_FORMAT;
  version: typeof MANIFEST_VERSION;
  /** ISO-8601 UTC with milliseconds: when the snapshot's metadata walk began. */
  createdAt: string;
  /** Host that made it (informational). */
  host: string;
  /** The previous snapshot this one was made incrementally against, or null. */
  parent: string | null;
  /** The metadata export (JSON Lines): `metadata/<stamp>-<random>.jsonl`, pinned by its size and SHA-256. */
  metadata: { path: string; size: number; sha256: string };
  /** Every chunk file of every blob a file of the snapshot uses, sorted by (blob, index). */
  chunks: ManifestChunk[];
  stats: { files: number; directories: number; blobs: number; bytes: number };
}

const HEX64 = /^[0-9a-f]{64}$/;
const HEX32 = /^[0-9a-f]{32}$/;

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The bytes a manifest is stored as (and hashed over): JSON with keys in a fixed order, one chunk per line. */
export function encodeManifest(m: SnapshotManifest): Buffer {
  const head = {
    format: m.format, version: m.version, createdAt: m.createdAt, host: m.host, parent: m.parent,
    metadata: { path: m.metadata.path, size: m.metadata.size, sha256: m.metadata.sha256 },
    stats: { files: m.stats.files, directories: m.stats.directories, blobs: m.stats.blobs, bytes: m.stats.bytes },
  };
  const lines = m.chunks.map((c) => JSON.stringify({ blob: c.blob, index: c.index, size: c.size, sha256: c.sha256 }));
  const json = `${JSON.stringify(head).slice(0, -1)},"chunks":[\n${lines.join(',\n')}\n]}\n`;
  return Buffer.from(json, 'utf8');
}

function refuse(id: string, why: string): never {
  throw new CofferError(ErrorCode.INTEGRITY, `snapshot ${id.slice(0, 12)}: manifest refused: ${why}`);
}

function exactKeys(id: string, where: string, v: unknown, keys: readonly string[]): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) refuse(id, `${where} is not an object`);
  const got = Object.keys(v);
  for (const k of got) if (!keys.includes(k)) refuse(id, `${where} has an unknown field "${k}"`);
  for (const k of keys) if (!(k in v)) refuse(id, `${where} lacks "${k}"`);
  return v as Record<string, unknown>;
}

function count(id: string, where: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) refuse(id, `${where} is not a non-negative integer`);
  return v;
}

function hex(id: string, where: string, v: unknown, re: RegExp): string {
  if (typeof v !== 'string' || !re.test(v)) refuse(id, `${where} is not lowercase hex of the right length`);
  return v;
}

/**
 * Parses and checks manifest bytes read from `snapshots/<id>.json`. Throws INTEGRITY when the bytes do not hash
 * to `id` (edited, truncated, damaged) or do not follow the format exactly.
 */
export function parseManifest(id: string, bytes: Buffer): SnapshotManifest {
  if (sha256Hex(bytes) !== id) refuse(id, 'its SHA-256 does not match its name (edited by hand or damaged)');
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch {
    refuse(id, 'not valid JSON');
  }
  const m = exactKeys(id, 'manifest', raw, ['format', 'version', 'createdAt', 'host', 'parent', 'metadata', 'stats', 'chunks']);
  if (m.format !== MANIFEST_FORMAT) refuse(id, `format is not "${MANIFEST_FORMAT}"`);
  if (m.version !== MANIFEST_VERSION) refuse(id, `version ${String(m.version)} is not supported (this Coffer reads ${MANIFEST_VERSION})`);
  if (typeof m.createdAt !== 'string' || Number.isNaN(Date.parse(m.createdAt))) refuse(id, 'createdAt is not a date');
  if (typeof m.host !== 'string') refuse(id, 'host is not a string');
  if (m.parent !== null) hex(id, 'parent', m.parent, HEX64);
  const md = exactKeys(id, 'metadata', m.metadata, ['path', 'size', 'sha256']);
  const mdSha = hex(id, 'metadata.sha256', md.sha256, HEX64);
  if (typeof md.path !== 'string' || !/^metadata\/[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.jsonl$/.test(md.path)) refuse(id, 'metadata.path is not metadata/<name>.jsonl');
  const st = exactKeys(id, 'stats', m.stats, ['files', 'directories', 'blobs', 'bytes']);
  if (!Array.isArray(m.chunks)) refuse(id, 'chunks is not an array');
  const chunks: ManifestChunk[] = [];
  let prev: ManifestChunk | undefined;
  for (const [i, c] of (m.chunks as unknown[]).entries()) {
    const o = exactKeys(id, `chunks[${i}]`, c, ['blob', 'index', 'size', 'sha256']);
    const chunk: ManifestChunk = {
      blob: hex(id, `chunks[${i}].blob`, o.blob, HEX32), index: count(id, `chunks[${i}].index`, o.index),
      size: count(id, `chunks[${i}].size`, o.size), sha256: hex(id, `chunks[${i}].sha256`, o.sha256, HEX64),
    };
    if (prev && (prev.blob > chunk.blob || (prev.blob === chunk.blob && prev.index >= chunk.index))) {
      refuse(id, `chunks[${i}] is out of order or repeated`);
    }
    chunks.push((prev = chunk));
  }
  return {
    format: MANIFEST_FORMAT, version: MANIFEST_VERSION, createdAt: m.createdAt, host: m.host, parent: m.parent as string | null,
    metadata: { path: md.path, size: count(id, 'metadata.size', md.size), sha256: mdSha },
    stats: {
      files: count(id, 'stats.files', st.files), directories: count(id, 'stats.directories', st.directories),
      blobs: count(id, 'stats.blobs', st.blobs), bytes: count(id, 'stats.bytes', st.bytes),
    },
    chunks,
  };
}

/** A map key for one chunk: `<blob>/<index>`. */
export function chunkKey(c: { blob: string; index: number }): string {
  return `${c.blob}/${c.index}`;
}
