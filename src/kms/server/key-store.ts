// The embedded KMS's persistent state: KMS keys (metadata, policy, rotation, sealed material generations) and
// aliases, in <dataDir>/kms/keystore.json. The file is MACed under a master-key sub-key, so a host-side edit
// (a loosened policy, a swapped alias) is refused at load; every change is written durably before it is visible.
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CofferError, ErrorCode } from '../../errors.js';
import { writeFileDurably } from './durable.js';
import { KmsApiError, notFound } from './errors.js';
import { deriveKeys, kmsDir, loadOrCreateMasterKey, openMaterial, sealMaterial } from './master-key.js';

export interface KeyMaterial {
  /** 16 random bytes, hex; also written into every ciphertext blob this generation seals. */
  id: string;
  /** base64 of the sealed material (see master-key.ts). */
  sealed: string;
  createdAt: number;
}

export interface KmsKey {
  keyId: string;
  arn: string;
  creationDate: number;
  description: string;
  enabled: boolean;
  policy: string;
  rotation: { enabled: boolean; periodDays: number; nextRotationDate: number | null; lastRotationDate: number | null };
  /** Every generation ever made; the last one is current. Old ones stay so old ciphertexts still decrypt. */
  materials: KeyMaterial[];
  tags: Array<{ TagKey: string; TagValue: string }>;
}

export interface KmsAlias {
  name: string;
  targetKeyId: string;
  creationDate: number;
  lastUpdatedDate: number;
}

interface StoreBody {
  keys: KmsKey[];
  aliases: KmsAlias[];
}

const FORMAT = 'coffer-kms-keystore';
const DAY_MS = 86_400_000;

