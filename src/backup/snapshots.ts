// Finding and loading snapshots at a target. A manifest's file name is `<UTC stamp>-<sha256>.json`: the stamp
// sorts names by time (so the latest is found without reading every manifest), the SHA-256 of the file's own
// bytes is the snapshot id. Loading checks both against the content (parseManifest).
import { CofferError, ErrorCode } from '../errors.js';
import { encodeManifest, parseManifest, sha256Hex, type SnapshotManifest } from './manifest.js';
import type { BackupTarget } from './target.js';

const FILE = /^(\d{8}T\d{9}Z)-([0-9a-f]{64})\.json$/;

export interface SnapshotRef {
  id: string;
  file: string;
  stamp: string;
}

/** `2026-12-04T17:05:12.123Z` → `20261204T170512123Z`. */
export function stampOf(iso: string): string {
  return iso.replace(/[-:.]/g, '');
}

/** Snapshot files at the target, oldest first. Names that do not follow the pattern are ignored. */
export async function listSnapshotRefs(target: BackupTarget): Promise<SnapshotRef[]> {
  const refs: SnapshotRef[] = [];
  for (const file of await target.listFiles('snapshots')) {
    const m = FILE.exec(file);
    if (m) refs.push({ id: m[2] as string, file, stamp: m[1] as string });
  }
  return refs.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}

/** Loads and checks one manifest. Throws INTEGRITY when its content does not match its name. */
export async function loadManifest(target: BackupTarget, ref: SnapshotRef): Promise<SnapshotManifest> {
  const m = parseManifest(ref.id, await target.readFile('snapshots', ref.file));
  if (stampOf(m.createdAt) !== ref.stamp) {
    throw new CofferError(ErrorCode.INTEGRITY, `snapshot ${ref.id.slice(0, 12)}: manifest refused: its date does not match its file name (renamed by hand?)`);
  }
  return m;
}

/**
 * The snapshot `id` names (any unique prefix of at least 6 hex digits), or the latest when `id` is undefined.
 * Throws NOT_FOUND (no snapshot, or none matching), INVALID_ARGUMENT (ambiguous or malformed prefix).
 */
export async function findSnapshot(target: BackupTarget, id?: string): Promise<SnapshotRef> {
  const refs = await listSnapshotRefs(target);
  if (id === undefined) {
    const latest = refs.at(-1);
    if (!latest) throw new CofferError(ErrorCode.NOT_FOUND, `no snapshot in ${target.description}`);
    return latest;
  }
  if (!/^[0-9a-f]{6,64}$/.test(id)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `snapshot id "${id}" must be 6 to 64 lowercase hex digits`);
  const hits = refs.filter((r) => r.id.startsWith(id));
  if (hits.length === 0) throw new CofferError(ErrorCode.NOT_FOUND, `no snapshot ${id} in ${target.description}`);
  if (hits.length > 1) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `snapshot id ${id} is ambiguous (${hits.length} snapshots start with it)`);
  return hits[0] as SnapshotRef;
}

/** Writes a manifest under its stamp and digest; returns its ref. */
export async function writeManifest(target: BackupTarget, m: SnapshotManifest): Promise<SnapshotRef> {
  const bytes = encodeManifest(m);
  const id = sha256Hex(bytes);
  const stamp = stampOf(m.createdAt);
  const file = `${stamp}-${id}.json`;
  await target.writeFile('snapshots', file, (async function* () {
    yield bytes;
  })());
  return { id, file, stamp };
}
