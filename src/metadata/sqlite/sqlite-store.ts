// SqliteMetadataStore: the embedded MetadataStore on Node's built-in node:sqlite (no native module of our own:
// docs/metadata.md says why). Every method is one SQL statement in its
// own autocommit transaction (reads may add a second read to tell NOT_FOUND from CONFLICT), so it keeps the
// same single-record rules as the MongoDB adapter. Durability choice (WAL + synchronous=NORMAL by default) is
// explained in docs/metadata.md.
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import { CofferError, ErrorCode } from '../../errors.js';
import * as c from '../common.js';
import type {
  AuditEntry, BlobRecord, BlobState, Grant, MetadataStore, Page, TreeNode, UploadChunkRecord, User,
} from '../types.js';
import * as rows from './sqlite-rows.js';
import { sqliteError } from './sqlite-errors.js';

export interface SqliteStoreOptions {
  /**
   * 'normal' (default): commits survive a process crash; an OS crash or power loss may roll back the last
   * commits but never corrupts the file. 'full': every commit is fsynced before it returns (~4x slower).
   */
  synchronous?: 'normal' | 'full';
  /** How long a writer waits for another process's lock before SQLITE_BUSY (retryable METADATA). Default 5000. */
  busyTimeoutMs?: number;
}

const NODE_COLUMNS: Record<string, string> = { parentId: 'parent_id', name: 'name', blobId: 'blob_id', size: 'size', owner: 'owner', mac: 'mac' };
const BLOB_COLUMNS: Record<string, string> = {
  state: 'state', size: 'size', chunkCount: 'chunk_count', chunkSha256: 'chunk_sha256',
  keyRecord: 'key_record', keyGeneration: 'key_generation', attrs: 'attrs', mac: 'mac',
};
const JSON_BLOB_FIELDS = new Set(['chunkSha256', 'keyRecord', 'attrs']);
/** The most keys one IN (…) of getChildren / getBlobs binds, and the sizes a chunk is padded to. */
const IN_CHUNK = 500;
const IN_SIZES = [8, 64, IN_CHUNK];
const IN_PLACEHOLDERS: Readonly<Record<number, string>> = Object.fromEntries(IN_SIZES.map((n) => [n, Array(n).fill('?').join(', ')]));

/**
 * The row of a writing statement with `RETURNING` (one row at most), run to completion. An autocommit write
 * yields its row before it commits; `.get()` stops there and never sees a COMMIT that fails (SQLITE_FULL when
 * the WAL cannot grow), so the caller would be told of a change the database rolled back. `.all()` steps to
 * SQLITE_DONE and throws that failure.
 */
function returning(stmt: StatementSync, ...params: unknown[]): unknown {
  return stmt.all(...(params as SQLInputValue[]))[0];
}

export class SqliteMetadataStore implements MetadataStore {
  readonly kind = 'sqlite' as const;
  readonly #db: DatabaseSync;
  /** Prepared statements by SQL text, prepared on first use (tables may not exist before migrations). */
  readonly #stmts = new Map<string, StatementSync>();
  /** The same for statements whose rows come back as arrays (the hot node reads: see nodeFromArray). */
  readonly #arrayStmts = new Map<string, StatementSync>();

