// MongoMetadataStore: the production MetadataStore on the official MongoDB driver. Every write touches one
// document (insertOne, updateOne/findOneAndUpdate with a compare-and-set filter, deleteOne/deleteMany on one
// key); there are no multi-document transactions, so it works on a replica set or a sharded cluster alike.
import { MongoBulkWriteError, MongoClient, type Collection, type Db, type Document, type MongoClientOptions, type OptionalUnlessRequiredId } from 'mongodb';
import { CofferError, ErrorCode } from '../../errors.js';
import * as c from '../common.js';
import type {
  AuditEntry, BlobRecord, BlobState, Grant, MetadataStore, Page, TreeNode, UploadChunkRecord, User,
} from '../types.js';
import * as d from './mongo-docs.js';
import { isDuplicateKey, mongoError } from './mongo-errors.js';

const SCHEMA_KEY = 'schema_version';
/** The meta document that `sync` writes, journaled, as a durability barrier. */
const DURABILITY_KEY = 'durability_barrier';
const JSON_BLOB_FIELDS = new Set(['keyRecord', 'attrs']);

/** The database name in a mongodb:// URI's path, if any. */
function dbNameOf(uri: string): string | undefined {
  const m = /^mongodb(?:\+srv)?:\/\/[^/]*\/([^?]+)/.exec(uri);
  return m?.[1] === undefined ? undefined : decodeURIComponent(m[1]);
}

export class MongoMetadataStore implements MetadataStore {
  readonly kind = 'mongo' as const;
  readonly #client: MongoClient;
  readonly #db: Db;
  readonly #nodes: Collection<d.NodeDoc>;
  readonly #blobs: Collection<d.BlobDoc>;
  readonly #chunks: Collection<d.UploadChunkDoc>;
  readonly #users: Collection<d.UserDoc>;
  readonly #grants: Collection<d.GrantDoc>;
  readonly #audit: Collection<d.AuditDoc>;
  readonly #meta: Collection<d.MetaDoc>;
  #closed = false;

  /**
   * Connects to `uri` and uses database `dbName` (default: the URI's database, else 'coffer'). Does not
   * migrate: see openMetadataStore. Throws METADATA (retryable when the server could not be reached).
   */
  static async connect(uri: string, dbName?: string, options: MongoClientOptions = {}): Promise<MongoMetadataStore> {
    // the driver lets an options object override the URI: our default applies only where the URI is silent
    const defaults: MongoClientOptions = /[?&]serverSelectionTimeoutMS=/i.test(uri) ? {} : { serverSelectionTimeoutMS: 15_000 };
    let client: MongoClient;
    try {
      client = new MongoClient(uri, { ...defaults, ...options });
    } catch (e) {
      // a malformed URI (the parser's message never repeats it: it may hold a password)
      throw new CofferError(ErrorCode.INVALID_ARGUMENT, `not a usable MongoDB connection string: ${(e as Error).message}`, { cause: e });
    }
    try {
      await client.connect();
    } catch (e) {
      await client.close().catch(() => undefined);
      throw mongoError(e, 'connect to MongoDB');
    }
    return new MongoMetadataStore(client, client.db(dbName ?? dbNameOf(uri) ?? 'coffer'));
  }

  private constructor(client: MongoClient, db: Db) {
    this.#client = client;
    this.#db = db;
    this.#nodes = db.collection('nodes');
    this.#blobs = db.collection('blobs');
    this.#chunks = db.collection('uploadChunks');
    this.#users = db.collection('users');
    this.#grants = db.collection('grants');
    this.#audit = db.collection('audit');
    this.#meta = db.collection('meta');
  }

  /** The database's name (for tests and `coffer migrate` output). */
  get databaseName(): string {
    return this.#db.databaseName;
  }

