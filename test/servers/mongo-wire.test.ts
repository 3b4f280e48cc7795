// Proves the MongoDB-wire test server (or the real MongoDB in COFFER_TEST_MONGODB_URI) with the official
// driver: every operation the metadata adapter relies on, including single-document atomicity under
// concurrency. Known gaps are pinned separately in mongo-wire-gaps.test.ts.
import { randomBytes } from 'node:crypto';
import { Binary, MongoClient, MongoServerError, type Collection, type Db, type Document } from 'mongodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

const uri = inject('mongoUri');
if (!uri) console.warn(`skipping MongoDB-wire tests: ${inject('mongoUnavailableReason')}`);

describe.skipIf(!uri)('MongoDB-wire server: operations the metadata adapter relies on', () => {
  let client: MongoClient;
  let db: Db;
  let n = 0;
  const fresh = <T extends Document = Document>(): Collection<T> => db.collection<T>(`c${n++}`);

  beforeAll(async () => {
    client = new MongoClient(uri as string, { serverSelectionTimeoutMS: 10_000, maxPoolSize: 20 });
    await client.connect();
    db = client.db(`coffer_wire_${randomBytes(4).toString('hex')}`);
  });
  afterAll(async () => {
    await db?.dropDatabase();
    await client?.close();
  });

  it('reports a wire version the driver accepts (driver v7 needs >= 9)', async () => {
    const hello = await db.admin().command({ hello: 1 });
    expect(hello.maxWireVersion).toBeGreaterThanOrEqual(9);
  });

  it('creates unique and compound indexes and lists them', async () => {
    const col = fresh();
    expect(await col.createIndex({ path: 1 }, { unique: true, name: 'path_unique' })).toBe('path_unique');
    expect(await col.createIndex({ parent: 1, name: 1 }, { unique: true })).toBe('parent_1_name_1');
    expect(await col.createIndex({ owner: 1, createdAt: -1 })).toBe('owner_1_createdAt_-1');
    const byName = new Map((await col.listIndexes().toArray()).map((i) => [i.name as string, i]));
    expect([...byName.keys()].sort()).toEqual(['_id_', 'owner_1_createdAt_-1', 'parent_1_name_1', 'path_unique']);
    expect(byName.get('path_unique')).toMatchObject({ key: { path: 1 }, unique: true });
    expect(byName.get('parent_1_name_1')).toMatchObject({ key: { parent: 1, name: 1 }, unique: true });
    expect(byName.get('owner_1_createdAt_-1')?.unique ?? false).toBe(false);
    // creating the same index again is a no-op
    expect(await col.createIndex({ path: 1 }, { unique: true, name: 'path_unique' })).toBe('path_unique');
  });

  it('rejects duplicate keys with code 11000 on insert, update, findOneAndUpdate and upsert', async () => {
    const col = fresh<{ _id: string; k: string; a?: number; b?: number }>();
    await col.createIndex({ k: 1 }, { unique: true });
    await col.createIndex({ a: 1, b: 1 }, { unique: true });
    await col.insertMany([
      { _id: 'x', k: 'one', a: 1, b: 1 },
      { _id: 'y', k: 'two', a: 1, b: 2 },
    ]);
    const code = async (p: Promise<unknown>): Promise<unknown> => p.then(() => 'no error', (e: unknown) => (e instanceof MongoServerError ? e.code : e));
    expect(await code(col.insertOne({ _id: 'z', k: 'one', a: 9, b: 9 }))).toBe(11000);
    expect(await code(col.insertOne({ _id: 'x', k: 'new', a: 8, b: 8 }))).toBe(11000);
    expect(await code(col.insertOne({ _id: 'z', k: 'three', a: 1, b: 2 }))).toBe(11000);
    expect(await code(col.updateOne({ _id: 'y' }, { $set: { k: 'one' } }))).toBe(11000);
    expect(await code(col.findOneAndUpdate({ _id: 'y' }, { $set: { k: 'one' } }))).toBe(11000);
    expect(await code(col.updateOne({ _id: 'w' }, { $set: { k: 'one', a: 5, b: 5 } }, { upsert: true }))).toBe(11000);
    // nothing changed
    expect(await col.find({}).sort({ _id: 1 }).toArray()).toEqual([
      { _id: 'x', k: 'one', a: 1, b: 1 },
      { _id: 'y', k: 'two', a: 1, b: 2 },
    ]);
  });

  it('findOneAndUpdate is a compare-and-set: returns the new document on a hit, null on a miss', async () => {
    const col = fresh<{ _id: string; version: number; state: string }>();
    await col.insertOne({ _id: 'u1', version: 1, state: 'open' });
    const hit = await col.findOneAndUpdate({ _id: 'u1', version: 1 }, { $set: { state: 'sealed' }, $inc: { version: 1 } }, { returnDocument: 'after' });
    expect(hit).toEqual({ _id: 'u1', version: 2, state: 'sealed' });
    const miss = await col.findOneAndUpdate({ _id: 'u1', version: 1 }, { $set: { state: 'lost' } }, { returnDocument: 'after' });
    expect(miss).toBeNull();
    const before = await col.findOneAndUpdate({ _id: 'u1' }, { $set: { state: 'x' } }, { returnDocument: 'before' });
    expect(before?.state).toBe('sealed');
  });

  it('single-document writes stay atomic under concurrency (no lost update, one CAS winner)', async () => {
    const col = fresh<{ _id: string; n: number; version: number; by?: number }>();
    await col.insertOne({ _id: 'ctr', n: 0, version: 0 });
    await Promise.all(Array.from({ length: 40 }, () => col.updateOne({ _id: 'ctr' }, { $inc: { n: 1 } })));
    expect((await col.findOne({ _id: 'ctr' }))?.n).toBe(40);
    const results = await Promise.all(
      Array.from({ length: 16 }, (_, i) => col.findOneAndUpdate({ _id: 'ctr', version: 0 }, { $set: { by: i }, $inc: { version: 1 } }, { returnDocument: 'after' })),
    );
    const winners = results.filter((r) => r !== null);
    expect(winners).toHaveLength(1);
    expect(await col.findOne({ _id: 'ctr' })).toEqual({ _id: 'ctr', n: 40, version: 1, by: winners[0]?.by });
  });

  it('upserts insert once, then update; $setOnInsert applies only on insert', async () => {
    const col = fresh<{ _id: string; refs?: number; created?: string }>();
    const first = await col.updateOne({ _id: 'b1' }, { $inc: { refs: 1 }, $setOnInsert: { created: 'first' } }, { upsert: true });
    expect(first).toMatchObject({ upsertedCount: 1, upsertedId: 'b1', matchedCount: 0 });
    const second = await col.updateOne({ _id: 'b1' }, { $inc: { refs: 1 }, $setOnInsert: { created: 'second' } }, { upsert: true });
    expect(second).toMatchObject({ upsertedCount: 0, matchedCount: 1, modifiedCount: 1 });
    expect(await col.findOne({ _id: 'b1' })).toEqual({ _id: 'b1', refs: 2, created: 'first' });
    const race = await Promise.allSettled(Array.from({ length: 8 }, () => col.updateOne({ _id: 'b2' }, { $setOnInsert: { created: 'race' } }, { upsert: true })));
    const inserted = race.map((r) => (r.status === 'fulfilled' ? r.value.upsertedCount : 0)).reduce((a, b) => a + b, 0);
    expect(inserted).toBe(1);
    for (const r of race) if (r.status === 'rejected') expect((r.reason as MongoServerError).code).toBe(11000);
    expect(await col.countDocuments({ _id: 'b2' })).toBe(1);
  });

  it('deletes one and many, reporting counts', async () => {
    const col = fresh<{ _id: number; g: string }>();
    await col.insertMany(Array.from({ length: 10 }, (_, i) => ({ _id: i, g: i < 6 ? 'a' : 'b' })));
    expect((await col.deleteOne({ g: 'a' })).deletedCount).toBe(1);
    expect((await col.deleteOne({ _id: 99 })).deletedCount).toBe(0);
    expect((await col.deleteMany({ g: 'a' })).deletedCount).toBe(5);
    expect((await col.deleteMany({ _id: { $gte: 8 } })).deletedCount).toBe(2);
    expect(await col.countDocuments({})).toBe(2);
  });

  it('finds by string range with sort, skip and limit (byte order), across cursor batches', async () => {
    const col = fresh<{ _id: string; path: string; size: number }>();
    await col.createIndex({ path: 1 }, { unique: true });
    const paths = Array.from({ length: 150 }, (_, i) => `/d/${String(i).padStart(3, '0')}`);
    await col.insertMany([...paths.map((path, i) => ({ _id: `f${i}`, path, size: i })), { _id: 'o1', path: '/d0', size: 0 }, { _id: 'o2', path: '/c/x', size: 0 }]);
    const page = await col.find({ path: { $gt: '/d/', $lt: '/d0' } }).sort({ path: 1 }).limit(3).toArray();
    expect(page.map((d) => d.path)).toEqual(['/d/000', '/d/001', '/d/002']);
    const after = await col.find({ path: { $gt: '/d/100', $lt: '/d0' } }).sort({ path: -1 }).skip(1).limit(2).toArray();
    expect(after.map((d) => d.path)).toEqual(['/d/148', '/d/147']);
    expect(await col.find({ path: { $gte: '/d/', $lt: '/d0' } }, { batchSize: 20 }).toArray()).toHaveLength(150);
    expect(await col.countDocuments({ path: { $gte: '/d/', $lt: '/d0' } })).toBe(150);
    expect(await col.countDocuments({ size: { $gte: 100 } })).toBe(50);
    expect(await col.countDocuments({})).toBe(152);
    // byte-wise string order: upper case before lower case before non-ASCII
    const s = fresh<{ _id: string }>();
    await s.insertMany(['é', 'b', 'B', 'a', 'Z'].map((_id) => ({ _id })));
    expect((await s.find({}).sort({ _id: 1 }).toArray()).map((d) => d._id)).toEqual(['B', 'Z', 'a', 'b', 'é']);
  });

  it('round-trips Date, Binary, nested objects, arrays, null and 64-bit integers', async () => {
    const col = fresh<{ _id: string; [field: string]: unknown }>();
    const when = new Date('2024-02-29T12:34:56.789Z');
    const bytes = randomBytes(64);
    const doc = {
      _id: 'rt',
      when,
      data: new Binary(bytes),
      uuid: new Binary(randomBytes(16), Binary.SUBTYPE_UUID),
      nested: { a: { b: [1, { c: 'x' }], d: null }, empty: {} },
      big: 2 ** 53 - 1,
      text: 'ünïcødé ✓',
    };
    await col.insertOne(doc);
    const back = await col.findOne({ _id: 'rt' });
    expect(back?.when).toBeInstanceOf(Date);
    expect((back?.when as Date).toISOString()).toBe(when.toISOString());
    expect(Buffer.from((back?.data as Binary).buffer).equals(bytes)).toBe(true);
    expect((back?.uuid as Binary).sub_type).toBe(Binary.SUBTYPE_UUID);
    expect(back?.nested).toEqual(doc.nested);
    expect(back?.big).toBe(2 ** 53 - 1);
    expect(back?.text).toBe(doc.text);
    // query by nested path, Date range and Binary equality; update a nested path
    expect(await col.countDocuments({ 'nested.a.b.1.c': 'x' })).toBe(1);
    expect(await col.countDocuments({ when: { $gte: new Date('2024-01-01'), $lt: new Date('2025-01-01') } })).toBe(1);
    expect(await col.countDocuments({ data: new Binary(bytes) })).toBe(1);
    await col.updateOne({ _id: 'rt' }, { $set: { 'nested.a.e': 5 }, $unset: { text: '' } });
    const updated = await col.findOne({ _id: 'rt' }, { projection: { nested: 1, text: 1 } });
    expect(updated).toEqual({ _id: 'rt', nested: { a: { b: [1, { c: 'x' }], d: null, e: 5 }, empty: {} } });
  });

  it('supports projections, $in/$exists/$or, $push/$pull/$addToSet, replaceOne, bulkWrite and a simple aggregate', async () => {
    const col = fresh<{ _id: string; g?: number; tags?: string[]; v?: number }>();
    await col.insertMany([
      { _id: 'a', g: 1, tags: ['x'] },
      { _id: 'b', g: 2 },
      { _id: 'c', g: 1 },
    ]);
    expect(await col.findOne({ _id: 'a' }, { projection: { _id: 0, g: 1 } })).toEqual({ g: 1 });
    expect(await col.countDocuments({ $or: [{ _id: { $in: ['a', 'b'] } }, { tags: { $exists: true } }] })).toBe(2);
    await col.updateOne({ _id: 'a' }, { $push: { tags: 'y' } });
    await col.updateOne({ _id: 'a' }, { $addToSet: { tags: 'x' } });
    expect((await col.findOne({ _id: 'a' }))?.tags).toEqual(['x', 'y']);
    await col.updateOne({ _id: 'a' }, { $pull: { tags: 'x' } });
    expect((await col.findOne({ _id: 'a' }))?.tags).toEqual(['y']);
    expect((await col.replaceOne({ _id: 'b' }, { v: 7 })).modifiedCount).toBe(1);
    expect(await col.findOne({ _id: 'b' })).toEqual({ _id: 'b', v: 7 });
    const bulk = await col.bulkWrite([
      { insertOne: { document: { _id: 'd', g: 3 } } },
      { updateOne: { filter: { _id: 'c' }, update: { $set: { g: 3 } } } },
      { deleteOne: { filter: { _id: 'a' } } },
    ]);
    expect(bulk).toMatchObject({ insertedCount: 1, modifiedCount: 1, deletedCount: 1 });
    const groups = await col.aggregate([{ $match: { g: { $exists: true } } }, { $group: { _id: '$g', n: { $sum: 1 } } }, { $sort: { _id: 1 } }]).toArray();
    expect(groups).toEqual([{ _id: 3, n: 2 }]);
  });
});
