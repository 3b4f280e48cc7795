// Where `coffer get` puts a verified file: never over something that exists without --force (a dangling symbolic
// link, or a file that appears while the download runs), never leaving a partial or complete temporary file
// behind when the last step fails, and with room for a name up to the 255-byte limit. Real service over HTTP.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHUNK_SIZE } from '../crypto/index.js';
import type { KeyFileDataKeys } from './data-keys.js';
import { downloadFile } from './download.js';
import { placeFile } from './small-file.js';
import { downloadTree } from './tree-transfer.js';
import { uploadFile } from './upload.js';
import { startClientTestEnv, type ClientTestEnv } from './test-env.js';
import type { VaultClient } from './vault-client.js';

let env: ClientTestEnv;
let work: string;
let client: VaultClient;
let keys: KeyFileDataKeys;
const data = randomBytes(2 * CHUNK_SIZE + 3);
const LONG = `${'n'.repeat(250)}.bin`; // 254 bytes: a legal name

beforeAll(async () => {
  env = await startClientTestEnv('coffer-dest-');
  ({ work, client, keys } = env);
  await writeFile(path.join(work, 'src.bin'), data);
  await uploadFile(client, path.join(work, 'src.bin'), { path: '/f.bin', keys });
  await uploadFile(client, path.join(work, 'src.bin'), { path: `/${LONG}`, keys });
});
afterAll(async () => env.close());

async function leftovers(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.includes('coffer-partial'));
}

