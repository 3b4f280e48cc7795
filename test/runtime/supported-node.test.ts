// The supported Node.js range: package.json `engines` and the `coffer` command's own check say the same, the
// suite itself runs on a supported Node, and the command refuses any other Node in one line before it loads.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
// @ts-expect-error plain .mjs without types, loaded as a real user would load it
import { SUPPORTED_NODE, unsupportedNode } from '../../bin/supported-node.mjs';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const coffer = path.join(repo, 'bin', 'coffer.mjs');
const check = unsupportedNode as (version?: string, range?: string) => string | null;

describe('supported Node.js', () => {
  it('package.json engines.node is the range the coffer command enforces', () => {
    const pkg = JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8')) as { engines: { node: string } };
    expect(pkg.engines.node).toBe(SUPPORTED_NODE);
  });

  it('the suite runs on a supported Node (npm test uses the runtime that npm ci installed)', () => {
    expect(check(process.versions.node)).toBeNull();
  });

  it('accepts Node 24 from 24.11.0 on, refuses every other line', () => {
    for (const v of ['24.11.0', 'v24.11.0', '24.11.3', '24.21.0', '24.100.0']) expect(check(v), v).toBeNull();
    for (const v of ['20.20.2', 'v22.13.0', '24.10.9', '24.0.0', '25.0.0', '26.10.0', '18.0.0', 'garbage', '']) {
      const message = check(v);
      expect(message, v).toMatch(/^Node\.js .* is not supported: Coffer needs Node\.js \^24\.11\.0 .*\[UNSUPPORTED_RUNTIME\]$/);
      expect(message).not.toContain('\n');
    }
  });

  it('`coffer` on an unsupported Node prints one line, nothing on stdout, exits 1, and loads nothing else', () => {
    // process.versions.node made to read 20.20.2 before bin/coffer.mjs runs: the same code path as a real Node 20
    const fake = 'data:text/javascript,Object.defineProperty(process.versions,"node",{value:"20.20.2"})';
    const r = spawnSync(process.execPath, ['--import', fake, coffer, '--help'], { encoding: 'utf8', env: { ...process.env, COFFER_DEBUG: '' } });
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^coffer: Node\.js v20\.20\.2 is not supported: .*\[UNSUPPORTED_RUNTIME\]\n$/);
  });

  it('a real older Node on this machine (the one npm itself may run on) is refused the same way', (ctx) => {
    const other = otherNode();
    if (other === null) return ctx.skip('no Node outside the supported range on PATH');
    const r = spawnSync(other.path, [coffer, 'ls'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^coffer: Node\\.js ${other.version.replace(/\./g, '\\.')} is not supported`))]);
  });
});

/** The first `node` on PATH, past node_modules/.bin, whose version is outside the supported range. */
function otherNode(): { path: string; version: string } | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '' || dir.includes(`node_modules${path.sep}.bin`)) continue;
    const candidate = path.join(dir, 'node');
    if (!existsSync(candidate)) continue;
    const version = execFileSync(candidate, ['--version'], { encoding: 'utf8' }).trim();
    if (check(version) !== null) return { path: candidate, version };
  }
  return null;
}
