#!/usr/bin/env node
// The `coffer` command: checks the Node.js version, then runs the compiled CLI (built by `npm ci` through the
// `prepare` script).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { unsupportedNode } from './supported-node.mjs';

const unsupported = unsupportedNode();
if (unsupported !== null) {
  process.stderr.write(`coffer: ${unsupported}\n`);
  process.exit(1);
}

const compiled = new URL('../dist/src/cli/run.js', import.meta.url);
if (!existsSync(fileURLToPath(compiled))) {
  process.stderr.write('coffer: not built yet; run `npm run build` (npm ci does it for you)\n');
  process.exit(1);
}
await import(compiled.href);
