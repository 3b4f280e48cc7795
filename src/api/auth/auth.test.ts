// Development key handling and token verification (dev key and a real remote JWKS over loopback HTTP).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmod, mkdtemp, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { isCofferError } from '../../errors.js';
import { createAuthenticator, devKeyPath, ensureDevSigningKey, mintDevToken } from './index.js';

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (e) {
    return isCofferError(e) ? e.code : String(e);
  }
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'coffer-auth-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe('development key', () => {
  it('is created once with mode 0600, reused, and refused when group/other-readable', async () => {
    const [a, b] = await Promise.all([ensureDevSigningKey(dir), ensureDevSigningKey(dir)]);
    expect(a.kid).toBe(b.kid);
    expect((await stat(devKeyPath(dir))).mode & 0o777).toBe(0o600);
    const auth = await createAuthenticator({ kind: 'dev', dataDir: dir });
    const token = await mintDevToken(dir, { user: 'carol', admin: true, ttlSeconds: 60 });
    expect(await auth.authenticate(`Bearer ${token}`)).toEqual({ user: 'carol', admin: true });
    expect(await code(mintDevToken(dir, { user: '' }))).toBe('INVALID_ARGUMENT');
    expect(await code(mintDevToken(dir, { user: ':system' }))).toBe('INVALID_ARGUMENT');
    expect(await code(mintDevToken(dir, { user: 'x', ttlSeconds: 0 }))).toBe('INVALID_ARGUMENT');
    await chmod(devKeyPath(dir), 0o644);
    expect(await code(ensureDevSigningKey(dir))).toBe('KEY_INVALID');
    await chmod(devKeyPath(dir), 0o600);
  });
});

describe('remote JWKS', () => {
  it('verifies issuer, audience and signature against keys fetched over HTTP', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
      const auth = await createAuthenticator({ kind: 'jwks', jwksUrl: url, issuer: 'https://idp.example', audience: 'coffer-prod' });
      const sign = (iss: string, aud: string, sub = 'dave'): Promise<string> =>
        new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(iss).setAudience(aud).setSubject(sub).setExpirationTime('5m').sign(privateKey);
      expect(await auth.authenticate(`Bearer ${await sign('https://idp.example', 'coffer-prod')}`)).toEqual({ user: 'dave', admin: false });
      expect(await code(auth.authenticate(`Bearer ${await sign('https://evil.example', 'coffer-prod')}`))).toBe('UNAUTHENTICATED');
      expect(await code(auth.authenticate(`Bearer ${await sign('https://idp.example', 'other')}`))).toBe('UNAUTHENTICATED');
      expect(await code(auth.authenticate(`Bearer ${await sign('https://idp.example', 'coffer-prod', 'a\u0000b')}`))).toBe('UNAUTHENTICATED');
      const dev = await mintDevToken(dir, { user: 'dave', admin: true });
      expect(await code(auth.authenticate(`Bearer ${dev}`))).toBe('UNAUTHENTICATED');
      expect(await code(auth.authenticate(undefined))).toBe('UNAUTHENTICATED');
    } finally {
      server.close();
    }
  });
});
