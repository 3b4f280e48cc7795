// HTTP helpers of the storage service: the hono environment type, JSON error bodies, bounded JSON request
// bodies with strict fields, path parameters and the Range header.
import type { HttpBindings } from '@hono/node-server';
import type { Context } from 'hono';
import { CofferError, ErrorCode, toCofferError } from '../errors.js';
import { JsonSyntaxError, parseStrictJson } from '../strict-json.js';
import type { ByteRange } from '../../storage-backend/types.js';
import type { Actor } from '../vault/index.js';

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export type ApiEnv = {
  Bindings: HttpBindings;
  Variables: { actor: Actor; requestId: string; errorCode?: string };
};
export type Ctx = Context<ApiEnv>;

export const MAX_JSON_BYTES = 64 * 1024;

/**
 * The JSON error body and status of any thrown value (status from httpStatusOf, never from the message).
 * A server-side failure marked retryable (the metadata store unreachable or failing over, a transient I/O
 * error) is `503 UNAVAILABLE`, which clients retry, instead of a 500 they must treat as final. Server-side
 * failures keep their detail (driver messages name hosts) in the log, keyed by the request id, not in the answer.
 */
export function errorResponse(e: unknown): { status: number; body: { error: { code: string; message: string } }; error: CofferError } {
  const err = toCofferError(e);
  if (err.httpStatus >= 500 && err.retryable) {
    return { status: 503, body: { error: { code: ErrorCode.UNAVAILABLE, message: 'temporarily unavailable; retry shortly' } }, error: err };
  }
  const message = err.code === ErrorCode.INTERNAL ? 'internal error' : err.code === ErrorCode.METADATA ? 'metadata store error' : err.message;
  return { status: err.httpStatus, body: { error: { code: err.code, message } }, error: err };
}

function bad(message: string): CofferError {
  return new CofferError(ErrorCode.INVALID_ARGUMENT, message);
}

/** Reads a JSON object body of at most 64 KiB, refusing unknown fields. Throws INVALID_ARGUMENT, PAYLOAD_TOO_LARGE. */
export async function readJson(c: Ctx, allowed: readonly string[]): Promise<Record<string, unknown>> {
  const type = c.req.header('content-type') ?? '';
  if (!/^application\/json\s*(;|$)/i.test(type)) throw bad('Content-Type must be application/json');
  const declared = c.req.header('content-length');
  if (declared !== undefined && Number(declared) > MAX_JSON_BYTES) throw new CofferError(ErrorCode.PAYLOAD_TOO_LARGE, `JSON body over ${MAX_JSON_BYTES} bytes`);
  const parts: Buffer[] = [];
  let total = 0;
  for await (const chunk of c.env.incoming) {
    total += (chunk as Buffer).length;
    if (total > MAX_JSON_BYTES) throw new CofferError(ErrorCode.PAYLOAD_TOO_LARGE, `JSON body over ${MAX_JSON_BYTES} bytes`);
    parts.push(chunk as Buffer);
  }
  return jsonObjectFrom(Buffer.concat(parts), allowed);
}

