// Range and conditional-request rules as S3 applies them (RFC 9110 §13 and §14, with S3's precedence:
// If-Match before If-Unmodified-Since, If-None-Match before If-Modified-Since). Dates compare at whole seconds,
// the precision of Last-Modified.
import { S3Error } from './errors.js';

export interface ByteRange { start: number; end: number }

/**
 * The range to serve for a `Range` header on an object of `size` bytes: null for no header or one we ignore as
 * RFC 9110 says (not `bytes=`); throws InvalidRange when it cannot be satisfied, NotImplemented for several.
 */
export function parseRange(header: string | null, size: number): ByteRange | null {
  if (header === null) return null;
  const m = /^bytes=\s*(.*)$/i.exec(header.trim());
  if (!m) return null;
  const spec = (m[1] as string).trim();
  if (spec.includes(',')) throw new S3Error('NotImplemented', 'multiple byte ranges are not supported');
  const r = /^(\d*)-(\d*)$/.exec(spec);
  if (!r || (r[1] === '' && r[2] === '')) return null;
  const unsatisfiable = (): S3Error => new S3Error('InvalidRange', 'The requested range is not satisfiable', { ActualObjectSize: String(size), RangeRequested: header });
  if (r[1] === '') {
    const n = Number(r[2]);
    if (n === 0 || size === 0) throw unsatisfiable();
    return { start: Math.max(0, size - n), end: size };
  }
  const start = Number(r[1]);
  const last = r[2] === '' ? size - 1 : Math.min(Number(r[2]), size - 1);
  if (r[2] !== '' && Number(r[2]) < start) return null; // syntactically invalid: ignored
  if (start >= size) throw unsatisfiable();
  return { start, end: last + 1 };
}

export interface Validators { etag: string; lastModified: Date }

export interface Conditions {
  ifMatch: string | null;
  ifNoneMatch: string | null;
  ifModifiedSince: string | null;
  ifUnmodifiedSince: string | null;
}

export function conditionsFrom(headers: Headers, prefix = 'if-'): Conditions {
  return {
    ifMatch: headers.get(`${prefix}match`),
    ifNoneMatch: headers.get(`${prefix}none-match`),
    ifModifiedSince: headers.get(`${prefix}modified-since`),
    ifUnmodifiedSince: headers.get(`${prefix}unmodified-since`),
  };
}

/** 'ok', or the outcome S3 gives: 412 PreconditionFailed or 304 NotModified (the caller decides the shape). */
export function evaluateConditions(c: Conditions, v: Validators): 'ok' | 'precondition-failed' | 'not-modified' {
  const seconds = Math.floor(v.lastModified.getTime() / 1000);
  if (c.ifMatch !== null) {
    if (!etagListMatches(c.ifMatch, v.etag)) return 'precondition-failed';
  } else if (c.ifUnmodifiedSince !== null) {
    const d = httpDate(c.ifUnmodifiedSince);
    if (d !== null && seconds > d) return 'precondition-failed';
  }
  if (c.ifNoneMatch !== null) {
    if (etagListMatches(c.ifNoneMatch, v.etag)) return 'not-modified';
  } else if (c.ifModifiedSince !== null) {
    const d = httpDate(c.ifModifiedSince);
    if (d !== null && seconds <= d) return 'not-modified';
  }
  return 'ok';
}

function etagListMatches(list: string, etag: string): boolean {
  if (list.trim() === '*') return true;
  const bare = etag.replace(/^"|"$/g, '');
  return list.split(',').some((t) => t.trim().replace(/^W\//, '').replace(/^"|"$/g, '') === bare);
}

/** An HTTP date (or ISO date) as whole seconds since the epoch; null when it cannot be parsed (then ignored). */
function httpDate(s: string): number | null {
  const t = Date.parse(s);
  return Number.isNaN(t) ? null : Math.floor(t / 1000);
}

/** Last-Modified / Date header form. */
export function toHttpDate(d: Date): string {
  return d.toUTCString();
}

/** ListObjects / CopyObject form: ISO-8601 with milliseconds. */
export function toIsoDate(d: Date): string {
  return d.toISOString();
}
