// The small-file reader (small-file-read.ts) makes the same checks whether it reads synchronously or through
// fs/promises: whole files come back with their identity; symbolic links, directories, FIFOs, files over one
// chunk, and files changed or replaced after the caller's lstat are refused with the same codes. A reader whose
// synchronous reads turn slow goes back to fs/promises for good.
import { execFileSync } from 'node:child_process';
import { appendFile, lstat, mkdir, mkdtemp, rename, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCofferError, type ErrorCode } from '../errors.js';
import { SmallFileReader } from './small-file-read.js';
import { identityOf } from './upload.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coffer-small-read-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

const code = (c: ErrorCode) => (e: unknown): boolean => isCofferError(e, c);

for (const sync of [true, false]) {
  describe(`SmallFileReader (${sync ? 'synchronous' : 'fs/promises'})`, () => {
    const reader = () => new SmallFileReader({ sync, slowMs: 1e9 });

    it('reads a file whole, with the identity of its lstat', async () => {
      const p = join(dir, `whole-${sync}.bin`);
      const bytes = Buffer.from(Array.from({ length: 70_000 }, (_, i) => i % 251));
      await writeFile(p, bytes);
      const st = await reader().lstat(p);
      for (const expected of [st, undefined]) {
        const got = await reader().read(p, expected);
        expect(got.plaintext.equals(bytes)).toBe(true);
        expect(got.identity).toBe(identityOf(st));
      }
      await writeFile(join(dir, `empty-${sync}`), '');
      expect((await reader().read(join(dir, `empty-${sync}`))).plaintext.length).toBe(0);
    });

    it('refuses links, directories, FIFOs, missing files and files over one chunk', async () => {
      const target = join(dir, `t-${sync}`);
      await writeFile(target, 'x');
      await symlink(target, join(dir, `link-${sync}`));
      await expect(reader().read(join(dir, `link-${sync}`))).rejects.toSatisfy(code('INVALID_ARGUMENT'));
      await mkdir(join(dir, `d-${sync}`));
      await expect(reader().read(join(dir, `d-${sync}`))).rejects.toSatisfy(code('IS_A_DIRECTORY'));
      await expect(reader().read(join(dir, `nothing-${sync}`))).rejects.toSatisfy(code('NOT_FOUND'));
      const fifo = join(dir, `fifo-${sync}`);
      execFileSync('mkfifo', [fifo]);
      await expect(reader().read(fifo)).rejects.toSatisfy(code('INVALID_ARGUMENT')); // and does not hang
      const big = join(dir, `big-${sync}`);
      await writeFile(big, '');
      await truncate(big, 8 * 1024 * 1024 + 1);
      await expect(reader().read(big)).rejects.toSatisfy(code('INVALID_ARGUMENT'));
    });

    it('refuses a file that grew, shrank or was replaced after the lstat (CONFLICT)', async () => {
      const p = join(dir, `c-${sync}`);
      await writeFile(p, Buffer.alloc(5000, 1));
      const before = await lstat(p, { bigint: true });
      await appendFile(p, 'more');
      await expect(reader().read(p, before)).rejects.toSatisfy(code('CONFLICT'));
      const s = join(dir, `s-${sync}`);
      await writeFile(s, Buffer.alloc(5000, 1));
      const sBefore = await lstat(s, { bigint: true });
      await truncate(s, 100);
      await expect(reader().read(s, sBefore)).rejects.toSatisfy(code('CONFLICT'));
      const r = join(dir, `r-${sync}`);
      await writeFile(r, Buffer.alloc(5000, 1));
      const old = await lstat(r, { bigint: true });
      await writeFile(join(dir, `n-${sync}`), Buffer.alloc(5000, 3));
      await rename(join(dir, `n-${sync}`), r); // same size, another inode
      await expect(reader().read(r, old)).rejects.toSatisfy(code('CONFLICT'));
    });
  });
}

describe('SmallFileReader going back to fs/promises', () => {
  it('stays synchronous while reads are fast, and leaves it after slowLimit slow reads', async () => {
    const p = join(dir, 'pace.bin');
    await writeFile(p, Buffer.alloc(1000, 9));
    const fast = new SmallFileReader({ slowMs: 1e9, slowLimit: 1 });
    for (let i = 0; i < 5; i++) await fast.read(p);
    expect(fast.sync).toBe(true);
    const slow = new SmallFileReader({ slowMs: -1, slowLimit: 3 }); // every read counts as slow
    await slow.read(p);
    await slow.read(p);
    expect(slow.sync).toBe(true);
    await slow.read(p);
    expect(slow.sync).toBe(false);
    expect((await slow.read(p)).plaintext.length).toBe(1000); // and still reads, now through fs/promises
    expect(new SmallFileReader({ sync: false }).sync).toBe(false);
  });
});
