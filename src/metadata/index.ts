// Public entry of the metadata layer: the MetadataStore types, the two adapters, the migration runner, and
// openMetadataStore, which opens a store, refuses one newer than this code, and brings it up to date.
import { CofferError, ErrorCode } from '../errors.js';
import { assertSchemaSupported, migrateUp } from './migrate.js';
import type { MongoMetadataStore } from './mongo/index.js';
import { loadMongoAdapter, loadedMongoAdapter } from './mongo-adapter.js';
import { SqliteMetadataStore, type SqliteStoreOptions } from './sqlite/index.js';
import type { MetadataStore } from './types.js';

export * from './types.js';
export { SqliteMetadataStore, type SqliteStoreOptions } from './sqlite/index.js';
// the MongoDB adapter is loaded when a store is opened on MongoDB (./mongo-adapter.ts: the driver's start-up cost)
export type { MongoMetadataStore } from './mongo/index.js';
export { loadMongoAdapter } from './mongo-adapter.js';
export { migrationStatus, migrateUp, assertSchemaSupported, type MigrationStatus, type MigratableStore } from './migrate.js';
export { LATEST_SCHEMA_VERSION } from '../../migrations/index.js';

export type MetadataConfig =
  | ({ kind: 'sqlite'; path: string } & SqliteStoreOptions)
  | { kind: 'mongo'; uri: string; dbName?: string };

export interface OpenMetadataOptions {
  /** Apply pending migrations (default true). With false the store is returned as it is, for `coffer migrate`. */
  migrate?: boolean;
}

/**
 * Opens the configured store, checks its schema version and applies pending migrations unless told not to.
 * Throws SCHEMA_TOO_NEW (the store was written by a newer Coffer), METADATA (cannot open or migrate),
 * INVALID_ARGUMENT (unknown kind). The store is closed again when anything after opening fails.
 */
export async function openMetadataStore(config: MetadataConfig & { kind: 'sqlite' }, options?: OpenMetadataOptions): Promise<SqliteMetadataStore>;
export async function openMetadataStore(config: MetadataConfig & { kind: 'mongo' }, options?: OpenMetadataOptions): Promise<MongoMetadataStore>;
export async function openMetadataStore(config: MetadataConfig, options?: OpenMetadataOptions): Promise<SqliteMetadataStore | MongoMetadataStore>;
export async function openMetadataStore(config: MetadataConfig, options: OpenMetadataOptions = {}): Promise<SqliteMetadataStore | MongoMetadataStore> {
  let store: SqliteMetadataStore | MongoMetadataStore;
  if (config.kind === 'sqlite') {
    store = SqliteMetadataStore.open(config.path, { synchronous: config.synchronous, busyTimeoutMs: config.busyTimeoutMs });
  } else if (config.kind === 'mongo') {
    store = await (await loadMongoAdapter()).MongoMetadataStore.connect(config.uri, config.dbName);
  } else {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `unknown metadata store kind ${(config as { kind: unknown }).kind}`);
  }
  try {
    assertSchemaSupported(await store.getSchemaVersion());
    if (options.migrate !== false) await migrateUp(store);
    return store;
  } catch (e) {
    await store.close().catch(() => undefined);
    throw e;
  }
}

/** Narrowing helper for code holding a MetadataStore that needs the adapter (e.g. `coffer migrate`). */
export function isMigratable(store: MetadataStore): store is SqliteMetadataStore | MongoMetadataStore {
  // outside tests every MongoMetadataStore is made through loadMongoAdapter() (openMetadataStore, restore's wipe):
  // none exists while it has not run; a test that imports ./mongo/index.js itself calls loadMongoAdapter() first
  const mongo = loadedMongoAdapter();
  return store instanceof SqliteMetadataStore || (mongo !== null && store instanceof mongo.MongoMetadataStore);
}
