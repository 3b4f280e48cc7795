// MongoDB adapter of NetRecordStore: collection netRecords (migration 2), _id = "<kind>/<id>", one document
// per write; compare-and-set in the write's own filter.
import { type Collection, MongoClient, type MongoClientOptions } from 'mongodb';
import { CofferError, ErrorCode } from '../../errors.js';
import { mongoError } from '../mongo/mongo-errors.js';
import { conflict, notFound } from './common.js';
import type { NetRecord, NetRecordKind, NetRecordStore } from './types.js';

interface NetDoc {
  _id: string;
  kind: NetRecordKind;
  id: string;
  body: string;
  version: number;
  refs: number;
}

const toRecord = (d: NetDoc): NetRecord => ({ kind: d.kind, id: d.id, body: d.body, version: d.version, refs: d.refs });
const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export class MongoNetRecordStore implements NetRecordStore {
  readonly #client: MongoClient;
  readonly #col: Collection<NetDoc>;
  #closed = false;

  /** Connects and uses database `dbName` (already migrated: see openNetRecordStore). Throws METADATA. */
  static async connect(uri: string, dbName: string, options: MongoClientOptions = {}): Promise<MongoNetRecordStore> {
    const defaults: MongoClientOptions = /[?&]serverSelectionTimeoutMS=/i.test(uri) ? {} : { serverSelectionTimeoutMS: 15_000 };
    const client = new MongoClient(uri, { ...defaults, ...options });
    try {
      await client.connect();
    } catch (e) {
      await client.close().catch(() => undefined);
      throw mongoError(e, 'connect to MongoDB');
    }
    return new MongoNetRecordStore(client, client.db(dbName).collection<NetDoc>('netRecords'));
  }

  private constructor(client: MongoClient, col: Collection<NetDoc>) {
    this.#client = client;
    this.#col = col;
  }

  async #do<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new CofferError(ErrorCode.METADATA, `${what}: the network store is closed`);
    try {
      return await fn();
    } catch (e) {
      throw mongoError(e, what);
    }
  }

  async get(kind: NetRecordKind, id: string): Promise<NetRecord | null> {
    const d = await this.#do('get network record', () => this.#col.findOne({ _id: `${kind}/${id}` }));
    return d === null ? null : toRecord(d);
  }

  async list(kind: NetRecordKind, prefix = ''): Promise<NetRecord[]> {
    const filter = prefix ? { kind, id: { $regex: `^${escapeRegex(prefix)}` } } : { kind };
    const docs = await this.#do('list network records', () => this.#col.find(filter).sort({ id: 1 }).toArray());
    return docs.map(toRecord);
  }

  async insert(kind: NetRecordKind, id: string, body: string): Promise<NetRecord> {
    const doc: NetDoc = { _id: `${kind}/${id}`, kind, id, body, version: 1, refs: 0 };
    await this.#do(`insert ${kind} ${id}`, () => this.#col.insertOne(doc));
    return toRecord(doc);
  }

  async update(kind: NetRecordKind, id: string, version: number, body: string): Promise<NetRecord> {
    const d = await this.#do(`update ${kind} ${id}`, () =>
      this.#col.findOneAndUpdate({ _id: `${kind}/${id}`, version }, { $set: { body }, $inc: { version: 1 } }, { returnDocument: 'after' }),
    );
    if (d !== null) return toRecord(d);
    const now = await this.get(kind, id);
    throw now === null ? notFound(kind, id) : conflict(kind, id, now);
  }

  async addRefs(kind: NetRecordKind, id: string, delta: number): Promise<NetRecord> {
    const filter = delta < 0 ? { _id: `${kind}/${id}`, refs: { $gte: -delta } } : { _id: `${kind}/${id}` };
    const d = await this.#do(`reference ${kind} ${id}`, () => this.#col.findOneAndUpdate(filter, { $inc: { refs: delta } }, { returnDocument: 'after' }));
    if (d !== null) return toRecord(d);
    const now = await this.get(kind, id);
    throw now === null ? notFound(kind, id) : conflict(kind, id, now);
  }

  async delete(kind: NetRecordKind, id: string, cond: { version?: number; unreferenced?: boolean } = {}): Promise<boolean> {
    const filter: Record<string, unknown> = { _id: `${kind}/${id}` };
    if (cond.version !== undefined) filter.version = cond.version;
    if (cond.unreferenced) filter.refs = 0;
    const r = await this.#do(`delete ${kind} ${id}`, () => this.#col.deleteOne(filter));
    if (r.deletedCount === 1) return true;
    const now = await this.get(kind, id);
    if (now === null) return false;
    throw conflict(kind, id, now);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#client.close();
  }
}
