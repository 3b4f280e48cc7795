// `coffer bench net` still runs end to end at a small size; the figures themselves are judged in
// docs/benchmarks.md, never here. What is checked: every figure is measured, and a one-rule change touches
// exactly the rule's flows: 3 on each host where its source network has ports (the ACL flow and the
// established-pass flows of tables 21 and 51); the synthetic state puts net000 on every host.
import { describe, expect, it } from 'vitest';
import { benchNet } from '../../bench/net.js';

describe('bench net, small', () => {
  it('measures compile time, the one-rule change and the scaling comparison', async () => {
    const lines: string[] = [];
    const r = await benchNet({ ports: 200, hosts: 4, networks: 4, rounds: 1, scaling: [40, 400], log: (l) => lines.push(l) });
    expect(r.compileMs).toBeGreaterThan(0);
    expect(r.flows).toBeGreaterThan(200);
    expect(r.oneRuleChange).toMatchObject({ flowsTouched: 3 * 4, hostsTouched: 4 });
    expect(r.scaling.perPortRatio).toBeGreaterThan(0);
    expect(lines.join('\n')).toMatch(/one-rule change \(add a policy\): 12 flows touched on 4 of 4 hosts/);
  });
});
