// Public entry of the network record store: opens the adapter for a metadata config, after bringing the
// metadata schema up to date (migration 2 creates the records' table / collection).
import type { MetadataConfig } from '../index.js';
import { openMetadataStore } from '../index.js';
import { SqliteNetRecordStore } from './sqlite.js';
import type { NetRecordStore } from './types.js';

export type { NetRecord, NetRecordKind, NetRecordStore } from './types.js';
export { SqliteNetRecordStore } from './sqlite.js';
// loaded when a store is opened on MongoDB (the driver costs every command ~0.1 s of start-up; ../mongo-adapter.ts)
export type { MongoNetRecordStore } from './mongo.js';

/**
 * Migrates the configured metadata store (SCHEMA_TOO_NEW when it is newer than this code) and opens the
 * network records on the same database. Throws METADATA when the database cannot be reached.
 */
export async function openNetRecordStore(config: MetadataConfig): Promise<NetRecordStore> {
  const meta = await openMetadataStore(config);
  try {
    if (config.kind === 'sqlite') return SqliteNetRecordStore.open(config.path, config.busyTimeoutMs);
    const dbName = (meta as { databaseName?: string }).databaseName ?? 'coffer';
    const { MongoNetRecordStore } = await import('./mongo.js');
    return await MongoNetRecordStore.connect(config.uri, dbName);
  } finally {
    await meta.close();
  }
}
