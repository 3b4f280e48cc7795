// Pins the known gaps of the FerretDB-based test server against real MongoDB, so docs/test-servers.md
// stays true: each case below FAILS (or behaves differently) on the harness. If a FerretDB upgrade closes
// a gap, its case fails here and the doc's list must shrink. Skipped against a real MongoDB.
import { randomBytes } from 'node:crypto';
import { Decimal128, MongoClient, MongoServerError, type Db } from 'mongodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

const uri = inject('mongoUri');

/** Operations the harness rejects (MongoDB accepts them all, transactions and change streams on a replica set). */
const rejected: Array<[string, (db: Db) => Promise<unknown>]> = [
  ['partial index (partialFilterExpression)', (db) => db.collection('g').createIndex({ z: 1 }, { partialFilterExpression: { z: { $exists: true } } })],
  ['TTL index (expireAfterSeconds)', (db) => db.collection('g').createIndex({ at: 1 }, { expireAfterSeconds: 60 })],
  ['index with collation', (db) => db.collection('g').createIndex({ c: 1 }, { collation: { locale: 'en', strength: 2 } })],
  ['find with collation', (db) => db.collection('g').find({ c: 'A' }).collation({ locale: 'en', strength: 2 }).toArray()],
  ['text index', (db) => db.collection('g').createIndex({ t: 'text' })],
  ['hashed index', (db) => db.collection('g').createIndex({ h: 'hashed' })],
  ['findOneAndUpdate with projection', (db) => db.collection('g').findOneAndUpdate({}, { $set: { a: 1 } }, { projection: { a: 1 } })],
  ['update with arrayFilters', (db) => db.collection('g').updateOne({}, { $set: { 'arr.$[e]': 1 } }, { arrayFilters: [{ e: 0 }] })],
  ['pipeline-style update', (db) => db.collection('g').updateOne({}, [{ $set: { a: 1 } }])],
  ['$expr in a filter', (db) => db.collection('g').countDocuments({ $expr: { $eq: ['$a', 1] } })],
  ['aggregate $lookup', (db) => db.collection('g').aggregate([{ $lookup: { from: 'h', localField: 'a', foreignField: 'a', as: 'j' } }]).toArray()],
  ['aggregate $facet', (db) => db.collection('g').aggregate([{ $facet: { x: [{ $limit: 1 }] } }]).toArray()],
  ['collection validator ($jsonSchema)', (db) => db.createCollection('validated', { validator: { $jsonSchema: { bsonType: 'object' } } })],
  ['field name containing a dot', (db) => db.collection('g').insertOne({ m: { 'a.b': 1 } })],
];

describe.skipIf(!uri)('MongoDB-wire test server: known gaps vs MongoDB (harness only)', () => {
  let client: MongoClient;
  let db: Db;
  let isHarness = false;

  beforeAll(async () => {
    client = new MongoClient(uri as string, { serverSelectionTimeoutMS: 10_000 });
    await client.connect();
    db = client.db(`coffer_gaps_${randomBytes(4).toString('hex')}`);
    isHarness = 'ferretdbVersion' in (await db.admin().command({ buildInfo: 1 }));
    if (isHarness) await db.collection('g').insertOne({ a: 0, arr: [0] });
  });
  afterAll(async () => {
    await db?.dropDatabase();
    await client?.close();
  });

  it.each(rejected)('rejects: %s', async (_name, run) => {
    if (!isHarness) return;
    await expect(run(db)).rejects.toBeInstanceOf(Error);
  });

  it('rejects multi-document transactions', async () => {
    if (!isHarness) return;
    const session = client.startSession();
    try {
      await expect(session.withTransaction(() => db.collection('g').insertOne({ tx: 1 }, { session }))).rejects.toBeInstanceOf(MongoServerError);
    } finally {
      await session.endSession();
    }
  });

  it('rejects change streams', async () => {
    if (!isHarness) return;
    const stream = db.collection('g').watch();
    await expect(stream.tryNext()).rejects.toBeInstanceOf(MongoServerError);
    await stream.close();
  });

  it('drops the connection on Decimal128 values', async () => {
    if (!isHarness) return;
    const own = new MongoClient(uri as string, { serverSelectionTimeoutMS: 10_000 });
    try {
      await expect(own.db(db.databaseName).collection('d').insertOne({ d: Decimal128.fromString('1.1') })).rejects.toThrow(/closed/);
    } finally {
      await own.close();
    }
  });

  it('lets a unique index hold many documents that lack the field (MongoDB: second one is a duplicate null)', async () => {
    if (!isHarness) return;
    const col = db.collection('u');
    await col.createIndex({ k: 1 }, { unique: true });
    await col.insertOne({ n: 1 });
    await col.insertOne({ n: 2 });
    expect(await col.countDocuments({})).toBe(2);
    await col.insertOne({ n: 3, k: null });
    await expect(col.insertOne({ n: 4, k: null })).rejects.toMatchObject({ code: 11000 });
  });

  it('gives duplicate-key errors without keyPattern/keyValue', async () => {
    if (!isHarness) return;
    const col = db.collection('kv');
    await col.createIndex({ k: 1 }, { unique: true });
    await col.insertOne({ k: 1 });
    const err = (await col.insertOne({ k: 1 }).catch((e: unknown) => e)) as MongoServerError;
    expect(err.code).toBe(11000);
    expect(err.keyValue).toBeUndefined();
    expect(err.keyPattern).toBeUndefined();
  });

  it('silently ignores changed options when an index of the same name exists (MongoDB: error 86)', async () => {
    if (!isHarness) return;
    const col = db.collection('io');
    await col.createIndex({ q: 1 });
    expect(await col.createIndex({ q: 1 }, { unique: true, name: 'q_1' })).toBe('q_1');
    await col.insertMany([{ q: 1 }, { q: 1 }]); // the index did not become unique
  });
});
