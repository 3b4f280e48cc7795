// Re-wraps every KMS-held blob key under another KMS key (ReEncrypt: the data key never leaves the KMS and no
// chunk is touched). Streams over the blobs in id order, one page at a time; each blob is one audit entry
// (written first, so a kill can over-report but never hide a rewrap) and one compare-and-set on the blob.
// Resumable: a blob already under the target key is skipped, so running it again after a kill continues.
import { parseKmsKeyRecord, type KeyService } from '../kms/index.js';
import { CofferError, ErrorCode, isCofferError } from '../errors.js';
import type { BlobRecord, MetadataStore } from '../metadata/types.js';
import { appendAudit } from '../vault/audit.js';

export interface RewrapOptions {
  store: MetadataStore;
  keys: KeyService;
  /** ARN of the destination key (resolve aliases first: records store ARNs). */
  toKeyArn: string;
  /** Who runs it, for the audit log. */
  actor: string;
  pageSize?: number;
  onBlob?: (event: RewrapEvent) => void;
  signal?: AbortSignal;
}

export type RewrapOutcome = 'rewrapped' | 'already' | 'not-kms' | 'deleting';

export interface RewrapEvent {
  blobId: string;
  outcome: RewrapOutcome;
}

export interface RewrapReport {
  scanned: number;
  rewrapped: number;
  already: number;
  notKms: number;
  skippedDeleting: number;
}

/** Throws KMS errors (KMS_ACCESS_DENIED, KEY_INVALID for a record that does not belong to its blob…) and store errors. */
export async function rewrapAll(options: RewrapOptions): Promise<RewrapReport> {
  const report: RewrapReport = { scanned: 0, rewrapped: 0, already: 0, notKms: 0, skippedDeleting: 0 };
  let after: string | undefined;
  for (;;) {
    const page = await options.store.listBlobs({ after, limit: options.pageSize ?? 500 });
    for (const blob of page.items) {
      if (options.signal?.aborted) throw new CofferError(ErrorCode.TIMEOUT, 'rewrap interrupted; run it again to continue');
      const outcome = await rewrapOne(options, blob);
      report.scanned++;
      if (outcome === 'rewrapped') report.rewrapped++;
      else if (outcome === 'already') report.already++;
      else if (outcome === 'not-kms') report.notKms++;
      else report.skippedDeleting++;
      options.onBlob?.({ blobId: blob.id, outcome });
    }
    if (page.next === null) return report;
    after = page.next;
  }
}

async function rewrapOne(options: RewrapOptions, initial: BlobRecord): Promise<RewrapOutcome> {
  let blob: BlobRecord | null = initial;
  for (let attempt = 0; attempt < 5 && blob; attempt++) {
    if (blob.state === 'deleting') return 'deleting';
    if (blob.keyRecord.scheme !== 'kms') return 'not-kms';
    const record = parseKmsKeyRecord(blob.keyRecord, blob.id);
    if (record.keyId === options.toKeyArn) return 'already';
    await appendAudit(options.store, { actor: options.actor, action: 'key.rewrap', target: blob.id, details: { from: record.keyId, to: options.toKeyArn } });
    const rewrapped = await options.keys.rewrap(record, options.toKeyArn);
    try {
      await options.store.updateBlob(blob.id, blob.state, { keyRecord: { ...rewrapped } });
      return 'rewrapped';
    } catch (e) {
      // the blob moved on meanwhile (committed or deleted): look again
      if (!isCofferError(e, ErrorCode.UPLOAD_STATE)) throw e;
      blob = await options.store.getBlob(blob.id);
    }
  }
  if (!blob) return 'deleting';
  throw new CofferError(ErrorCode.CONFLICT, `blob ${initial.id} kept changing while being rewrapped; run rewrap again`, { retryable: true });
}