  /**
   * Opens (creating if needed, mode 0600) the database file at `path`. Does not migrate: see
   * openMetadataStore in src/metadata/index.ts. Throws METADATA if the file cannot be opened.
   */
  static open(path: string, options: SqliteStoreOptions = {}): SqliteMetadataStore {
    try {
      if (path !== ':memory:') {
        mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
        closeSync(openSync(path, 'a', 0o600)); // SQLite gives -wal and -shm the main file's mode
      }
      // node:sqlite's defaults differ from better-sqlite3's in two ways that matter here: foreign keys are
      // enforced unless turned off (we turn them off below), and double-quoted strings are not literals (kept).
      const db = new DatabaseSync(path);
      try {
        db.exec('PRAGMA journal_mode = WAL');
        db.exec(`PRAGMA synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
        db.exec(`PRAGMA busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 5000)}`);
        db.exec('PRAGMA foreign_keys = OFF'); // no cross-record constraints: the same rules as MongoDB
      } catch (e) {
        db.close();
        throw e;
      }
      return new SqliteMetadataStore(db);
    } catch (e) {
      throw sqliteError(e, `open ${path}`);
    }
  }

  private constructor(db: DatabaseSync) {
    this.#db = db;
  }

  #stmt(sql: string): StatementSync {
    let s = this.#stmts.get(sql);
    if (s === undefined) {
      s = this.#db.prepare(sql);
      this.#stmts.set(sql, s);
    }
    return s;
  }

  #arrays(sql: string): StatementSync {
    let s = this.#arrayStmts.get(sql);
    if (s === undefined) {
      s = this.#db.prepare(sql);
      s.setReturnArrays(true);
      this.#arrayStmts.set(sql, s);
    }
    return s;
  }

  /** Runs `fn`, turning driver errors into CofferError (see sqlite-errors.ts). */
  #do<T>(what: string, fn: () => T): T {
    if (!this.#db.isOpen) throw new CofferError(ErrorCode.METADATA, `${what}: the metadata store is closed`);
    try {
      return fn();
    } catch (e) {
      throw sqliteError(e, what);
    }
  }

  // ---- schema and migrations (adapter-specific: not on MetadataStore) ----

  async getSchemaVersion(): Promise<number> {
    return this.#do('read schema version', () => {
      const hasMeta = this.#stmt(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'`).get();
      if (hasMeta === undefined) return 0;
      const row = this.#stmt(`SELECT value FROM meta WHERE key = 'schema_version'`).get() as { value: string } | undefined;
      return row === undefined ? 0 : Number(row.value);
    });
  }

  /**
   * Runs one migration step and stamps `version` in the same transaction (SQLite DDL is transactional), so a
   * crash leaves either both or neither. The stamp never lowers the version. Throws METADATA.
   */
  async runMigration(version: number, step: (db: DatabaseSync) => void): Promise<void> {
    this.#do(`migrate to v${version}`, () => {
      // BEGIN IMMEDIATE: take the write lock first, so two processes migrating at once wait (busy_timeout)
      // instead of failing half-way with SQLITE_BUSY on lock upgrade
      this.#db.exec('BEGIN IMMEDIATE');
      try {
        step(this.#db);
        this.#db.exec(`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID`);
        this.#db
          .prepare(
            `INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE
             SET value = excluded.value WHERE CAST(meta.value AS INTEGER) < CAST(excluded.value AS INTEGER)`,
          )
          .run(String(version));
        this.#db.exec('COMMIT');
      } catch (e) {
        if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
        throw e;
      }
    });
  }

  // ---- tree ----

  async getNode(id: string): Promise<TreeNode | null> {
    const r = this.#do('get node', () => this.#arrays(`SELECT ${rows.NODE_COLUMNS_IN_ORDER} FROM nodes WHERE id = ?`).get(id)) as unknown[] | undefined;
    return r === undefined ? null : rows.nodeFromArray(r);
  }

  async getChild(parentId: string, name: string): Promise<TreeNode | null> {
    const r = this.#do('get child', () =>
      this.#arrays(`SELECT ${rows.NODE_COLUMNS_IN_ORDER} FROM nodes WHERE parent_id = ? AND name = ?`).get(parentId, name),
    ) as unknown[] | undefined;
    return r === undefined ? null : rows.nodeFromArray(r);
  }

  async getChildren(parentId: string, names: readonly string[]): Promise<Array<TreeNode | null>> {
    const found = this.#do('get children', () =>
      this.#inChunks(c.distinctKeys(names), (n) => this.#arrays(`SELECT ${rows.NODE_COLUMNS_IN_ORDER} FROM nodes WHERE parent_id = ? AND name IN (${n})`), [parentId]),
    ) as unknown as unknown[][];
    return c.inKeyOrder(names, found.map(rows.nodeFromArray), (node) => node.name);
  }

  /**
   * Rows of the statement `stmt(placeholders)` run over `keys` by chunks of at most IN_CHUNK bound parameters
   * (well below SQLite's variable limit; each key bound exactly as a single look-up binds it, which a JSON array
   * would not do for every string), after `leading` parameters. A chunk is padded to 8, 64 or IN_CHUNK
   * placeholders by repeating its last key (IN ignores repeats), so three statements serve every size.
   */
  #inChunks(keys: readonly string[], stmt: (placeholders: string) => StatementSync, leading: SQLInputValue[]): unknown[] {
    const out: unknown[] = [];
    for (let i = 0; i < keys.length; i += IN_CHUNK) {
      const chunk = keys.slice(i, i + IN_CHUNK);
      const size = IN_SIZES.find((n) => n >= chunk.length) as number;
      while (chunk.length < size) chunk.push(chunk[chunk.length - 1] as string);
      out.push(...stmt(IN_PLACEHOLDERS[size] as string).all(...leading, ...chunk));
    }
    return out;
  }

  async listNodes(options: { after?: string; limit?: number } = {}): Promise<Page<TreeNode>> {
    const limit = c.pageLimit(options.limit);
    const list = this.#do('list nodes', () =>
      this.#arrays(`SELECT ${rows.NODE_COLUMNS_IN_ORDER} FROM nodes WHERE id > ? ORDER BY id LIMIT ?`).all(options.after ?? '', limit + 1),
    ) as unknown as unknown[][];
    return c.toPage(list.map(rows.nodeFromArray), limit, (n) => n.id);
  }

  async listChildren(parentId: string, options: { after?: string; limit?: number } = {}): Promise<Page<TreeNode>> {
    const limit = c.pageLimit(options.limit);
    const list = this.#do('list children', () =>
      options.after === undefined
        ? this.#arrays(`SELECT ${rows.NODE_COLUMNS_IN_ORDER} FROM nodes WHERE parent_id = ? ORDER BY name LIMIT ?`).all(parentId, limit + 1)
        : this.#arrays(`SELECT ${rows.NODE_COLUMNS_IN_ORDER} FROM nodes WHERE parent_id = ? AND name > ? ORDER BY name LIMIT ?`).all(parentId, options.after, limit + 1),
    ) as unknown as unknown[][];
    return c.toPage(list.map(rows.nodeFromArray), limit, (n) => n.name);
  }

  async hasChildren(parentId: string): Promise<boolean> {
    return this.#do('has children', () => this.#stmt('SELECT 1 FROM nodes WHERE parent_id = ? LIMIT 1').get(parentId) !== undefined);
  }

  async insertNode(node: TreeNode): Promise<void> {
    c.checkVersion(node.version);
    c.checkMac(node.mac);
    this.#do(`insert node ${node.id}`, () =>
      this.#stmt(
        `INSERT INTO nodes (id, parent_id, name, type, blob_id, size, owner, created_at, modified_at, version, mac)
         VALUES (@id, @parent_id, @name, @type, @blob_id, @size, @owner, @created_at, @modified_at, @version, @mac)`,
      ).run(rows.nodeToRow(node)),
    );
  }

  async updateNode(id: string, expectedVersion: number, patch: c.NodePatch): Promise<TreeNode> {
    const p = c.checkNodePatch(patch);
    const keys = Object.keys(p).sort();
    const sets = keys.map((k) => `${NODE_COLUMNS[k]} = @${k}`).concat('version = version + 1', 'modified_at = @now');
    const sql = `UPDATE nodes SET ${sets.join(', ')} WHERE id = @id AND version = @expected RETURNING *`;
    const r = this.#do(`update node ${id}`, () =>
      returning(this.#stmt(sql), { ...p, id, expected: expectedVersion, now: Date.now() }),
    ) as rows.NodeRow | undefined;
    if (r !== undefined) return rows.nodeFromRow(r);
    throw c.nodeCasMiss(id, expectedVersion, await this.getNode(id));
  }

  async deleteNode(id: string, expectedVersion?: number): Promise<boolean> {
    if (expectedVersion === undefined) {
      return this.#do(`delete node ${id}`, () => this.#stmt('DELETE FROM nodes WHERE id = ?').run(id)).changes === 1;
    }
    const res = this.#do(`delete node ${id}`, () => this.#stmt('DELETE FROM nodes WHERE id = ? AND version = ?').run(id, expectedVersion));
    if (res.changes === 1) return true;
    const current = await this.getNode(id);
    if (current !== null) throw c.nodeCasMiss(id, expectedVersion, current);
    return false;
  }

  async findNodesByBlob(blobId: string): Promise<TreeNode[]> {
    const list = this.#do('find nodes by blob', () => this.#stmt('SELECT * FROM nodes WHERE blob_id = ? ORDER BY id').all(blobId)) as rows.NodeRow[];
    return list.map(rows.nodeFromRow);
  }

  // ---- blobs ----

  async insertBlob(blob: BlobRecord): Promise<void> {
    c.checkBlobState(blob.state);
    c.checkMac(blob.mac);
    this.#do(`insert blob ${blob.id}`, () =>
      this.#stmt(
        `INSERT INTO blobs (id, state, owner, key_generation, key_record, size, chunk_count, chunk_sha256, created_at, updated_at, attrs, mac)
         VALUES (@id, @state, @owner, @key_generation, @key_record, @size, @chunk_count, @chunk_sha256, @created_at, @updated_at, @attrs, @mac)`,
      ).run(rows.blobToRow(blob)),
    );
  }

  // ---- batches ----

  async insertBlobs(blobs: BlobRecord[]): Promise<Array<CofferError | null>> {
    c.checkBatch(blobs);
    const sql = `INSERT INTO blobs (id, state, owner, key_generation, key_record, size, chunk_count, chunk_sha256, created_at, updated_at, attrs, mac)
         VALUES (@id, @state, @owner, @key_generation, @key_record, @size, @chunk_count, @chunk_sha256, @created_at, @updated_at, @attrs, @mac)`;
    return this.#batch('insert blobs', blobs, (b) => {
      c.checkBlobState(b.state);
      c.checkMac(b.mac);
    }, (b) => this.#stmt(sql).run(rows.blobToRow(b)), (b) => `insert blob ${b.id}`);
  }

  async insertNodes(nodes: TreeNode[]): Promise<Array<CofferError | null>> {
    c.checkBatch(nodes);
    const sql = `INSERT INTO nodes (id, parent_id, name, type, blob_id, size, owner, created_at, modified_at, version, mac)
         VALUES (@id, @parent_id, @name, @type, @blob_id, @size, @owner, @created_at, @modified_at, @version, @mac)`;
    return this.#batch('insert nodes', nodes, (n) => {
      c.checkVersion(n.version);
      c.checkMac(n.mac);
    }, (n) => this.#stmt(sql).run(rows.nodeToRow(n)), (n) => `insert node ${n.id}`);
  }

  /**
   * One transaction of single-row writes, each failing alone: a failed INSERT rolls back only its own statement
   * (SQLite's default ABORT), so the transaction goes on. BEGIN IMMEDIATE takes the write lock first (busy_timeout).
   */
  #batch<T>(what: string, items: T[], check: (item: T) => void, write: (item: T) => unknown, name: (item: T) => string): Array<CofferError | null> {
    const results = items.map((item) => c.checked(() => check(item)));
    if (items.length === 0) return results;
    this.#do(what, () => {
      this.#db.exec('BEGIN IMMEDIATE');
      try {
        items.forEach((item, i) => {
          if (results[i] !== null) return;
          try {
            write(item);
          } catch (e) {
            results[i] = sqliteError(e, name(item));
          }
        });
        this.#db.exec('COMMIT');
      } catch (e) {
        if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
        throw e;
      }
    });
    return results;
  }

  async getBlob(id: string): Promise<BlobRecord | null> {
    const r = this.#do('get blob', () => this.#stmt('SELECT * FROM blobs WHERE id = ?').get(id)) as rows.BlobRow | undefined;
    return r === undefined ? null : rows.blobFromRow(r);
  }

  async getBlobs(ids: readonly string[]): Promise<Array<BlobRecord | null>> {
    const found = this.#do('get blobs', () => this.#inChunks(c.distinctKeys(ids), (n) => this.#stmt(`SELECT * FROM blobs WHERE id IN (${n})`), [])) as rows.BlobRow[];
    return c.inKeyOrder(ids, found.map(rows.blobFromRow), (b) => b.id);
  }

  async updateBlob(id: string, fromState: BlobState, patch: c.BlobPatch, options: { strict?: boolean } = {}): Promise<BlobRecord> {
    const p = c.checkBlobPatch(fromState, patch);
    const keys = Object.keys(p).sort();
    const params: Record<string, unknown> = { id, fromState, now: Date.now() };
    for (const k of keys) {
      const v = p[k as keyof c.BlobPatch];
      params[k] = JSON_BLOB_FIELDS.has(k) && v !== null ? JSON.stringify(v) : v;
    }
    const sets = keys.map((k) => `${BLOB_COLUMNS[k]} = @${k}`).concat('updated_at = @now');
    const sql = `UPDATE blobs SET ${sets.join(', ')} WHERE id = @id AND state = @fromState RETURNING *`;
    const r = this.#do(`update blob ${id}`, () => returning(this.#stmt(sql), params)) as rows.BlobRow | undefined;
    if (r !== undefined) return rows.blobFromRow(r);
    return c.resolveBlobCasMiss(id, fromState, p, await this.getBlob(id), options.strict);
  }

  async deleteBlob(id: string): Promise<boolean> {
    return this.#do(`delete blob ${id}`, () => this.#stmt('DELETE FROM blobs WHERE id = ?').run(id)).changes === 1;
  }

  async listBlobsByState(state: BlobState, updatedBefore: Date, limit: number): Promise<BlobRecord[]> {
    c.checkBlobState(state);
    const n = c.countLimit(limit);
    const list = this.#do('list blobs by state', () =>
      this.#stmt('SELECT * FROM blobs WHERE state = ? AND updated_at < ? ORDER BY updated_at, id LIMIT ?').all(state, updatedBefore.getTime(), n),
    ) as rows.BlobRow[];
    return list.map(rows.blobFromRow);
  }

  async listBlobs(options: { after?: string; limit?: number } = {}): Promise<Page<BlobRecord>> {
    const limit = c.pageLimit(options.limit);
    const list = this.#do('list blobs', () =>
      this.#stmt('SELECT * FROM blobs WHERE id > ? ORDER BY id LIMIT ?').all(options.after ?? '', limit + 1),
    ) as rows.BlobRow[];
    return c.toPage(list.map(rows.blobFromRow), limit, (b) => b.id);
  }

  // ---- upload sessions ----

  async putUploadChunk(chunk: UploadChunkRecord): Promise<void> {
    this.#do(`put upload chunk ${chunk.blobId}/${chunk.index}`, () =>
      this.#stmt(
        `INSERT INTO upload_chunks (blob_id, idx, plaintext_length, final, stored_size, sha256, created_at)
         VALUES (@blob_id, @idx, @plaintext_length, @final, @stored_size, @sha256, @created_at)
         ON CONFLICT (blob_id, idx) DO UPDATE SET plaintext_length = excluded.plaintext_length, final = excluded.final,
           stored_size = excluded.stored_size, sha256 = excluded.sha256, created_at = excluded.created_at`,
      ).run(rows.uploadChunkToRow(chunk)),
    );
  }

  async listUploadChunks(blobId: string): Promise<UploadChunkRecord[]> {
    const list = this.#do('list upload chunks', () =>
      this.#stmt('SELECT * FROM upload_chunks WHERE blob_id = ? ORDER BY idx').all(blobId),
    ) as rows.UploadChunkRow[];
    return list.map(rows.uploadChunkFromRow);
  }

  async deleteUploadChunks(blobId: string): Promise<void> {
    this.#do('delete upload chunks', () => this.#stmt('DELETE FROM upload_chunks WHERE blob_id = ?').run(blobId));
  }

  // ---- users and grants ----

  async ensureUser(name: string, options: { createdAt?: Date } = {}): Promise<User> {
    const createdAt = c.checkUserCreatedAt(options);
    // the no-op DO UPDATE makes RETURNING yield the existing row, so this stays one statement
    const r = this.#do(`ensure user ${name}`, () =>
      returning(this.#stmt(
        `INSERT INTO users (name, created_at, disabled) VALUES (?, ?, 0)
         ON CONFLICT (name) DO UPDATE SET name = users.name RETURNING *`,
      ), name, createdAt.getTime()),
    ) as rows.UserRow;
    return rows.userFromRow(r);
  }

  async getUser(name: string): Promise<User | null> {
    const r = this.#do('get user', () => this.#stmt('SELECT * FROM users WHERE name = ?').get(name)) as rows.UserRow | undefined;
    return r === undefined ? null : rows.userFromRow(r);
  }

  async listUsers(): Promise<User[]> {
    const list = this.#do('list users', () => this.#stmt('SELECT * FROM users ORDER BY name').all()) as rows.UserRow[];
    return list.map(rows.userFromRow);
  }

  async setUserDisabled(name: string, disabled: boolean): Promise<User> {
    return this.updateUser(name, { disabled });
  }

  async updateUser(name: string, patch: { disabled?: boolean; mac?: string | null }): Promise<User> {
    const p = c.checkUserPatch(patch);
    const sets = ['name = name'];
    const params: Record<string, unknown> = { name };
    if (p.disabled !== undefined) {
      sets.push('disabled = @disabled');
      params.disabled = p.disabled ? 1 : 0;
    }
    if (p.mac !== undefined) {
      sets.push('mac = @mac');
      params.mac = p.mac;
    }
    const r = this.#do(`update user ${name}`, () =>
      returning(this.#stmt(`UPDATE users SET ${sets.join(', ')} WHERE name = @name RETURNING *`), params),
    ) as rows.UserRow | undefined;
    if (r === undefined) throw new CofferError(ErrorCode.NOT_FOUND, `user ${name} not found`);
    return rows.userFromRow(r);
  }

  async putGrant(grant: Grant): Promise<void> {
    c.checkMac(grant.mac);
    this.#do(`put grant ${grant.nodeId}/${grant.user}`, () =>
      this.#stmt(
        `INSERT INTO grants (node_id, user, role, created_at, mac) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (node_id, user) DO UPDATE SET role = excluded.role, created_at = excluded.created_at, mac = excluded.mac`,
      ).run(grant.nodeId, grant.user, grant.role, grant.createdAt.getTime(), grant.mac ?? null),
    );
  }

  async deleteGrant(nodeId: string, user: string): Promise<void> {
    this.#do('delete grant', () => this.#stmt('DELETE FROM grants WHERE node_id = ? AND user = ?').run(nodeId, user));
  }

  async listGrants(nodeIds: string[]): Promise<Grant[]> {
    if (nodeIds.length === 0) return [];
    // one cached statement for any number of ids: the ids travel as one JSON array parameter
    const list = this.#do('list grants', () =>
      this.#stmt('SELECT * FROM grants WHERE node_id IN (SELECT value FROM json_each(?)) ORDER BY node_id, user').all(JSON.stringify(nodeIds)),
    ) as rows.GrantRow[];
    return list.map(rows.grantFromRow);
  }

  // ---- audit log ----

  async appendAudit(entry: AuditEntry): Promise<void> {
    if (!Number.isSafeInteger(entry.seq) || entry.seq < 0) {
      throw new CofferError(ErrorCode.INVALID_ARGUMENT, `audit seq must be a non-negative integer, got ${entry.seq}`);
    }
    this.#do(`append audit seq ${entry.seq}`, () =>
      this.#stmt(
        `INSERT INTO audit (seq, at, actor, action, target, details, prev_hash, hash)
         VALUES (@seq, @at, @actor, @action, @target, @details, @prev_hash, @hash)`,
      ).run(rows.auditToRow(entry)),
    );
  }

  async lastAudit(): Promise<AuditEntry | null> {
    const r = this.#do('last audit', () => this.#stmt('SELECT * FROM audit ORDER BY seq DESC LIMIT 1').get()) as rows.AuditRow | undefined;
    return r === undefined ? null : rows.auditFromRow(r);
  }

  async listAudit(afterSeq: number, limit: number): Promise<AuditEntry[]> {
    const n = c.countLimit(limit);
    const list = this.#do('list audit', () =>
      this.#stmt('SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?').all(afterSeq, n),
    ) as rows.AuditRow[];
    return list.map(rows.auditFromRow);
  }

  async sync(): Promise<void> {
    // In WAL mode a checkpoint first syncs the WAL (every committed frame) whenever it holds frames not yet in
    // the database file; a fully checkpointed WAL means the database file was synced after that checkpoint.
    this.#do('sync', () => this.#db.exec('PRAGMA wal_checkpoint(PASSIVE)'));
  }

  async close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close();
  }
}