export class KeyStore {
  private body: StoreBody;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly path: string,
    private readonly sealKey: Buffer,
    private readonly macKey: Buffer,
    readonly region: string,
    readonly accountId: string,
    body: StoreBody,
  ) {
    this.body = body;
  }

  /**
   * Opens (or creates) the key store of a data directory.
   * @throws CofferError INTEGRITY when the file's MAC does not verify under this master key; KEY_INVALID for a bad master key file.
   */
  static async open(dataDir: string, region: string, accountId: string): Promise<KeyStore> {
    const dir = await kmsDir(dataDir);
    const { sealKey, macKey } = deriveKeys(await loadOrCreateMasterKey(dataDir));
    const path = join(dir, 'keystore.json');
    let body: StoreBody = { keys: [], aliases: [] };
    let text: string | null = null;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (text !== null) body = verifyFile(text, macKey, path);
    return new KeyStore(path, sealKey, macKey, region, accountId, body);
  }

  keys(): readonly KmsKey[] {
    return this.body.keys;
  }

  aliases(): readonly KmsAlias[] {
    return this.body.aliases;
  }

  /** Resolves a key id, key ARN, alias name or alias ARN. @throws KmsApiError NotFoundException */
  resolve(ref: string): KmsKey {
    let id = ref;
    const aliasName = ref.startsWith('alias/') ? ref : ref.startsWith(`${this.arnPrefix()}alias/`) ? ref.slice(this.arnPrefix().length) : null;
    if (aliasName !== null) {
      const alias = this.body.aliases.find((a) => a.name === aliasName);
      if (!alias) throw notFound(`Alias ${this.arnPrefix()}${aliasName} is not found.`);
      id = alias.targetKeyId;
    } else if (ref.startsWith(`${this.arnPrefix()}key/`)) {
      id = ref.slice(`${this.arnPrefix()}key/`.length);
    }
    const key = this.body.keys.find((k) => k.keyId === id);
    if (!key) throw notFound(`Key '${ref}' does not exist`);
    return key;
  }

  arnPrefix(): string {
    return `arn:aws:kms:${this.region}:${this.accountId}:`;
  }

  async createKey(init: { description: string; policy: string; tags: KmsKey['tags'] }, now: number): Promise<KmsKey> {
    const keyId = randomUUID();
    const key: KmsKey = {
      keyId,
      arn: `${this.arnPrefix()}key/${keyId}`,
      creationDate: now,
      description: init.description,
      enabled: true,
      policy: init.policy,
      rotation: { enabled: false, periodDays: 365, nextRotationDate: null, lastRotationDate: null },
      materials: [this.newMaterial(keyId, now)],
      tags: init.tags,
    };
    await this.mutate((b) => void b.keys.push(key));
    return key;
  }

  /** @throws KmsApiError AlreadyExistsException */
  async createAlias(name: string, keyId: string, now: number): Promise<void> {
    await this.mutate((b) => {
      if (b.aliases.some((a) => a.name === name)) throw new KmsApiError('AlreadyExistsException', `An alias with the name ${this.arnPrefix()}${name} already exists`);
      b.aliases.push({ name, targetKeyId: keyId, creationDate: now, lastUpdatedDate: now });
    });
  }

  async update(keyId: string, change: (k: KmsKey) => void): Promise<KmsKey> {
    let updated: KmsKey | undefined;
    await this.mutate((b) => {
      const k = b.keys.find((x) => x.keyId === keyId);
      if (!k) throw notFound(`Key '${keyId}' does not exist`);
      change(k);
      updated = k;
    });
    return updated as KmsKey;
  }

  /** Adds a new material generation; old ciphertexts keep decrypting with the old ones. */
  async rotate(keyId: string, now: number): Promise<KmsKey> {
    return this.update(keyId, (k) => {
      k.materials.push(this.newMaterial(k.keyId, now));
      k.rotation.lastRotationDate = now;
      if (k.rotation.enabled) k.rotation.nextRotationDate = now + k.rotation.periodDays * DAY_MS;
    });
  }

  /** Rotates a key whose automatic rotation is due (checked lazily when the key is used to encrypt). */
  async rotateIfDue(key: KmsKey, now: number): Promise<KmsKey> {
    const due = key.rotation.enabled && key.rotation.nextRotationDate !== null && now >= key.rotation.nextRotationDate;
    return due ? this.rotate(key.keyId, now) : key;
  }

  /** The current material generation of a key: [materialId, 32 bytes]. */
  currentMaterial(key: KmsKey): { id: Buffer; material: Buffer } {
    const m = key.materials[key.materials.length - 1];
    if (!m) throw new CofferError(ErrorCode.INTEGRITY, `key ${key.keyId} has no material`);
    return { id: Buffer.from(m.id, 'hex'), material: openMaterial(this.sealKey, key.keyId, m.id, Buffer.from(m.sealed, 'base64')) };
  }

  /** A specific generation, or null if this key never had it. */
  material(key: KmsKey, materialId: Buffer): Buffer | null {
    const m = key.materials.find((x) => x.id === materialId.toString('hex'));
    return m ? openMaterial(this.sealKey, key.keyId, m.id, Buffer.from(m.sealed, 'base64')) : null;
  }

  static rotationPeriodMs(days: number): number {
    return days * DAY_MS;
  }

  private newMaterial(keyId: string, now: number): KeyMaterial {
    const id = randomBytes(16).toString('hex');
    return { id, sealed: sealMaterial(this.sealKey, keyId, id, randomBytes(32)).toString('base64'), createdAt: now };
  }

  /** Applies `fn` to a copy, writes it durably, then makes it current; serialised, so writes never interleave. */
  private mutate(fn: (b: StoreBody) => void): Promise<void> {
    const run = this.queue.then(async () => {
      const next = structuredClone(this.body);
      fn(next);
      const text = JSON.stringify(next);
      const mac = createHmac('sha256', this.macKey).update(text, 'utf8').digest('hex');
      await writeFileDurably(this.path, `${JSON.stringify({ format: FORMAT, version: 1, mac, body: text }, null, 1)}\n`);
      this.body = next;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }
}

function verifyFile(text: string, macKey: Buffer, path: string): StoreBody {
  let outer: unknown;
  try {
    outer = JSON.parse(text);
  } catch (e) {
    throw new CofferError(ErrorCode.INTEGRITY, `${path} is not valid JSON`, { cause: e });
  }
  const o = outer as { format?: unknown; version?: unknown; mac?: unknown; body?: unknown };
  if (o.format !== FORMAT || o.version !== 1 || typeof o.mac !== 'string' || typeof o.body !== 'string') {
    throw new CofferError(ErrorCode.INTEGRITY, `${path} is not a version 1 Coffer KMS key store`);
  }
  const want = createHmac('sha256', macKey).update(o.body, 'utf8').digest();
  const got = Buffer.from(o.mac, 'hex');
  if (got.length !== want.length || !timingSafeEqual(got, want)) {
    throw new CofferError(ErrorCode.INTEGRITY, `${path} was modified outside the KMS (MAC mismatch) or belongs to another master key`);
  }
  return JSON.parse(o.body) as StoreBody;
}
