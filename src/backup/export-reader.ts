// Reads a snapshot's metadata export back from the target: first the whole file is hashed and compared with the
// size and SHA-256 its manifest pins (so nothing of an edited or damaged export is ever used), then it is
// parsed record by record (export-format.ts).
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { CofferError, ErrorCode } from '../errors.js';
import { readExport, type ExportRecord } from './export-format.js';
import type { SnapshotManifest } from './manifest.js';
import type { BackupTarget } from './target.js';

function nameOf(manifest: SnapshotManifest): string {
  return manifest.metadata.path.slice('metadata/'.length);
}

/** Throws INTEGRITY when the export's size or SHA-256 differs from the manifest's, NOT_FOUND when it is missing. */
export async function checkExport(target: BackupTarget, manifest: SnapshotManifest): Promise<void> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const piece of await target.openFile('metadata', nameOf(manifest))) {
    hash.update(piece as Buffer);
    size += (piece as Buffer).byteLength;
  }
  const sha = hash.digest('hex');
  if (size !== manifest.metadata.size || sha !== manifest.metadata.sha256) {
    throw new CofferError(ErrorCode.INTEGRITY, `${manifest.metadata.path}: ${size} bytes with SHA-256 ${sha.slice(0, 16)}…, the manifest records ${manifest.metadata.size} bytes with ${manifest.metadata.sha256.slice(0, 16)}… (edited or damaged)`);
  }
}

/** The export's records, after checkExport. */
export async function* readCheckedExport(target: BackupTarget, manifest: SnapshotManifest): AsyncGenerator<ExportRecord> {
  await checkExport(target, manifest);
  const stream = await target.openFile('metadata', nameOf(manifest));
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  try {
    yield* readExport(lines);
  } finally {
    lines.close();
    stream.destroy();
  }
}
