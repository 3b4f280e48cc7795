// S3 access keys: per-user (access key id, secret) pairs. The secret is needed in clear to check a SigV4
// signature, so it is stored only sealed (AES-256-GCM) under a key that only the enclave holds; the record's
// id, user and creation time are the AAD, so a host that edits the file cannot move a key to another user or
// make up one (it fails to open and counts as unknown). The file itself lives on the untrusted host: in the
// enclave, `<channel>/s3-access-keys.json` (enclave-s3.ts), written temp → fsync → rename → fsync dir. Revoking removes the record;
// the store re-reads the file when it changes, so a revocation applies to the next request.
// Limit (docs/s3-api.md): the host can restore an older copy of the file (bringing back a revoked key) until
// the records are also bound to the enclave's MAC'd metadata version (custody, issue 9).
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { CofferError, ErrorCode } from '../../src/errors.js';
import { checkUserName } from '../../src/vault/index.js';

/** Seals and opens secrets under a key only the enclave has. */
export interface SecretSealer {
  seal(plaintext: Buffer, aad: Buffer): Buffer;
  /** Throws when the sealed value or its AAD were altered. */
  open(sealed: Buffer, aad: Buffer): Buffer;
}

/** AES-256-GCM with a fresh 96-bit nonce per value: nonce ‖ ciphertext ‖ tag. */
export class AesGcmSealer implements SecretSealer {
  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new CofferError(ErrorCode.KEY_INVALID, 'the sealing key must be 32 bytes');
  }

  seal(plaintext: Buffer, aad: Buffer): Buffer {
    const nonce = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, nonce);
    c.setAAD(aad);
    return Buffer.concat([nonce, c.update(plaintext), c.final(), c.getAuthTag()]);
  }

  open(sealed: Buffer, aad: Buffer): Buffer {
    if (sealed.length < 28) throw new CofferError(ErrorCode.INTEGRITY, 'sealed secret too short');
    const d = createDecipheriv('aes-256-gcm', this.key, sealed.subarray(0, 12));
    d.setAAD(aad);
    d.setAuthTag(sealed.subarray(sealed.length - 16));
    return Buffer.concat([d.update(sealed.subarray(12, sealed.length - 16)), d.final()]);
  }
}

export interface AccessKeyRecord {
  id: string;
  user: string;
  createdAt: string;
  /** base64 of the sealed secret. */
  sealed: string;
}

interface KeyFile { v: 1; keys: AccessKeyRecord[] }

const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function aadOf(r: Pick<AccessKeyRecord, 'id' | 'user' | 'createdAt'>): Buffer {
  return Buffer.from(`coffer-s3-access-key-v1\0${r.id}\0${r.user}\0${r.createdAt}`, 'utf8');
}

export class AccessKeyStore {
  private cache: { mtimeMs: number; size: number; keys: Map<string, AccessKeyRecord> } | null = null;

  constructor(private readonly file: string, private readonly sealer: SecretSealer) {}

  /** Creates a key for `user`; the secret is returned once and stored only sealed. Throws INVALID_ARGUMENT. */
  async create(user: string, now = new Date()): Promise<{ id: string; secret: string; user: string; createdAt: string }> {
    checkUserName(user);
    const bytes = randomBytes(17);
    const id = `CFR${Array.from(bytes, (b) => ID_ALPHABET[b & 31]).join('')}`;
    const secret = randomBytes(30).toString('base64').replace(/\+/g, 'A').replace(/\//g, 'B');
    const createdAt = now.toISOString();
    const sealed = this.sealer.seal(Buffer.from(secret, 'utf8'), aadOf({ id, user, createdAt })).toString('base64');
    const data = await this.read();
    data.keys.push({ id, user, createdAt, sealed });
    await this.write(data);
    return { id, secret, user, createdAt };
  }

  async list(user?: string): Promise<Array<{ id: string; user: string; createdAt: string }>> {
    const data = await this.read();
    return data.keys.filter((k) => user === undefined || k.user === user).map(({ id, user: u, createdAt }) => ({ id, user: u, createdAt }));
  }

  /** Throws NOT_FOUND for an unknown id. */
  async revoke(id: string): Promise<void> {
    const data = await this.read();
    const kept = data.keys.filter((k) => k.id !== id);
    if (kept.length === data.keys.length) throw new CofferError(ErrorCode.NOT_FOUND, `no access key ${id}`);
    await this.write({ v: 1, keys: kept });
  }

  /** The user and secret of a key; null for an unknown key or one whose record does not open (altered). */
  async lookup(id: string): Promise<{ user: string; secret: string } | null> {
    const keys = await this.current();
    const r = keys.get(id);
    if (!r) return null;
    try {
      return { user: r.user, secret: this.sealer.open(Buffer.from(r.sealed, 'base64'), aadOf(r)).toString('utf8') };
    } catch {
      return null; // altered on the host: fails closed, as an unknown key
    }
  }

  private async current(): Promise<Map<string, AccessKeyRecord>> {
    const st = await stat(this.file).catch(() => null);
    if (st === null) return new Map();
    if (this.cache && this.cache.mtimeMs === st.mtimeMs && this.cache.size === st.size) return this.cache.keys;
    const data = await this.read();
    const keys = new Map(data.keys.map((k) => [k.id, k]));
    this.cache = { mtimeMs: st.mtimeMs, size: st.size, keys };
    return keys;
  }

  private async read(): Promise<KeyFile> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { v: 1, keys: [] };
      throw e;
    }
    const data = JSON.parse(text) as KeyFile;
    if (data.v !== 1 || !Array.isArray(data.keys)) throw new CofferError(ErrorCode.INTEGRITY, `${this.file} is not an access-key file`);
    return data;
  }

  private async write(data: KeyFile): Promise<void> {
    const dir = path.dirname(this.file);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.${randomBytes(6).toString('hex')}.tmp`;
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(JSON.stringify(data, null, 1));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.file);
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
    this.cache = null;
  }
}
