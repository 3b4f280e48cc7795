// Public entry of src/backup: snapshots of a vault's sealed chunks and metadata at a directory or an
// S3-compatible target, and verify / restore / list / prune of them. Needs no key anywhere (docs/backup.md).
export { COPY_CONCURRENCY } from './copy-chunks.js';
export { createSnapshot, type CreateOptions, type CreateReport } from './create.js';
export { VERIFY_CONCURRENCY, verifySnapshot, loadSnapshot, type VerifyProblem, type VerifyReport } from './verify.js';
export { restoreSnapshot, type RestoreDestination, type RestoreOptions, type RestoreReport } from './restore.js';
export { listSnapshots, pruneSnapshots, snapshotsToKeep, type PrunePolicy, type PruneReport, type SnapshotSummary } from './prune.js';
export { findSnapshot, listSnapshotRefs, loadManifest, type SnapshotRef } from './snapshots.js';
export { openBackupTarget, openDirTarget, type BackupTarget } from './target.js';
export { RateLimiter, parseRate } from './rate-limit.js';
export { parseManifest, encodeManifest, type SnapshotManifest } from './manifest.js';
