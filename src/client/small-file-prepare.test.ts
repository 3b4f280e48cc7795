// prepareSmallFile with the walk's lstat standing for the fstat before reading (put -r): a file changed or
// replaced after that lstat is refused (CONFLICT), never sealed as a mixture; an unchanged one is sealed whole.
import { appendFile, lstat, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyFile } from '../crypto/index.js';
import { isCofferError } from '../errors.js';
import { KeyFileDataKeys } from './data-keys.js';
import { prepareSmallFile } from './small-file.js';
import type { VaultClient } from './vault-client.js';

let dir: string;
let keys: KeyFileDataKeys;
// prepareSmallFile asks the client only who uploads (for the binding tag); nothing is sent
const client = { http: { tokenSubject: null } } as unknown as VaultClient;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coffer-small-prepare-'));
  await generateKeyFile(join(dir, 'k.key'));
  keys = await KeyFileDataKeys.open(join(dir, 'k.key'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe('prepareSmallFile with the caller\'s lstat', () => {
  it('seals an unchanged file whole', async () => {
    const p = join(dir, 'same.bin');
    await writeFile(p, Buffer.alloc(5000, 7));
    const expected = await lstat(p, { bigint: true });
    const prepared = await prepareSmallFile(client, p, { path: '/x/same.bin', keys, expected });
    expect(prepared.request.size).toBe(5000);
  });

  it('refuses a file that grew, or was replaced, after the lstat (CONFLICT)', async () => {
    const grew = join(dir, 'grew.bin');
    await writeFile(grew, Buffer.alloc(5000, 1));
    const before = await lstat(grew, { bigint: true });
    await appendFile(grew, Buffer.alloc(10, 2));
    await expect(prepareSmallFile(client, grew, { path: '/x/grew.bin', keys, expected: before })).rejects.toSatisfy((e: unknown) => isCofferError(e, 'CONFLICT'));
    const replaced = join(dir, 'replaced.bin');
    await writeFile(replaced, Buffer.alloc(5000, 1));
    const old = await lstat(replaced, { bigint: true });
    await writeFile(join(dir, 'new.bin'), Buffer.alloc(5000, 3));
    await rename(join(dir, 'new.bin'), replaced); // same size, another inode
    await expect(prepareSmallFile(client, replaced, { path: '/x/replaced.bin', keys, expected: old })).rejects.toSatisfy((e: unknown) => isCofferError(e, 'CONFLICT'));
  });
});
