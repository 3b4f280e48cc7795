// The uploads still in progress, for their owners (`coffer uploads list`): a put stopped by NO_SPACE, a
// network failure or a kill keeps its upload, and its chunks, for the grace period (24 h) so that it can be
// resumed; this shows them, with the space they hold, so that they can be dropped (`coffer uploads abort`)
// instead of waiting for GC.
import { CofferError, ErrorCode } from '../errors.js';
import type { Actor, VaultContext } from './context.js';
import { uploadAttrs } from './uploads.js';

export const MAX_UPLOADS_LISTED = 1000;

export interface UploadSummary {
  blobId: string;
  path: string;
  owner: string;
  /** Declared size, when the client gave one. */
  size: number | null;
  chunks: number;
  /** Bytes of sealed chunk files the upload holds in the chunk store. */
  storedBytes: number;
  createdAt: string;
  updatedAt: string;
}

/**
 * The caller's uploads in progress, oldest activity first (at most MAX_UPLOADS_LISTED); with `all`, everyone's
 * (token admins only: PERMISSION_DENIED otherwise). Throws store errors.
 */
export async function listUploads(ctx: VaultContext, actor: Actor, options: { all?: boolean } = {}): Promise<UploadSummary[]> {
  if (options.all && !actor.admin) throw new CofferError(ErrorCode.PERMISSION_DENIED, 'listing everyone\'s uploads needs an admin token');
  // the store lists by state and last activity: everything up to now, and no more than a page
  const blobs = await ctx.store.listBlobsByState('uploading', new Date(ctx.now().getTime() + 60_000), options.all ? MAX_UPLOADS_LISTED : 10 * MAX_UPLOADS_LISTED);
  const out: UploadSummary[] = [];
  for (const b of blobs) {
    if (!options.all && b.owner !== actor.user) continue;
    const chunks = await ctx.store.listUploadChunks(b.id);
    out.push({
      blobId: b.id, path: uploadAttrs(b).path, owner: b.owner, size: b.size, chunks: chunks.length,
      storedBytes: chunks.reduce((n, c) => n + c.storedSize, 0), createdAt: b.createdAt.toISOString(), updatedAt: b.updatedAt.toISOString(),
    });
    if (out.length >= MAX_UPLOADS_LISTED) break;
  }
  return out;
}
