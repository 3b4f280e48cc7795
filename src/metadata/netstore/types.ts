// The network manager's record store: typed-by-kind records with an opaque JSON body, a version for
// compare-and-set and a reference count. src/network builds hosts, networks, ports, IPAM claims, policies,
// forwards and its apply lock on it. Every method is one atomic write to one record, or a read, on both stores
// (docs/metadata.md, the single-document-write rule), so uniqueness under concurrency always comes from a key.

export type NetRecordKind = 'host' | 'network' | 'netindex' | 'ip' | 'ofport' | 'port' | 'policy' | 'egress' | 'forward' | 'lock';

export interface NetRecord {
  readonly kind: NetRecordKind;
  readonly id: string;
  /** JSON text owned by src/network; opaque to the store. */
  readonly body: string;
  /** 1 on insert, +1 on every update. */
  readonly version: number;
  /** How many other records point at this one (ports on a network, forwards on a port, ...). Never below 0. */
  readonly refs: number;
}

export interface NetRecordStore {
  /** The record, or null. */
  get(kind: NetRecordKind, id: string): Promise<NetRecord | null>;
  /** Every record of `kind` (whose id starts with `prefix` when given), in byte order of id. */
  list(kind: NetRecordKind, prefix?: string): Promise<NetRecord[]>;
  /** Inserts with version 1 and refs 0. Not idempotent: ALREADY_EXISTS when (kind, id) is taken. */
  insert(kind: NetRecordKind, id: string, body: string): Promise<NetRecord>;
  /** Replaces the body if the version still is `version` (CAS). NOT_FOUND when absent, CONFLICT when changed. */
  update(kind: NetRecordKind, id: string, version: number, body: string): Promise<NetRecord>;
  /**
   * Adds `delta` to refs atomically. NOT_FOUND when the record is absent (so a reference can never be taken on
   * a record being deleted); CONFLICT when refs would go below 0.
   */
  addRefs(kind: NetRecordKind, id: string, delta: number): Promise<NetRecord>;
  /**
   * Deletes the record if it matches: `version` (when given) and refs = 0 (when `unreferenced`). Returns true
   * when this call deleted it; false when it was absent. CONFLICT (details: refs, version) when it exists but
   * does not match. Idempotent: absent is success.
   */
  delete(kind: NetRecordKind, id: string, cond?: { version?: number; unreferenced?: boolean }): Promise<boolean>;
  /** Idempotent. */
  close(): Promise<void>;
}
