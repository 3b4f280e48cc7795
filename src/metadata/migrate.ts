// The metadata migration runner: reads the store's schema version, refuses a store newer than this code
// (SCHEMA_TOO_NEW), and applies pending migrations from migrations/ in order, stamping the version after each.
// Safe to run concurrently and after a crash: every migration step is idempotent and the stamp only goes up.
import { migrations, LATEST_SCHEMA_VERSION, type Migration } from '../../migrations/index.js';
import { CofferError, ErrorCode } from '../errors.js';
import type { MongoMetadataStore } from './mongo/index.js';
import { SqliteMetadataStore } from './sqlite/index.js';
import type { MetadataStore } from './types.js';

export interface MigrationStatus {
  /** The store's schema version (0 for a new store). */
  current: number;
  /** The newest version this code knows. */
  latest: number;
  /** Migrations still to run, in order. */
  pending: Array<{ version: number; name: string }>;
}

/** A store whose adapter can run migrations (the raw stores; decorators wrap them afterwards). */
export type MigratableStore = SqliteMetadataStore | MongoMetadataStore;

/** Throws SCHEMA_TOO_NEW when `current` is newer than this code supports. */
export function assertSchemaSupported(current: number, latest: number = LATEST_SCHEMA_VERSION): void {
  if (current > latest) {
    throw new CofferError(
      ErrorCode.SCHEMA_TOO_NEW,
      `metadata schema v${current} is newer than this Coffer (supports up to v${latest}): upgrade Coffer`,
      { details: { current, latest } },
    );
  }
}

/** The store's schema version and what is pending. Throws SCHEMA_TOO_NEW, METADATA. */
export async function migrationStatus(store: MetadataStore, list: readonly Migration[] = migrations): Promise<MigrationStatus> {
  const current = await store.getSchemaVersion();
  assertSchemaSupported(current, list.length);
  return {
    current,
    latest: list.length,
    pending: list.filter((m) => m.version > current).map((m) => ({ version: m.version, name: m.name })),
  };
}

/**
 * Applies every pending migration in order, recording the version after each; a no-op when up to date.
 * Returns the versions applied. Throws SCHEMA_TOO_NEW, METADATA.
 */
export async function migrateUp(store: MigratableStore, list: readonly Migration[] = migrations): Promise<number[]> {
  const status = await migrationStatus(store, list);
  const applied: number[] = [];
  for (const { version } of status.pending) {
    const m = list[version - 1];
    if (m === undefined || m.version !== version) {
      throw new CofferError(ErrorCode.INTERNAL, `migration list is out of order at v${version}`);
    }
    if (store instanceof SqliteMetadataStore) await store.runMigration(version, (db) => m.sqlite(db));
    else await store.runMigration(version, (db) => m.mongo(db));
    applied.push(version);
  }
  return applied;
}
