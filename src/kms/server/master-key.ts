// The embedded KMS's master key: <dataDir>/kms/master.key, 32 random bytes, mode 0600, made on first start.
// It seals every KMS key's material and MACs the key store (docs/kms.md "Master key").
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { link, mkdir, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { CofferError, ErrorCode } from '../../errors.js';
import { createFileExclusive, fsyncDir } from './durable.js';

export const MASTER_KEY_LEN = 32;
const SEAL_LABEL = Buffer.from('coffer-kms-material-v1', 'ascii');

/** Creates <dataDir>/kms (0700) if missing; returns its path. */
export async function kmsDir(dataDir: string): Promise<string> {
  const dir = join(dataDir, 'kms');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/**
 * Loads the master key, creating it (atomically: temp file, fsync, link) if it does not exist.
 * @throws CofferError KEY_INVALID if the file has the wrong size or is readable by group/others.
 */
export async function loadOrCreateMasterKey(dataDir: string): Promise<Buffer> {
  const dir = await kmsDir(dataDir);
  const path = join(dir, 'master.key');
  try {
    return await readMasterKey(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const tmp = join(dir, `.master.key.${randomBytes(6).toString('hex')}.tmp`);
  await createFileExclusive(tmp, randomBytes(MASTER_KEY_LEN), 0o600);
  try {
    await link(tmp, path); // fails with EEXIST if another process won the race: then use theirs
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  } finally {
    await unlink(tmp);
  }
  await fsyncDir(dir);
  return readMasterKey(path);
}

async function readMasterKey(path: string): Promise<Buffer> {
  const st = await stat(path);
  if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
    throw new CofferError(ErrorCode.KEY_INVALID, `${path} must not be readable by group or others (chmod 600)`);
  }
  const key = await readFile(path);
  if (key.length !== MASTER_KEY_LEN) {
    throw new CofferError(ErrorCode.KEY_INVALID, `${path} must hold exactly ${MASTER_KEY_LEN} bytes, found ${key.length}`);
  }
  return key;
}

/** Sub-keys derived from the master key (HKDF-SHA256), so one key is never used for two purposes. */
export function deriveKeys(master: Uint8Array): { sealKey: Buffer; macKey: Buffer } {
  const derive = (info: string): Buffer => Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), info, 32));
  return { sealKey: derive('coffer-kms seal v1'), macKey: derive('coffer-kms keystore mac v1') };
}

/** Seals one KMS key's 32-byte material: nonce(12) ‖ ct(32) ‖ tag(16), AAD = label ‖ key id ‖ material id. */
export function sealMaterial(sealKey: Buffer, keyId: string, materialId: string, material: Buffer): Buffer {
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', sealKey, nonce);
  c.setAAD(Buffer.concat([SEAL_LABEL, Buffer.from(`${keyId}/${materialId}`, 'utf8')]));
  return Buffer.concat([nonce, c.update(material), c.final(), c.getAuthTag()]);
}

/** Opens sealed material. @throws CofferError INTEGRITY if it does not authenticate (wrong master key, edited store). */
export function openMaterial(sealKey: Buffer, keyId: string, materialId: string, sealed: Buffer): Buffer {
  if (sealed.length !== 12 + 32 + 16) throw new CofferError(ErrorCode.INTEGRITY, `sealed key material of ${keyId} has a wrong length`);
  const d = createDecipheriv('aes-256-gcm', sealKey, sealed.subarray(0, 12));
  d.setAAD(Buffer.concat([SEAL_LABEL, Buffer.from(`${keyId}/${materialId}`, 'utf8')]));
  d.setAuthTag(sealed.subarray(44));
  try {
    return Buffer.concat([d.update(sealed.subarray(12, 44)), d.final()]);
  } catch (e) {
    throw new CofferError(ErrorCode.INTEGRITY, `key material of ${keyId} does not open under this master key`, { cause: e });
  }
}
