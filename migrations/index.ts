// Every metadata migration, in order. Add a migration by writing NNN-name.ts (export a Migration) and
// appending it here; never edit or renumber one that has shipped (docs/metadata.md, "Migrations").
import { migration001 } from './001-initial.js';
import { migration002 } from './002-network.js';
import type { Migration } from './types.js';

export type { Migration } from './types.js';

export const migrations: readonly Migration[] = Object.freeze([migration001, migration002]);

/** The schema version this code writes and understands. */
export const LATEST_SCHEMA_VERSION: number = migrations.length;

// versions must run 1, 2, 3, ... with no gap: the runner relies on migrations[v - 1].version === v
migrations.forEach((m, i) => {
  if (m.version !== i + 1) throw new Error(`migrations/index.ts: migration #${i + 1} has version ${m.version}`);
});
