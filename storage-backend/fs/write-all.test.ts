// One pwritev per pack (write-all.ts): the bytes land back to back whatever the number of buffers (more than
// IOV_MAX = 1024 too), and strace shows a pack of 200 chunks written with one pwritev and no pwrite.
import { randomBytes } from 'node:crypto';
import { open, readFile, realpath, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { have, joinResumed, runChild, tempRoot, type ChildResult } from './test-util.js';
import { writevAll } from './write-all.js';

describe('writevAll', () => {
  it('writes 3000 buffers (empty ones among them) back to back at a position, over IOV_MAX', async () => {
    const root = await tempRoot();
    try {
      const parts = Array.from({ length: 3000 }, (_, i) => (i % 7 === 3 ? Buffer.alloc(0) : randomBytes(1 + ((i * 131) % 5000))));
      const fh = await open(join(root, 'f'), 'w+');
      try {
        await fh.write(Buffer.from('head'), 0, 4, 0);
        await writevAll(fh, parts, 4);
      } finally {
        await fh.close();
      }
      expect((await readFile(join(root, 'f'))).equals(Buffer.concat([Buffer.from('head'), ...parts]))).toBe(true);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  for (const [count, calls] of [[200, 1], [1500, 2]] as const) {
    it(`a pack of ${count} chunks is written with ${calls} pwritev (IOV_MAX 1024 buffers each) and no pwrite`, async (ctx) => {
      if (!(await have('strace'))) ctx.skip('strace is not installed');
      const root = await tempRoot();
      const log = join(root, 'strace.log');
      try {
        const traced: ChildResult = await runChild(['strace', '-f', '-qq', '-o', log, '-e', 'trace=openat,close,pwrite64,pwritev,pwritev2,write,writev'], ['pack', root, String(count), '1000', '-', '-'])
          .catch((e: unknown) => ({ error: { code: 'STRACE', message: String(e) } }));
        if (traced.error?.code === 'STRACE') ctx.skip(`strace cannot trace here: ${traced.error.message.split('\n')[0]}`);
        const packId = (traced.ok as unknown as { packId: string }).packId;
        // a call another thread interrupts is split by strace -f ("<unfinished ...>", "<... resumed>"): joined back
        const lines = joinResumed((await readFile(log, 'utf8')).split('\n'));
        const packDir = join(await realpath(root), 'packs', packId.slice(0, 2)).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        const openTemp = lines.findIndex((l) => new RegExp(`openat\\(.*"${packDir}/\\.tmp-pack-[0-9a-f]{16}".*= \\d+$`).test(l));
        const fd = /= (\d+)$/.exec(lines[openTemp] ?? '')?.[1];
        expect(fd).toBeDefined();
        // from the temp file's open to its close (the fd number is reused afterwards)
        const closed = lines.findIndex((l, n) => n > openTemp && new RegExp(`(^|\\s)close\\(${fd}\\)`).test(l));
        expect(closed).toBeGreaterThan(openTemp);
        const on = (call: string): string[] => lines.slice(openTemp, closed).filter((l) => new RegExp(`(^|\\s)${call}\\(${fd},`).test(l));
        expect(on('pwritev')).toHaveLength(calls);
        expect([...on('pwrite64'), ...on('write'), ...on('writev'), ...on('pwritev2')]).toEqual([]);
        const size = (await readFile(join(root, 'packs', packId.slice(0, 2), packId))).length;
        expect(size).toBe(count * 1000 + count * 32 + 48);
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    });
  }
});
