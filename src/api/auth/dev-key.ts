// The local development signing key: an Ed25519 JWK in <dataDir>/auth/dev-signing-key.json (mode 0600), used
// by `coffer dev` / `coffer token` when no external issuer is configured. Tokens: iss 'coffer-dev', aud 'coffer'.
import { constants as fsc, promises as fs } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { CofferError, ErrorCode } from '../../errors.js';
import { checkUserName } from '../../vault/index.js';

export const DEV_ISSUER = 'coffer-dev';
export const DEV_AUDIENCE = 'coffer';
export const DEV_ALG = 'EdDSA';
const MAX_TTL_SECONDS = 366 * 24 * 3600;

export function devKeyPath(dataDir: string): string {
  return path.join(path.resolve(dataDir), 'auth', 'dev-signing-key.json');
}

function parseJwk(text: string, file: string): JWK & { kid: string } {
  let jwk: unknown;
  try {
    jwk = JSON.parse(text);
  } catch (e) {
    throw new CofferError(ErrorCode.KEY_INVALID, `${file} is not JSON`, { cause: e });
  }
  const j = jwk as JWK;
  if (typeof jwk !== 'object' || jwk === null || j.kty !== 'OKP' || j.crv !== 'Ed25519' || typeof j.d !== 'string' || typeof j.x !== 'string' || typeof j.kid !== 'string') {
    throw new CofferError(ErrorCode.KEY_INVALID, `${file} is not an Ed25519 private JWK with a kid`);
  }
  return j as JWK & { kid: string };
}

/**
 * Creates the development signing key if absent (exclusive create, mode 0600, safe to race) and returns it.
 * Throws KEY_INVALID if the file is malformed or readable by group/others.
 */
export async function ensureDevSigningKey(dataDir: string): Promise<JWK & { kid: string }> {
  const file = devKeyPath(dataDir);
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  try {
    const st = await fs.stat(file);
    if ((st.mode & 0o077) !== 0) throw new CofferError(ErrorCode.KEY_INVALID, `${file} is accessible by group or others (chmod 600 it)`);
    return parseJwk(await fs.readFile(file, 'utf8'), file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const { privateKey } = await generateKeyPair(DEV_ALG, { crv: 'Ed25519', extractable: true });
  const jwk = await exportJWK(privateKey);
  const full = { ...jwk, kid: await calculateJwkThumbprint(jwk), alg: DEV_ALG, use: 'sig' } as JWK & { kid: string };
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await fs.open(tmp, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, 0o600);
  try {
    await handle.writeFile(JSON.stringify(full, null, 2) + '\n');
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fs.link(tmp, file); // fails if another process created it first: then use theirs
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  } finally {
    await fs.unlink(tmp);
  }
  return parseJwk(await fs.readFile(file, 'utf8'), file);
}

/** The public half of the development key (what the verifier uses). */
export async function devPublicJwk(dataDir: string): Promise<JWK & { kid: string }> {
  const { d: _d, ...pub } = await ensureDevSigningKey(dataDir);
  return pub as JWK & { kid: string };
}

export interface MintOptions {
  user: string;
  admin?: boolean;
  /** Default 24 h. */
  ttlSeconds?: number;
}

/** Mints a development token (iss coffer-dev, aud coffer, sub user, exp). Throws INVALID_ARGUMENT, KEY_INVALID. */
export async function mintDevToken(dataDir: string, options: MintOptions): Promise<string> {
  checkUserName(options.user);
  const ttl = options.ttlSeconds ?? 24 * 3600;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TTL_SECONDS) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `ttl must be 1..${MAX_TTL_SECONDS} seconds`);
  }
  const jwk = await ensureDevSigningKey(dataDir);
  const key = await importJWK(jwk, DEV_ALG);
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT(options.admin ? { admin: true } : {})
    .setProtectedHeader({ alg: DEV_ALG, kid: jwk.kid, typ: 'JWT' })
    .setIssuer(DEV_ISSUER)
    .setAudience(DEV_AUDIENCE)
    .setSubject(options.user)
    .setIssuedAt(now)
    .setExpirationTime(now + ttl)
    .sign(key);
}