describe('the destination of a download', () => {
  it('a destination in a directory that does not exist is NOT_FOUND naming that directory, not the temporary file', async () => {
    const missing = path.join(work, 'no-such-dir');
    const e = await downloadFile(client, '/f.bin', path.join(missing, 'f.bin'), { keys }).catch((err: unknown) => err);
    expect(e).toMatchObject({ code: 'NOT_FOUND', message: `${missing} is not an existing directory` });
  });

  // The signal handler (src/cli/interrupt.ts) can only remove a name it was told: told after open(2), a signal in
  // between left the partial plaintext behind (and made test/e2e/cli.test.ts's Ctrl-C case flaky).
  it('names the temporary file (what a signal removes) before it exists, and withdraws a name never created', async () => {
    const dir = path.join(work, 'order');
    await mkdir(dir);
    const told: { path: string | null; existed: boolean }[] = [];
    const onTempFile = (p: string | null): void => void told.push({ path: p, existed: p !== null && existsSync(p) });
    await downloadFile(client, '/f.bin', path.join(dir, 'f.bin'), { keys, onTempFile });
    expect(told).toEqual([{ path: expect.stringContaining(`${dir}/.coffer-partial-`), existed: false }, { path: null, existed: false }]);
    told.length = 0;
    await placeFile(path.join(dir, 'g.bin'), data.subarray(0, 10), { onTempFile });
    expect(told).toEqual([{ path: expect.stringContaining(`${dir}/.coffer-partial-`), existed: false }, { path: null, existed: false }]);
    // open(2) fails: the name given is taken back, nothing was created
    for (const attempt of [
      () => downloadFile(client, '/f.bin', path.join(work, 'no-such-dir', 'f.bin'), { keys, onTempFile }),
      () => placeFile(path.join(work, 'no-such-dir', 'g.bin'), data.subarray(0, 10), { onTempFile }),
    ]) {
      told.length = 0;
      await expect(attempt()).rejects.toMatchObject({ code: 'NOT_FOUND' });
      expect(told.map((t) => t.path === null)).toEqual([false, true]);
    }
    expect(await leftovers(dir)).toEqual([]);
  });

  it('a dangling symbolic link is something that exists: refused without --force, and left alone', async () => {
    const dir = path.join(work, 'dangling');
    await mkdir(dir);
    await symlink(path.join(work, 'nowhere'), path.join(dir, 'f.bin'));
    await expect(downloadFile(client, '/f.bin', path.join(dir, 'f.bin'), { keys })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    expect(await readlink(path.join(dir, 'f.bin'))).toBe(path.join(work, 'nowhere'));
    expect(await leftovers(dir)).toEqual([]);
  });

  it('a file that appears at the destination during the download is kept, not replaced', async () => {
    const dir = path.join(work, 'race');
    await mkdir(dir);
    const dest = path.join(dir, 'f.bin');
    let created = false;
    const got = downloadFile(client, '/f.bin', dest, {
      keys, concurrency: 1,
      onProgress: () => {
        if (created) return;
        created = true;
        void writeFile(dest, 'precious');
      },
    });
    await expect(got).rejects.toMatchObject({ code: 'ALREADY_EXISTS', message: expect.stringMatching(/appeared during the download/) });
    expect(await readFile(dest, 'utf8')).toBe('precious');
    expect(await leftovers(dir)).toEqual([]);
  });

  it('when the verified file cannot take its name (a directory is there), no temporary file stays behind', async () => {
    const dir = path.join(work, 'isdir');
    await mkdir(path.join(dir, 'f.bin'), { recursive: true });
    await writeFile(path.join(dir, 'f.bin', 'inside'), 'x');
    // `get -f /f.bin dir/`: the file would be dir/f.bin, where a non-empty directory stands
    await expect(downloadFile(client, '/f.bin', `${dir}/`, { keys, overwrite: true })).rejects.toThrow();
    expect(await leftovers(dir)).toEqual([]);
    expect(await readdir(path.join(dir, 'f.bin'))).toEqual(['inside']);
  });

  it('a name at the length limit downloads (the temporary name does not grow with it)', async () => {
    const dir = path.join(work, 'long');
    await mkdir(dir);
    const r = await downloadFile(client, `/${LONG}`, `${dir}/`, { keys });
    expect(path.basename(r.destination)).toBe(LONG);
    expect((await readFile(r.destination)).equals(data)).toBe(true);
    expect(await leftovers(dir)).toEqual([]);
  });

  it('get -r does not write through a symbolic link that stands where a subdirectory belongs', async () => {
    await client.mkdir('/tree/sub', true);
    await uploadFile(client, path.join(work, 'src.bin'), { path: '/tree/sub/g.bin', keys });
    const dir = path.join(work, 'tree-dest');
    const elsewhere = path.join(work, 'elsewhere');
    await mkdir(dir);
    await mkdir(elsewhere);
    await symlink(elsewhere, path.join(dir, 'sub'));
    await expect(downloadTree(client, '/tree', dir, { keys })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    expect(await readdir(elsewhere)).toEqual([]);
    // the destination itself may be a link: the user chose it
    const viaLink = path.join(work, 'dest-link');
    await mkdir(path.join(work, 'real-dest'));
    await symlink(path.join(work, 'real-dest'), viaLink);
    await downloadTree(client, '/tree', viaLink, { keys });
    expect(await readdir(path.join(work, 'real-dest', 'sub'))).toEqual(['g.bin']);
  });

  it('get -r names each small file\'s temporary name (what Ctrl-C removes) before a worker creates it, and withdraws it once placed', async () => {
    await client.mkdir('/small', true);
    const bodies = Array.from({ length: 5 }, (_, i) => randomBytes(1000 + i));
    for (const [i, b] of bodies.entries()) {
      await writeFile(path.join(work, `s${i}`), b);
      await uploadFile(client, path.join(work, `s${i}`), { path: `/small/s${i}`, keys });
    }
    const dir = path.join(work, 'small-out');
    const live = new Set<string>();
    const named: string[] = [];
    await downloadTree(client, '/small', dir, {
      keys,
      onTempFile: (p, exists) => {
        if (exists) {
          live.add(p);
          named.push(p);
        } else {
          live.delete(p);
        }
      },
    });
    expect(named.length).toBe(bodies.length);
    expect(named.every((p) => path.dirname(p) === dir && path.basename(p).startsWith('.coffer-partial-'))).toBe(true);
    expect(live.size).toBe(0);
    for (const [i, b] of bodies.entries()) expect((await readFile(path.join(dir, `s${i}`))).equals(b)).toBe(true);
    expect(await leftovers(dir)).toEqual([]);
  });
});
