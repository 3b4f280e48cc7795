// SQLite adapter of NetRecordStore: table net_records (migration 2), one statement per write.
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { CofferError, ErrorCode } from '../../errors.js';
import { sqliteError } from '../sqlite/sqlite-errors.js';
import { conflict, notFound } from './common.js';
import type { NetRecord, NetRecordKind, NetRecordStore } from './types.js';

export class SqliteNetRecordStore implements NetRecordStore {
  readonly #db: DatabaseSync;

  /** Opens the metadata database at `path` (already migrated: see openNetRecordStore). Throws METADATA. */
  static open(path: string, busyTimeoutMs = 5000): SqliteNetRecordStore {
    try {
      if (path !== ':memory:') {
        mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
        closeSync(openSync(path, 'a', 0o600));
      }
      const db = new DatabaseSync(path);
      try {
        db.exec('PRAGMA journal_mode = WAL');
        db.exec(`PRAGMA busy_timeout = ${Math.trunc(busyTimeoutMs)}`);
      } catch (e) {
        db.close();
        throw e;
      }
      return new SqliteNetRecordStore(db);
    } catch (e) {
      throw sqliteError(e, `open ${path}`);
    }
  }

  private constructor(db: DatabaseSync) {
    this.#db = db;
  }

  #do<T>(what: string, fn: () => T): T {
    if (!this.#db.isOpen) throw new CofferError(ErrorCode.METADATA, `${what}: the network store is closed`);
    try {
      return fn();
    } catch (e) {
      throw sqliteError(e, what);
    }
  }

  async get(kind: NetRecordKind, id: string): Promise<NetRecord | null> {
    const r = this.#do('get network record', () => this.#db.prepare('SELECT * FROM net_records WHERE kind = ? AND id = ?').get(kind, id));
    return (r as NetRecord | undefined) ?? null;
  }

  async list(kind: NetRecordKind, prefix = ''): Promise<NetRecord[]> {
    // ids are compared as BLOBs: byte order, and a prefix range without LIKE's wildcard and case rules
    return this.#do('list network records', () =>
      this.#db
        .prepare(`SELECT * FROM net_records WHERE kind = ? AND substr(id, 1, ?) = ? ORDER BY CAST(id AS BLOB)`)
        .all(kind, prefix.length, prefix) as unknown as NetRecord[],
    );
  }

  async insert(kind: NetRecordKind, id: string, body: string): Promise<NetRecord> {
    return this.#do(`insert ${kind} ${id}`, () =>
      this.#db.prepare('INSERT INTO net_records (kind, id, body, version, refs) VALUES (?, ?, ?, 1, 0) RETURNING *').all(kind, id, body)[0] as unknown as NetRecord,
    );
  }

  async update(kind: NetRecordKind, id: string, version: number, body: string): Promise<NetRecord> {
    const row = this.#do(`update ${kind} ${id}`, () =>
      this.#db.prepare('UPDATE net_records SET body = ?, version = version + 1 WHERE kind = ? AND id = ? AND version = ? RETURNING *').all(body, kind, id, version)[0],
    ) as NetRecord | undefined;
    if (row !== undefined) return row;
    const now = await this.get(kind, id);
    throw now === null ? notFound(kind, id) : conflict(kind, id, now);
  }

  async addRefs(kind: NetRecordKind, id: string, delta: number): Promise<NetRecord> {
    const row = this.#do(`reference ${kind} ${id}`, () =>
      this.#db.prepare('UPDATE net_records SET refs = refs + ? WHERE kind = ? AND id = ? AND refs + ? >= 0 RETURNING *').all(delta, kind, id, delta)[0],
    ) as NetRecord | undefined;
    if (row !== undefined) return row;
    const now = await this.get(kind, id);
    throw now === null ? notFound(kind, id) : conflict(kind, id, now);
  }

  async delete(kind: NetRecordKind, id: string, cond: { version?: number; unreferenced?: boolean } = {}): Promise<boolean> {
    const changes = this.#do(`delete ${kind} ${id}`, () =>
      this.#db
        .prepare('DELETE FROM net_records WHERE kind = ? AND id = ? AND (? IS NULL OR version = ?) AND (? = 0 OR refs = 0)')
        .run(kind, id, cond.version ?? null, cond.version ?? null, cond.unreferenced ? 1 : 0).changes,
    );
    if (changes === 1) return true;
    const now = await this.get(kind, id);
    if (now === null) return false;
    throw conflict(kind, id, now);
  }

  async close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close();
  }
}
