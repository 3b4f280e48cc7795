// The repository alone passes its tests: no test, script or source file reaches a folder outside it (the
// team's shared fixtures sat in ../shared once; a clone of Coffer by itself then failed). CI runs with a copy
// of shared/ beside the clone, so only this check would notice such a path coming back.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const SKIP_DIRS = new Set(['node_modules', 'dist', '.git', 'data', 'coverage', '.tmp', 'bin']);
const TEXT = /\.(ts|mts|mjs|cjs|js|json|sh|py|go|md|yml|yaml)$|^run$/;
// spelled in pieces so that this file does not match itself
const FORBIDDEN = [['..', 'shared', ''].join('/'), ['shared', 'fixtures'].join('/'), ['', 'work', 'shared'].join('/')];

function* files(dir: string, top: boolean): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) {
      // bin/ at the top holds bin/coffer.mjs; test/servers/bin holds built binaries
      if (SKIP_DIRS.has(e.name) && !(top && e.name === 'bin')) continue;
      yield* files(full, false);
    } else if (e.isFile() && TEXT.test(e.name)) {
      yield full;
    }
  }
}

describe('the repository is self-contained', () => {
  it('no file refers to the shared folder outside the repository', () => {
    const offenders: string[] = [];
    for (const file of files(repo, true)) {
      const text = readFileSync(file, 'utf8');
      for (const f of FORBIDDEN) if (text.includes(f)) offenders.push(`${path.relative(repo, file)}: ${f}`);
    }
    expect(offenders).toEqual([]);
  });
});
