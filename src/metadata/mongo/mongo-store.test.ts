// Runs the MetadataStore contract against MongoMetadataStore on the MongoDB-wire test server that
// test/setup/global.ts provides. Mandatory in CI: without a server this file fails there, and skips elsewhere.
import { randomBytes } from 'node:crypto';
import { MongoClient } from 'mongodb';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { runMetadataStoreContract } from '../contract.case.js';
import { openMetadataStore } from '../index.js';
import { MongoMetadataStore } from './index.js';

const uri = inject('mongoUri');
const base = `coffer_ms_${randomBytes(4).toString('hex')}`;
let n = 0;

if (uri === null) {
  const reason = inject('mongoUnavailableReason') ?? 'no MongoDB-wire test server';
  if (process.env.CI === 'true') {
    it('MongoDB contract suite (mandatory in CI)', () => {
      throw new Error(`the MongoDB contract suite must run in CI, but no server is available: ${reason}`);
    });
  } else {
    it.skip(`MongoDB contract suite skipped: ${reason}`, () => undefined);
  }
} else {
  // drops each test's database through its own client, so a test may close its store
  const admin = new MongoClient(uri, { serverSelectionTimeoutMS: 15_000 });
  afterAll(() => admin.close());
  runMetadataStoreContract('mongo', async () => {
    const dbName = `${base}_${++n}`;
    const store = await openMetadataStore({ kind: 'mongo', uri, dbName });
    return {
      store,
      cleanup: async () => {
        await store.close();
        await admin.db(dbName).dropDatabase();
      },
    };
  });

  describe('MongoMetadataStore errors', () => {
    it('reports an unreachable server as retryable METADATA', async () => {
      const e = await MongoMetadataStore.connect('mongodb://127.0.0.1:9/', 'x', { serverSelectionTimeoutMS: 300 }).catch((err: unknown) => err);
      expect(e).toMatchObject({ code: 'METADATA', retryable: true });
    });

    it('refuses a malformed URI as INVALID_ARGUMENT without repeating it', async () => {
      const e = await MongoMetadataStore.connect('mongo://admin:s3cret@db.example/x', 'x').catch((err: unknown) => err);
      expect(e).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('connection string') });
      expect((e as Error).message).not.toContain('s3cret');
    });

    it('takes serverSelectionTimeoutMS from the URI (the driver would let the built-in 15 s default win)', async () => {
      const started = Date.now();
      const e = await MongoMetadataStore.connect('mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300', 'x').catch((err: unknown) => err);
      expect(e).toMatchObject({ code: 'METADATA', retryable: true });
      expect(Date.now() - started).toBeLessThan(10_000); // 15 s when the URI's value is ignored
    });
  });
}