  /** Runs `fn`, turning driver errors into CofferError (see mongo-errors.ts). */
  async #do<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new CofferError(ErrorCode.METADATA, `${what}: the metadata store is closed`);
    try {
      return await fn();
    } catch (e) {
      throw mongoError(e, what);
    }
  }

  /** An upsert racing another upsert on the same unique key can fail with E11000 once: the retry matches. */
  async #upsert<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return this.#do(what, async () => {
      try {
        return await fn();
      } catch (e) {
        if (isDuplicateKey(e)) return fn();
        throw e;
      }
    });
  }

  // ---- schema and migrations (adapter-specific: not on MetadataStore) ----

  async getSchemaVersion(): Promise<number> {
    const doc = await this.#do('read schema version', () => this.#meta.findOne({ _id: SCHEMA_KEY }));
    return doc?.version ?? 0;
  }

  /**
   * Runs one migration step, then records `version` ($max: the stamp never goes down). The step must be
   * idempotent: a crash between the two re-runs it. Throws METADATA.
   */
  async runMigration(version: number, step: (db: Db) => Promise<void>): Promise<void> {
    await this.#do(`migrate to v${version}`, () => step(this.#db));
    await this.#upsert(`stamp schema v${version}`, () =>
      this.#meta.updateOne({ _id: SCHEMA_KEY }, { $max: { version } }, { upsert: true }),
    );
  }

  /** Drops the whole database. For tests and `coffer` tooling only; irreversible. */
  async dropDatabase(): Promise<void> {
    await this.#do('drop database', () => this.#db.dropDatabase());
  }

  // ---- tree ----

  async getNode(id: string): Promise<TreeNode | null> {
    const doc = await this.#do('get node', () => this.#nodes.findOne({ _id: id }));
    return doc === null ? null : d.nodeFromDoc(doc);
  }

  async getChild(parentId: string, name: string): Promise<TreeNode | null> {
    const doc = await this.#do('get child', () => this.#nodes.findOne({ parentId, name }));
    return doc === null ? null : d.nodeFromDoc(doc);
  }

  async getChildren(parentId: string, names: readonly string[]): Promise<Array<TreeNode | null>> {
    const distinct = c.distinctKeys(names);
    if (distinct.length === 0) return [];
    // one find on the (parentId, name) index; its order is the server's, so answers are put back in the caller's
    const docs = await this.#do('get children', () => this.#nodes.find({ parentId, name: { $in: distinct } }, { batchSize: distinct.length }).toArray());
    return c.inKeyOrder(names, docs.map(d.nodeFromDoc), (n) => n.name);
  }

  async listNodes(options: { after?: string; limit?: number } = {}): Promise<Page<TreeNode>> {
    const limit = c.pageLimit(options.limit);
    const filter = options.after === undefined ? {} : { _id: { $gt: options.after } };
    const docs = await this.#do('list nodes', () => this.#nodes.find(filter).sort({ _id: 1 }).limit(limit + 1).toArray());
    return c.toPage(docs.map(d.nodeFromDoc), limit, (n) => n.id);
  }

  async listChildren(parentId: string, options: { after?: string; limit?: number } = {}): Promise<Page<TreeNode>> {
    const limit = c.pageLimit(options.limit);
    const filter = options.after === undefined ? { parentId } : { parentId, name: { $gt: options.after } };
    const docs = await this.#do('list children', () => this.#nodes.find(filter).sort({ name: 1 }).limit(limit + 1).toArray());
    return c.toPage(docs.map(d.nodeFromDoc), limit, (n) => n.name);
  }

  async hasChildren(parentId: string): Promise<boolean> {
    const doc = await this.#do('has children', () => this.#nodes.findOne({ parentId }, { projection: { _id: 1 } }));
    return doc !== null;
  }

  async insertNode(node: TreeNode): Promise<void> {
    c.checkVersion(node.version);
    c.checkMac(node.mac);
    await this.#do(`insert node ${node.id}`, () => this.#nodes.insertOne(d.nodeToDoc(node)));
  }

  async updateNode(id: string, expectedVersion: number, patch: c.NodePatch): Promise<TreeNode> {
    const p = c.checkNodePatch(patch);
    const doc = await this.#do(`update node ${id}`, () =>
      this.#nodes.findOneAndUpdate(
        { _id: id, version: expectedVersion },
        { $set: { ...p, modifiedAt: new Date() }, $inc: { version: 1 } },
        { returnDocument: 'after' },
      ),
    );
    if (doc !== null) return d.nodeFromDoc(doc);
    throw c.nodeCasMiss(id, expectedVersion, await this.getNode(id));
  }

  async deleteNode(id: string, expectedVersion?: number): Promise<boolean> {
    const filter = expectedVersion === undefined ? { _id: id } : { _id: id, version: expectedVersion };
    const res = await this.#do(`delete node ${id}`, () => this.#nodes.deleteOne(filter));
    if (res.deletedCount === 1) return true;
    if (expectedVersion === undefined) return false;
    const current = await this.getNode(id);
    if (current !== null) throw c.nodeCasMiss(id, expectedVersion, current);
    return false;
  }

  async findNodesByBlob(blobId: string): Promise<TreeNode[]> {
    const docs = await this.#do('find nodes by blob', () => this.#nodes.find({ blobId }).sort({ _id: 1 }).toArray());
    return docs.map(d.nodeFromDoc);
  }

  // ---- blobs ----

  async insertBlob(blob: BlobRecord): Promise<void> {
    c.checkBlobState(blob.state);
    c.checkMac(blob.mac);
    await this.#do(`insert blob ${blob.id}`, () => this.#blobs.insertOne(d.blobToDoc(blob)));
  }

  // ---- batches ----

  async insertBlobs(blobs: BlobRecord[]): Promise<Array<CofferError | null>> {
    c.checkBatch(blobs);
    return this.#insertMany('insert blobs', this.#blobs, blobs, (b) => {
      c.checkBlobState(b.state);
      c.checkMac(b.mac);
    }, d.blobToDoc, (b) => `insert blob ${b.id}`);
  }

  async insertNodes(nodes: TreeNode[]): Promise<Array<CofferError | null>> {
    c.checkBatch(nodes);
    return this.#insertMany('insert nodes', this.#nodes, nodes, (n) => {
      c.checkVersion(n.version);
      c.checkMac(n.mac);
    }, d.nodeToDoc, (n) => `insert node ${n.id}`);
  }

  /** One unordered bulk insert: every document is its own atomic write; the ones that fail are reported by index. */
  async #insertMany<T, D extends Document>(
    what: string, coll: Collection<D>, items: T[], check: (item: T) => void, toDoc: (item: T) => D, name: (item: T) => string,
  ): Promise<Array<CofferError | null>> {
    const results = items.map((item) => c.checked(() => check(item)));
    const sent = items.flatMap((item, i) => (results[i] === null ? [i] : []));
    if (sent.length === 0) return results;
    await this.#do(what, async () => {
      try {
        await coll.insertMany(sent.map((i) => toDoc(items[i] as T)) as OptionalUnlessRequiredId<D>[], { ordered: false });
      } catch (e) {
        if (!(e instanceof MongoBulkWriteError) || e.writeConcernError !== undefined) throw e;
        const errors = Array.isArray(e.writeErrors) ? e.writeErrors : [e.writeErrors];
        if (errors.length === 0) throw e;
        for (const w of errors) {
          const i = sent[w.index] as number;
          const dup = w.code === 11000 || w.code === 11001;
          results[i] = new CofferError(dup ? ErrorCode.ALREADY_EXISTS : ErrorCode.METADATA, `${name(items[i] as T)}: ${dup ? 'already exists' : w.errmsg ?? `code ${w.code}`}`);
        }
      }
    });
    return results;
  }

  async getBlob(id: string): Promise<BlobRecord | null> {
    const doc = await this.#do('get blob', () => this.#blobs.findOne({ _id: id }));
    return doc === null ? null : d.blobFromDoc(doc);
  }

  async getBlobs(ids: readonly string[]): Promise<Array<BlobRecord | null>> {
    const distinct = c.distinctKeys(ids);
    if (distinct.length === 0) return [];
    const docs = await this.#do('get blobs', () => this.#blobs.find({ _id: { $in: distinct } }, { batchSize: distinct.length }).toArray());
    return c.inKeyOrder(ids, docs.map(d.blobFromDoc), (b) => b.id);
  }

  async updateBlob(id: string, fromState: BlobState, patch: c.BlobPatch, options: { strict?: boolean } = {}): Promise<BlobRecord> {
    const p = c.checkBlobPatch(fromState, patch);
    const set: Record<string, unknown> = { updatedAt: new Date() };
    for (const [k, v] of Object.entries(p)) set[k] = JSON_BLOB_FIELDS.has(k) ? JSON.stringify(v) : v;
    const doc = await this.#do(`update blob ${id}`, () =>
      this.#blobs.findOneAndUpdate({ _id: id, state: fromState }, { $set: set }, { returnDocument: 'after' }),
    );
    if (doc !== null) return d.blobFromDoc(doc);
    return c.resolveBlobCasMiss(id, fromState, p, await this.getBlob(id), options.strict);
  }

  async deleteBlob(id: string): Promise<boolean> {
    const res = await this.#do(`delete blob ${id}`, () => this.#blobs.deleteOne({ _id: id }));
    return res.deletedCount === 1;
  }

  async listBlobsByState(state: BlobState, updatedBefore: Date, limit: number): Promise<BlobRecord[]> {
    c.checkBlobState(state);
    const n = c.countLimit(limit);
    const docs = await this.#do('list blobs by state', () =>
      this.#blobs.find({ state, updatedAt: { $lt: updatedBefore } }).sort({ updatedAt: 1, _id: 1 }).limit(n).toArray(),
    );
    return docs.map(d.blobFromDoc);
  }

  async listBlobs(options: { after?: string; limit?: number } = {}): Promise<Page<BlobRecord>> {
    const limit = c.pageLimit(options.limit);
    const filter = options.after === undefined ? {} : { _id: { $gt: options.after } };
    const docs = await this.#do('list blobs', () => this.#blobs.find(filter).sort({ _id: 1 }).limit(limit + 1).toArray());
    return c.toPage(docs.map(d.blobFromDoc), limit, (b) => b.id);
  }

  // ---- upload sessions ----

  async putUploadChunk(chunk: UploadChunkRecord): Promise<void> {
    const { blobId, index, ...rest } = d.uploadChunkToDoc(chunk);
    await this.#upsert(`put upload chunk ${blobId}/${index}`, () =>
      this.#chunks.updateOne({ blobId, index }, { $set: rest }, { upsert: true }),
    );
  }

  async listUploadChunks(blobId: string): Promise<UploadChunkRecord[]> {
    const docs = await this.#do('list upload chunks', () => this.#chunks.find({ blobId }).sort({ index: 1 }).toArray());
    return docs.map(d.uploadChunkFromDoc);
  }

  async deleteUploadChunks(blobId: string): Promise<void> {
    // many documents, but one key: a crash half-way leaves a subset, and a retry finishes it
    await this.#do('delete upload chunks', () => this.#chunks.deleteMany({ blobId }));
  }

  // ---- users and grants ----

  async ensureUser(name: string, options: { createdAt?: Date } = {}): Promise<User> {
    const createdAt = c.checkUserCreatedAt(options);
    const doc = await this.#upsert(`ensure user ${name}`, () =>
      this.#users.findOneAndUpdate(
        { _id: name },
        { $setOnInsert: { createdAt, disabled: false } },
        { upsert: true, returnDocument: 'after' },
      ),
    );
    if (doc === null) throw new CofferError(ErrorCode.METADATA, `ensure user ${name}: the upsert returned nothing`);
    return d.userFromDoc(doc);
  }

  async getUser(name: string): Promise<User | null> {
    const doc = await this.#do('get user', () => this.#users.findOne({ _id: name }));
    return doc === null ? null : d.userFromDoc(doc);
  }

  async listUsers(): Promise<User[]> {
    const docs = await this.#do('list users', () => this.#users.find({}).sort({ _id: 1 }).toArray());
    return docs.map(d.userFromDoc);
  }

  async setUserDisabled(name: string, disabled: boolean): Promise<User> {
    return this.updateUser(name, { disabled });
  }

  async updateUser(name: string, patch: { disabled?: boolean; mac?: string | null }): Promise<User> {
    const p = c.checkUserPatch(patch);
    const doc = await this.#do(`update user ${name}`, () =>
      Object.keys(p).length === 0 ? this.#users.findOne({ _id: name }) : this.#users.findOneAndUpdate({ _id: name }, { $set: { ...p } }, { returnDocument: 'after' }),
    );
    if (doc === null) throw new CofferError(ErrorCode.NOT_FOUND, `user ${name} not found`);
    return d.userFromDoc(doc);
  }

  async putGrant(grant: Grant): Promise<void> {
    c.checkMac(grant.mac);
    const { nodeId, user, role, createdAt } = grant;
    await this.#upsert(`put grant ${nodeId}/${user}`, () =>
      this.#grants.updateOne({ nodeId, user }, { $set: { role, createdAt, mac: grant.mac ?? null } }, { upsert: true }),
    );
  }

  async deleteGrant(nodeId: string, user: string): Promise<void> {
    await this.#do('delete grant', () => this.#grants.deleteOne({ nodeId, user }));
  }

  async listGrants(nodeIds: string[]): Promise<Grant[]> {
    if (nodeIds.length === 0) return [];
    const docs = await this.#do('list grants', () =>
      this.#grants.find({ nodeId: { $in: nodeIds } }).sort({ nodeId: 1, user: 1 }).toArray(),
    );
    return docs.map(d.grantFromDoc);
  }

  // ---- audit log ----

  async appendAudit(entry: AuditEntry): Promise<void> {
    if (!Number.isSafeInteger(entry.seq) || entry.seq < 0) {
      throw new CofferError(ErrorCode.INVALID_ARGUMENT, `audit seq must be a non-negative integer, got ${entry.seq}`);
    }
    await this.#do(`append audit seq ${entry.seq}`, () => this.#audit.insertOne(d.auditToDoc(entry)));
  }

  async lastAudit(): Promise<AuditEntry | null> {
    const docs = await this.#do('last audit', () => this.#audit.find({}).sort({ _id: -1 }).limit(1).toArray());
    return docs[0] === undefined ? null : d.auditFromDoc(docs[0]);
  }

  async listAudit(afterSeq: number, limit: number): Promise<AuditEntry[]> {
    const n = c.countLimit(limit);
    const docs = await this.#do('list audit', () => this.#audit.find({ _id: { $gt: afterSeq } }).sort({ _id: 1 }).limit(n).toArray());
    return docs.map(d.auditFromDoc);
  }

  /** Idempotent; every later call fails with METADATA (not retryable). */
  async sync(): Promise<void> {
    // A journaled, majority-acknowledged write: it is durable only once the journal holds every write before it.
    await this.#do('sync', () =>
      this.#meta.updateOne({ _id: DURABILITY_KEY }, { $inc: { n: 1 } }, { upsert: true, writeConcern: { w: 'majority', j: true } }),
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#client.close();
  }
}
