// Public entry of src/vault: the Vault (tree, uploads, permissions, downloads, GC) and the audit chain.
export { Vault, DEFAULT_UPLOAD_GRACE_MS } from './vault.js';
export { SYSTEM_ACTOR } from './context.js';
export type { Actor, GrantView, ManifestView, NodeView, ChunkView, RootRole, VaultOptions } from './context.js';
export type { CreateUploadInput, UploadChunkView, UploadView } from './uploads.js';
export type { CommitInput } from './commit.js';
export { MAX_BATCH_READ } from './small-files.js';
export type { ChunkInfo, ChunkReadPlan } from './downloads.js';
export type { GcOptions, GcReport } from './gc.js';
export { LOST_AND_FOUND, fsckStores } from './fsck.js';
export type { FsckOptions, FsckProblem, FsckProblemKind, FsckReport } from './fsck.js';
export { appendAudit, auditHash, auditHead, canonicalJson, verifyAuditChain, GENESIS_HASH } from './audit.js';
export type { AuditEvent, AuditVerification } from './audit.js';
export { HOMES_DIR, type UserView } from './users.js';
export { parsePath, formatPath, MAX_PATH_BYTES, MAX_SEGMENT_BYTES } from './paths.js';
export { checkUserName } from './grants.js';
export type { UploadSummary } from './upload-list.js';
