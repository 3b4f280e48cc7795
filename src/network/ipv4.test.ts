import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { contains, formatIp, overlaps, parseCidr, parseIp, portRangeMatches } from './ipv4.js';

/** Does the masked match text ("22" or "0x1f40/0xffc0") match port p? */
function matches(m: string, p: number): boolean {
  const [v, mask] = m.includes('/') ? m.split('/').map((x) => parseInt(x, 16)) as [number, number] : [Number(m), 0xffff];
  return (p & mask) === v;
}

describe('ipv4', () => {
  it('parses and formats addresses and CIDRs, refusing host bits and junk', () => {
    expect(formatIp(parseIp('10.1.2.3'))).toBe('10.1.2.3');
    expect(parseIp('255.255.255.255')).toBe(0xffffffff);
    expect(() => parseIp('10.1.2')).toThrow(/not an IPv4/);
    expect(() => parseIp('::1')).toThrow(/not an IPv4/);
    expect(parseCidr('10.1.0.0/16')).toEqual({ base: parseIp('10.1.0.0'), prefix: 16 });
    expect(() => parseCidr('10.1.0.5/24')).toThrow(/did you mean 10.1.0.0\/24/);
    expect(() => parseCidr('10.1.0.0/33')).toThrow(/not an IPv4 CIDR/);
    expect(contains(parseCidr('10.1.0.0/24'), parseIp('10.1.0.255'))).toBe(true);
    expect(contains(parseCidr('10.1.0.0/24'), parseIp('10.1.1.0'))).toBe(false);
    expect(overlaps(parseCidr('10.0.0.0/8'), parseCidr('10.200.3.0/24'))).toBe(true);
    expect(overlaps(parseCidr('10.1.0.0/24'), parseCidr('10.1.1.0/24'))).toBe(false);
  });

  it('covers a port range exactly with masked matches (checked against every port)', () => {
    expect(portRangeMatches(22, 22)).toEqual(['22']);
    expect(portRangeMatches(8000, 8007)).toEqual(['0x1f40/0xfff8']);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 0, max: 1000 }), (lo, span) => {
        const hi = Math.min(65535, lo + span);
        const ms = portRangeMatches(lo, hi);
        expect(ms.length).toBeLessThanOrEqual(30);
        for (let p = Math.max(0, lo - 40); p <= Math.min(65535, hi + 40); p++) {
          expect(ms.some((m) => matches(m, p))).toBe(p >= lo && p <= hi);
        }
      }),
      { numRuns: 30 },
    );
  });
});
