// The KMS credentials file: one credential per role on first start, missing roles added to an older file (mode
// kept 0600), and a group-readable file refused.
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isCofferError } from '../../errors.js';
import { credentialsPath, DEFAULT_ADMIN_ARN, DEFAULT_ENCLAVE_ARN, DEFAULT_SEALER_ARN, loadOrCreateCredentials, newCredential, roleCredentials } from './credentials.js';

const dirs: string[] = [];
const fresh = async (): Promise<string> => {
  const d = await mkdtemp(join(tmpdir(), 'coffer-kms-cred-'));
  dirs.push(d);
  return d;
};
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('KMS credentials', () => {
  it('are made with one distinct credential per role, mode 0600, and load the same again', async () => {
    const dir = await fresh();
    const first = roleCredentials(await loadOrCreateCredentials(dir));
    expect([first.admin.principalArn, first.sealer.principalArn, first.enclave.principalArn]).toEqual([DEFAULT_ADMIN_ARN, DEFAULT_SEALER_ARN, DEFAULT_ENCLAVE_ARN]);
    expect(new Set([first.admin.secretAccessKey, first.sealer.secretAccessKey, first.enclave.secretAccessKey]).size).toBe(3);
    expect((await stat(credentialsPath(dir))).mode & 0o777).toBe(0o600);
    expect(roleCredentials(await loadOrCreateCredentials(dir))).toEqual(first);
  });

  it('an older file with the administrator only gets the client and enclave roles added, keeping the administrator', async () => {
    const dir = await fresh();
    await mkdir(join(dir, 'kms'), { recursive: true, mode: 0o700 });
    const admin = newCredential(DEFAULT_ADMIN_ARN);
    await writeFile(credentialsPath(dir), JSON.stringify({ credentials: [admin] }), { mode: 0o600 });
    const roles = roleCredentials(await loadOrCreateCredentials(dir));
    expect(roles.admin).toEqual(admin);
    const onDisk = JSON.parse(await readFile(credentialsPath(dir), 'utf8')) as { credentials: unknown[] };
    expect(onDisk.credentials).toHaveLength(3);
    expect((await stat(credentialsPath(dir))).mode & 0o777).toBe(0o600);
  });

  it('refuses a file others can read, and a list without a role', async () => {
    const dir = await fresh();
    await loadOrCreateCredentials(dir);
    await chmod(credentialsPath(dir), 0o640);
    expect(isCofferError(await loadOrCreateCredentials(dir).catch((e: unknown) => e), 'KEY_INVALID')).toBe(true);
    expect(() => roleCredentials([newCredential(DEFAULT_ADMIN_ARN)])).toThrow(/coffer-client/);
  });
});
