// The shape of one numbered metadata migration. Each migration carries one step per store; both steps must be
// idempotent (CREATE ... IF NOT EXISTS, createIndex), because a migration that half-ran before a crash is run
// again from the start. The runner is src/metadata/migrate.ts.
import type { DatabaseSync } from 'node:sqlite';
import type { Db } from 'mongodb';

export interface Migration {
  /** 1, 2, 3, ...: the schema version the store is at once this migration has run. */
  readonly version: number;
  /** Short description, for `coffer migrate` output. */
  readonly name: string;
  /** Runs inside one SQLite transaction together with the version stamp. Must be idempotent. */
  sqlite(db: DatabaseSync): void;
  /** Runs against the database; the version is stamped after it returns. Must be idempotent. */
  mongo(db: Db): Promise<void>;
}
