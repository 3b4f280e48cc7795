// Restore's metadata inserts, many records per round (docs/backup.md "Restore"): blobs and nodes go to the store's
// insertBlobs/insertNodes (one SQLite transaction, one unordered MongoDB bulk write) RESTORE_BATCH at a time instead
// of one round trip each. Each record is still its own write: ALREADY_EXISTS is a record inserted by an interrupted
// run (tolerated, as before); any other failure is reported per record, naming each one, after its batch ran.
import { CofferError, ErrorCode } from '../errors.js';
import type { BlobRecord, MetadataStore, TreeNode } from '../metadata/types.js';

/** Records per insertBlobs/insertNodes call. */
export const RESTORE_BATCH = 1000;
/** Failures named in the error's message (all of them are in its details, up to this many more). */
const NAMED = 5;
const DETAILED = 100;

type Pending = { kind: 'blob'; items: BlobRecord[] } | { kind: 'node'; items: TreeNode[] };

/**
 * Collects blob and node records in arrival order and inserts them in batches; a record of another kind (or any
 * other record the caller handles itself: call flush() first) ends the batch, so order between kinds is kept
 * (parents before children within a batch stay in order too). Throws, from add() or flush(), the first batch's
 * failures other than ALREADY_EXISTS as one CofferError (the first failure's code; details.failures lists them).
 */
export class RestoreInserter {
  #pending: Pending | null = null;
  /** insertBlobs/insertNodes calls made (for tests). */
  rounds = 0;

  constructor(private readonly store: MetadataStore, private readonly batch = RESTORE_BATCH) {}

  async addBlob(blob: BlobRecord): Promise<void> {
    if (this.#pending?.kind !== 'blob') await this.flush();
    const p = (this.#pending ??= { kind: 'blob', items: [] }) as Extract<Pending, { kind: 'blob' }>;
    p.items.push(blob);
    if (p.items.length >= this.batch) await this.flush();
  }

  async addNode(node: TreeNode): Promise<void> {
    if (this.#pending?.kind !== 'node') await this.flush();
    const p = (this.#pending ??= { kind: 'node', items: [] }) as Extract<Pending, { kind: 'node' }>;
    p.items.push(node);
    if (p.items.length >= this.batch) await this.flush();
  }

  /** Inserts what is pending. */
  async flush(): Promise<void> {
    const p = this.#pending;
    this.#pending = null;
    if (!p || p.items.length === 0) return;
    this.rounds++;
    const results = p.kind === 'blob' ? await this.store.insertBlobs(p.items) : await this.store.insertNodes(p.items);
    const failures = results.flatMap((e, i) => (e === null || e.code === ErrorCode.ALREADY_EXISTS ? [] : [{ kind: p.kind, id: p.items[i]?.id ?? '', code: e.code, message: e.message }]));
    if (failures.length === 0) return;
    const first = failures[0] as (typeof failures)[number];
    const named = failures.slice(0, NAMED).map((f) => `${f.kind} ${f.id}: ${f.message}`).join('; ');
    throw new CofferError(first.code, `restore could not insert ${failures.length} ${p.kind} record(s) (the others of the batch were inserted; running restore again resumes): ${named}${failures.length > NAMED ? '; …' : ''}`, {
      details: { failures: failures.slice(0, NAMED + DETAILED) },
    });
  }
}