/** Parses bytes as a strict JSON object (UTF-8, no repeated keys), refusing unknown fields. Throws INVALID_ARGUMENT. */
export function jsonObjectFrom(bytes: Uint8Array, allowed: readonly string[]): Record<string, unknown> {
  let text: string;
  try {
    text = STRICT_UTF8.decode(bytes); // never a silent U+FFFD in a path or a name
  } catch (_e) {
    throw bad('body is not valid UTF-8');
  }
  let value: unknown;
  try {
    value = parseStrictJson(text);
  } catch (e) {
    if (!(e instanceof JsonSyntaxError)) throw e;
    throw bad(`body is not usable JSON: ${e.message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('body must be a JSON object');
  for (const k of Object.keys(value)) if (!allowed.includes(k)) throw bad(`unknown field "${k}"`);
  return value as Record<string, unknown>;
}

export const field = {
  string(o: Record<string, unknown>, k: string): string {
    const v = o[k];
    if (typeof v !== 'string') throw bad(`"${k}" must be a string`);
    return v;
  },
  optBool(o: Record<string, unknown>, k: string): boolean | undefined {
    const v = o[k];
    if (v !== undefined && typeof v !== 'boolean') throw bad(`"${k}" must be a boolean`);
    return v as boolean | undefined;
  },
  int(o: Record<string, unknown>, k: string): number {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw bad(`"${k}" must be a non-negative integer`);
    return v;
  },
  optString(o: Record<string, unknown>, k: string): string | undefined {
    return o[k] === undefined ? undefined : field.string(o, k);
  },
  optInt(o: Record<string, unknown>, k: string): number | undefined {
    return o[k] === undefined ? undefined : field.int(o, k);
  },
};

/**
 * An optional query parameter, decoded strictly: percent-escapes that are not UTF-8 (a stray byte, an encoded
 * surrogate) are an error, not U+FFFD, and a parameter given twice is an error, not "the first one wins".
 * Throws INVALID_ARGUMENT.
 */
export function optionalQuery(c: Ctx, name: string): string | undefined {
  const search = new URL(c.req.url).search.slice(1);
  let found: string | undefined;
  for (const pair of search === '' ? [] : search.split('&')) {
    const eq = pair.indexOf('=');
    const key = decodeStrict(eq < 0 ? pair : pair.slice(0, eq), 'query parameter name');
    if (key !== name) continue;
    if (found !== undefined) throw bad(`query parameter "${name}" is given more than once`);
    found = eq < 0 ? '' : decodeStrict(pair.slice(eq + 1), `query parameter "${name}"`);
  }
  return found;
}

function decodeStrict(raw: string, what: string): string {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch (_e) {
    throw bad(`${what} is not valid percent-encoded UTF-8`);
  }
}

/** A required query parameter (see optionalQuery). Throws INVALID_ARGUMENT. */
export function query(c: Ctx, name: string): string {
  const v = optionalQuery(c, name);
  if (v === undefined) throw bad(`query parameter "${name}" is required`);
  return v;
}

/** A decimal u32 path parameter. Throws INVALID_ARGUMENT. */
export function indexParam(c: Ctx, name = 'index'): number {
  const v = c.req.param(name) ?? '';
  if (!/^(?:0|[1-9]\d{0,9})$/.test(v) || Number(v) > 0xffff_ffff) throw bad(`${name} must be a decimal integer 0..2^32-1, without leading zeros`);
  return Number(v);
}

/** Boolean query flag: "true"/"1" or "false"/"0"/absent. Throws INVALID_ARGUMENT. */
export function flag(c: Ctx, name: string): boolean {
  const v = optionalQuery(c, name);
  if (v === undefined || v === 'false' || v === '0') return false;
  if (v === 'true' || v === '1') return true;
  throw bad(`query parameter "${name}" must be true or false`);
}

/**
 * Interprets a Range header against a resource of `size` bytes (RFC 9110 §14): one `bytes=a-b`, `a-` or `-n`.
 * Returns undefined for no/invalid/multiple ranges (serve the whole body); throws RANGE_NOT_SATISFIABLE
 * (details.size) when the range starts past the end or is an empty suffix.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (!header) return undefined;
  // any number of digits: a position past 2^53 is past the end of every chunk (Number keeps its order)
  const m = /^bytes=(\d{0,32})-(\d{0,32})$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  const unsatisfiable = (): CofferError =>
    new CofferError(ErrorCode.RANGE_NOT_SATISFIABLE, `range not satisfiable for ${size} bytes`, { details: { size } });
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0 || size === 0) throw unsatisfiable();
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  if (m[2] !== '' && Number(m[2]) < start) return undefined; // invalid: ignored
  if (start >= size) throw unsatisfiable();
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  return { start, end };
}
