// Credentials of the embedded KMS: <dataDir>/kms/credentials.json (mode 0600), made on first start with one
// credential per role — administrator, client sealer, enclave (docs/kms.md "Key custody"). There is no IAM: each
// entry maps an access key id to its secret and the principal ARN that key policies name. Add entries by editing
// the file while the server is stopped; a file from before the roles existed gets the missing ones added.
import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CofferError, ErrorCode } from '../../errors.js';
import { createFileExclusive, writeFileDurably } from './durable.js';
import { kmsDir } from './master-key.js';
import type { KmsCredential } from './sigv4.js';

export const DEFAULT_ACCOUNT_ID = '000000000000';
/** Manages keys and rewraps (`coffer keys rewrap`); never printed for clients, never given plaintext keys. */
export const DEFAULT_ADMIN_ARN = `arn:aws:iam::${DEFAULT_ACCOUNT_ID}:user/coffer-admin`;
/** What clients seal with: GenerateDataKey/Encrypt for their own new data, nothing else. */
export const DEFAULT_SEALER_ARN = `arn:aws:iam::${DEFAULT_ACCOUNT_ID}:user/coffer-client`;
/** What enclaves call the KMS as: keys only through a Recipient whose measurement the key policy admits. */
export const DEFAULT_ENCLAVE_ARN = `arn:aws:iam::${DEFAULT_ACCOUNT_ID}:role/coffer-enclave`;

const ROLE_ARNS = [DEFAULT_ADMIN_ARN, DEFAULT_SEALER_ARN, DEFAULT_ENCLAVE_ARN] as const;

export interface RoleCredentials {
  admin: KmsCredential;
  sealer: KmsCredential;
  enclave: KmsCredential;
}

/**
 * The credential of each role in a loaded list (by principal ARN).
 * @throws CofferError KEY_INVALID if a role has no credential.
 */
export function roleCredentials(list: readonly KmsCredential[]): RoleCredentials {
  const find = (arn: string): KmsCredential => {
    const c = list.find((x) => x.principalArn === arn);
    if (!c) throw new CofferError(ErrorCode.KEY_INVALID, `the KMS credentials hold no credential for ${arn}`);
    return c;
  };
  return { admin: find(DEFAULT_ADMIN_ARN), sealer: find(DEFAULT_SEALER_ARN), enclave: find(DEFAULT_ENCLAVE_ARN) };
}

/** A fresh credential in AWS's shapes (AKIA… id, 40-character secret). */
export function newCredential(principalArn: string): KmsCredential {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const id = 'AKIA' + Array.from(randomBytes(16), (b) => alphabet[b % 32]).join('');
  return { accessKeyId: id, secretAccessKey: randomBytes(30).toString('base64'), principalArn };
}

/** Path of the credentials file of a data directory. */
export const credentialsPath = (dataDir: string): string => join(dataDir, 'kms', 'credentials.json');

/**
 * Loads the credentials file, creating it with one credential per role if missing (and adding a missing role's).
 * @throws CofferError KEY_INVALID if the file is malformed or readable by group/others.
 */
export async function loadOrCreateCredentials(dataDir: string): Promise<KmsCredential[]> {
  await kmsDir(dataDir);
  const path = credentialsPath(dataDir);
  try {
    await createFileExclusive(path, serialize(ROLE_ARNS.map(newCredential)), 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const st = await stat(path);
  if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) throw new CofferError(ErrorCode.KEY_INVALID, `${path} must not be readable by group or others (chmod 600)`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new CofferError(ErrorCode.KEY_INVALID, `${path} is not valid JSON`, { cause: e });
  }
  const list = (parsed as { credentials?: unknown }).credentials;
  if (!Array.isArray(list) || list.length === 0) throw new CofferError(ErrorCode.KEY_INVALID, `${path} must hold {"credentials": [ … ]}`);
  const loaded = list.map((c: Partial<KmsCredential>, i) => {
    if (typeof c?.accessKeyId !== 'string' || typeof c.secretAccessKey !== 'string' || typeof c.principalArn !== 'string' || c.secretAccessKey.length < 16) {
      throw new CofferError(ErrorCode.KEY_INVALID, `${path}: credentials[${i}] needs accessKeyId, secretAccessKey (≥ 16 chars) and principalArn`);
    }
    return { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, principalArn: c.principalArn };
  });
  const missing = ROLE_ARNS.filter((arn) => !loaded.some((c) => c.principalArn === arn));
  if (missing.length === 0) return loaded;
  const upgraded = [...loaded, ...missing.map(newCredential)];
  await writeFileDurably(path, serialize(upgraded), 0o600);
  return upgraded;
}

function serialize(list: readonly KmsCredential[]): Buffer {
  return Buffer.from(`${JSON.stringify({ credentials: list }, null, 2)}\n`);
}
