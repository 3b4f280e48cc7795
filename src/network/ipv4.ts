// IPv4 arithmetic for IPAM and the flow compiler: addresses as unsigned 32-bit integers, CIDR blocks, and
// port ranges as the masked matches OpenFlow takes. Parsing leans on node:net's isIPv4 (dotted quad only).
import { isIPv4 } from 'node:net';
import { CofferError, ErrorCode } from '../errors.js';

export interface Cidr {
  /** The network address (host bits zero). */
  readonly base: number;
  readonly prefix: number;
}

/** Address text → integer. Throws INVALID_ARGUMENT. */
export function parseIp(text: string, what = 'address'): number {
  if (!isIPv4(text)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `${what} "${text}" is not an IPv4 address`);
  return text.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

export function formatIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** "10.1.0.0/24" → Cidr. Host bits must be zero (a typo like 10.1.0.5/24 is refused, not rounded). */
export function parseCidr(text: string, what = 'CIDR'): Cidr {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(text);
  const prefix = m ? Number(m[2]) : NaN;
  if (!m || !(prefix >= 0 && prefix <= 32)) throw new CofferError(ErrorCode.INVALID_ARGUMENT, `${what} "${text}" is not an IPv4 CIDR like 10.1.0.0/24`);
  const base = parseIp(m[1] as string, what);
  if ((base & ~maskOf(prefix)) >>> 0 !== 0) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `${what} "${text}" has host bits set (did you mean ${formatCidr({ base: (base & maskOf(prefix)) >>> 0, prefix })}?)`);
  }
  return { base, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.base)}/${c.prefix}`;
}

export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function size(c: Cidr): number {
  return 2 ** (32 - c.prefix);
}

export function contains(c: Cidr, ip: number): boolean {
  return ((ip & maskOf(c.prefix)) >>> 0) === c.base;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return ((a.base & maskOf(p)) >>> 0) === ((b.base & maskOf(p)) >>> 0);
}

/**
 * Covers the port range [lo, hi] with value/mask pairs, the fewest that OpenFlow's masked tp_dst match needs
 * (the classic prefix split: at most 2·16 − 2 entries). Returns "22" for a single port, else "0x1f40/0xffc0".
 */
export function portRangeMatches(lo: number, hi: number): string[] {
  const out: string[] = [];
  let start = lo;
  while (start <= hi) {
    let bits = 0;
    while (bits < 16 && (start & ((1 << (bits + 1)) - 1)) === 0 && start + (1 << (bits + 1)) - 1 <= hi) bits++;
    const mask = (0xffff << bits) & 0xffff;
    out.push(bits === 0 ? String(start) : `0x${start.toString(16)}/0x${mask.toString(16)}`);
    start += 1 << bits;
  }
  return out;
}
