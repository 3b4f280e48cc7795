// capYoungGeneration keeps V8's new space at its cap under an allocation-heavy load that grows it to 128 MiB
// without the cap. Each case runs in its own process: V8 flags are process-wide, and the new space's size
// depends on what the process allocated before.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { YOUNG_GENERATION_CAP_BYTES } from './young-generation-cap.js';

const MODULE = fileURLToPath(new URL('./young-generation-cap.ts', import.meta.url));

/** The new space's size (bytes) after a fast allocating, partly surviving loop, with or without the cap. */
function newSpaceAfterLoad(capped: boolean): number {
  const script = `
    const { capYoungGeneration, newSpaceBytes } = await import(${JSON.stringify(MODULE)});
    if (${capped}) capYoungGeneration();
    const keep = [];
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < 250000; i++) {
        const o = { i, pair: [i, i + 1], name: 'file-' + i };
        if (i % 500 === 0) { keep.push(o); if (keep.length > 2000) keep.shift(); }
      }
      await new Promise((r) => setImmediate(r)); // the event loop turns, as in the CLI and the service
    }
    process.stdout.write(String(newSpaceBytes()));
  `;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 120_000 });
  return Number(out.trim());
}

describe('capYoungGeneration', () => {
  it('keeps the new space at the cap where V8 would grow it past', () => {
    const free = newSpaceAfterLoad(false);
    const capped = newSpaceAfterLoad(true);
    expect(free).toBeGreaterThan(YOUNG_GENERATION_CAP_BYTES); // else this load does not test the cap
    expect(capped).toBeGreaterThan(0);
    expect(capped).toBeLessThanOrEqual(YOUNG_GENERATION_CAP_BYTES);
  }, 240_000);
});
