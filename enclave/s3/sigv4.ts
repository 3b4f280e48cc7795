// AWS Signature Version 4 verification for S3 requests: the Authorization header form and presigned URLs
// (query form). Spec: https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-requests.html
// The canonical query string comes from @smithy/signature-v4 (the AWS SDK's own signer); the signing key and
// HMACs from node:crypto; the signature is compared in constant time. Everything fails closed: a missing
// field, an unsigned x-amz-* header, a clock skew over 15 minutes, an expired URL are refusals, never passes.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { getCanonicalQuery } from '@smithy/signature-v4';
import { S3Error } from './errors.js';

export const ALGORITHM = 'AWS4-HMAC-SHA256';
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
export const STREAMING_SIGNED = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';
export const STREAMING_SIGNED_TRAILER = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER';
export const STREAMING_UNSIGNED_TRAILER = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
/** Header-signed requests may be this far from our clock (S3's own limit). */
export const MAX_SKEW_MS = 15 * 60 * 1000;
/** Presigned URLs live at most 7 days (S3's limit). */
export const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;

/** What the verifier needs of a request: the raw (still percent-encoded) path and query, and its headers. */
export interface SignedRequest {
  method: string;
  rawPath: string;
  rawQuery: string;
  headers: Headers;
}

/** Access key id → the user it belongs to and its secret; null for an unknown or revoked key. */
export type SecretLookup = (accessKeyId: string) => Promise<{ user: string; secret: string } | null>;

export interface VerifiedRequest {
  user: string;
  accessKeyId: string;
  /** How the body is to be checked: a hex SHA-256, UNSIGNED-PAYLOAD or one of the STREAMING-* modes. */
  payloadHash: string;
  /** For streaming bodies: the seed signature, signing key, scope and date that chunk signatures chain from. */
  signingKey: Buffer;
  scope: string;
  amzDate: string;
  seedSignature: string;
  presigned: boolean;
}

interface Credential { accessKeyId: string; date: string; region: string; service: string }

/**
 * Verifies the request's signature. Returns null when the request carries no SigV4 auth at all (the caller
 * refuses anonymous access). Throws S3Error (AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch,
 * AuthorizationHeaderMalformed, RequestTimeTooSkewed, InvalidArgument, NotImplemented).
 */
export async function verifySigV4(req: SignedRequest, lookup: SecretLookup, now: Date = new Date()): Promise<VerifiedRequest | null> {
  const query = new URLSearchParams(req.rawQuery);
  const authorization = req.headers.get('authorization');
  if (authorization !== null && query.has('X-Amz-Signature')) throw new S3Error('InvalidArgument', 'Only one auth mechanism allowed');
  if (authorization !== null) return verifyHeaderAuth(req, authorization, lookup, now);
  if (query.has('X-Amz-Signature') || query.has('X-Amz-Algorithm')) return verifyPresigned(req, query, lookup, now);
  if (query.has('Signature') || query.has('AWSAccessKeyId')) throw new S3Error('NotImplemented', 'Signature Version 2 is not supported; use SigV4');
  return null;
}

async function verifyHeaderAuth(req: SignedRequest, authorization: string, lookup: SecretLookup, now: Date): Promise<VerifiedRequest> {
  if (!authorization.startsWith(`${ALGORITHM} `)) {
    if (authorization.startsWith('AWS ')) throw new S3Error('NotImplemented', 'Signature Version 2 is not supported; use SigV4');
    throw new S3Error('AuthorizationHeaderMalformed', `the authorization header must use ${ALGORITHM}`);
  }
  const fields = new Map<string, string>();
  for (const part of authorization.slice(ALGORITHM.length + 1).split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) throw new S3Error('AuthorizationHeaderMalformed', 'malformed authorization header');
    fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const credential = parseCredential(fields.get('Credential'));
  const signedHeaders = parseSignedHeaders(fields.get('SignedHeaders'));
  const signature = fields.get('Signature') ?? '';
  const amzDate = req.headers.get('x-amz-date');
  if (amzDate === null) throw new S3Error('AccessDenied', 'AWS authentication requires a valid x-amz-date header');
  const date = parseAmzDate(amzDate);
  if (Math.abs(date.getTime() - now.getTime()) > MAX_SKEW_MS) {
    throw new S3Error('RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.');
  }
  const payloadHash = req.headers.get('x-amz-content-sha256');
  if (payloadHash === null) throw new S3Error('InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
  checkPayloadHashForm(payloadHash);
  requireSigned(signedHeaders, req.headers);
  const canonicalQuery = canonicalQueryOf(req.rawQuery);
  return finish(req, credential, signedHeaders, signature, amzDate, payloadHash, canonicalQuery, lookup, false);
}

async function verifyPresigned(req: SignedRequest, query: URLSearchParams, lookup: SecretLookup, now: Date): Promise<VerifiedRequest> {
  if (query.get('X-Amz-Algorithm') !== ALGORITHM) throw new S3Error('AuthorizationHeaderMalformed', `X-Amz-Algorithm must be ${ALGORITHM}`);
  const credential = parseCredential(query.get('X-Amz-Credential') ?? undefined);
  const signedHeaders = parseSignedHeaders(query.get('X-Amz-SignedHeaders') ?? undefined);
  const amzDate = query.get('X-Amz-Date') ?? '';
  const date = parseAmzDate(amzDate);
  const expiresText = query.get('X-Amz-Expires') ?? '';
  if (!/^\d{1,7}$/.test(expiresText)) throw new S3Error('AuthorizationHeaderMalformed', 'X-Amz-Expires must be a number of seconds');
  const expires = Number(expiresText);
  if (expires < 1 || expires > MAX_PRESIGN_SECONDS) throw new S3Error('AuthorizationHeaderMalformed', 'X-Amz-Expires must be between 1 and 604800 seconds');
  if (date.getTime() - now.getTime() > MAX_SKEW_MS) throw new S3Error('AccessDenied', 'Request is not valid yet');
  if (now.getTime() > date.getTime() + expires * 1000) throw new S3Error('AccessDenied', 'Request has expired', { Expires: new Date(date.getTime() + expires * 1000).toISOString() });
  requireSigned(signedHeaders, req.headers, true);
  const payloadHash = query.get('X-Amz-Content-Sha256') ?? UNSIGNED_PAYLOAD;
  if (payloadHash !== UNSIGNED_PAYLOAD) throw new S3Error('NotImplemented', 'presigned URLs support UNSIGNED-PAYLOAD only');
  const canonicalQuery = canonicalQueryOf(req.rawQuery);
  return finish(req, credential, signedHeaders, query.get('X-Amz-Signature') ?? '', amzDate, payloadHash, canonicalQuery, lookup, true);
}

async function finish(
  req: SignedRequest, credential: Credential, signedHeaders: string[], signature: string, amzDate: string,
  payloadHash: string, canonicalQuery: string, lookup: SecretLookup, presigned: boolean,
): Promise<VerifiedRequest> {
  if (credential.date !== amzDate.slice(0, 8)) throw new S3Error('AuthorizationHeaderMalformed', 'the credential date does not match the request date');
  if (credential.service !== 's3') throw new S3Error('AuthorizationHeaderMalformed', `the credential service must be s3, not ${credential.service}`);
  if (!/^[0-9a-f]{64}$/.test(signature)) throw new S3Error('SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided.');
  const found = await lookup(credential.accessKeyId);
  if (!found) throw new S3Error('InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.');
  const canonicalHeaders = signedHeaders.map((h) => `${h}:${canonicalHeaderValue(req.headers, h)}\n`).join('');
  const canonicalRequest = [req.method, req.rawPath, canonicalQuery, canonicalHeaders, signedHeaders.join(';'), payloadHash].join('\n');
  const scope = `${credential.date}/${credential.region}/s3/aws4_request`;
  const stringToSign = [ALGORITHM, amzDate, scope, sha256Hex(canonicalRequest)].join('\n');
  const signingKey = deriveSigningKey(found.secret, credential.date, credential.region, 's3');
  const expected = hmac(signingKey, stringToSign).toString('hex');
  if (!equalHex(expected, signature)) {
    throw new S3Error('SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.');
  }
  return { user: found.user, accessKeyId: credential.accessKeyId, payloadHash, signingKey, scope, amzDate, seedSignature: signature, presigned };
}

function parseCredential(value: string | undefined): Credential {
  const parts = (value ?? '').split('/');
  if (parts.length !== 5 || parts[4] !== 'aws4_request' || !/^\d{8}$/.test(parts[1] as string) || !parts[0] || !parts[2]) {
    throw new S3Error('AuthorizationHeaderMalformed', 'the Credential must be ACCESSKEY/YYYYMMDD/REGION/s3/aws4_request');
  }
  return { accessKeyId: parts[0], date: parts[1] as string, region: parts[2], service: parts[3] as string };
}

function parseSignedHeaders(value: string | undefined): string[] {
  const list = (value ?? '').split(';');
  if (list.length === 0 || list.some((h) => !/^[a-z0-9-]+$/.test(h))) throw new S3Error('AuthorizationHeaderMalformed', 'malformed SignedHeaders');
  if (!list.includes('host')) throw new S3Error('AccessDenied', 'the host header must be signed');
  return list;
}

/** Every x-amz-* header sent must be signed: an unsigned one could be added by anyone on the path. */
function requireSigned(signed: string[], headers: Headers, presigned = false): void {
  const set = new Set(signed);
  headers.forEach((_v, name) => {
    const n = name.toLowerCase();
    if (n.startsWith('x-amz-') && !set.has(n) && !(presigned && n === 'x-amz-content-sha256')) {
      throw new S3Error('AccessDenied', `There were headers present in the request which were not signed: ${n}`);
    }
  });
  for (const h of signed) if (!headers.has(h)) throw new S3Error('SignatureDoesNotMatch', `signed header ${h} is missing from the request`);
}

function checkPayloadHashForm(v: string): void {
  if (/^[0-9a-f]{64}$/.test(v) || v === UNSIGNED_PAYLOAD || v === STREAMING_SIGNED || v === STREAMING_SIGNED_TRAILER || v === STREAMING_UNSIGNED_TRAILER) return;
  if (v.startsWith('STREAMING-')) throw new S3Error('NotImplemented', `payload signing mode ${v} is not supported`);
  throw new S3Error('InvalidArgument', 'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, a STREAMING-* mode or a SHA-256 hex digest');
}

/** `YYYYMMDDTHHMMSSZ` → Date; anything else is refused. */
export function parseAmzDate(s: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) throw new S3Error('AccessDenied', 'the request date must be YYYYMMDDTHHMMSSZ');
  const d = new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
  if (Number.isNaN(d.getTime())) throw new S3Error('AccessDenied', 'invalid request date');
  return d;
}

/** Values trimmed, inner runs of spaces collapsed (SigV4 canonical headers). */
function canonicalHeaderValue(headers: Headers, name: string): string {
  return (headers.get(name) ?? '').trim().replace(/ {2,}/g, ' ');
}

/** SigV4's canonical query string, by the AWS SDK's own function (only its `query` field is read). */
function canonicalQueryOf(rawQuery: string): string {
  return getCanonicalQuery({ query: queryObject(rawQuery) } as unknown as Parameters<typeof getCanonicalQuery>[0]);
}

/** The raw query as a decoded multimap (repeated keys become arrays), as getCanonicalQuery expects. */
function queryObject(rawQuery: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  if (rawQuery === '') return out;
  for (const pair of rawQuery.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const k = decodeComponent(eq < 0 ? pair : pair.slice(0, eq));
    const v = eq < 0 ? '' : decodeComponent(pair.slice(eq + 1));
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

function decodeComponent(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new S3Error('InvalidArgument', 'malformed percent-encoding in the query string');
  }
}

export function deriveSigningKey(secret: string, date: string, region: string, service: string): Buffer {
  let key = hmac(Buffer.from(`AWS4${secret}`, 'utf8'), date);
  key = hmac(key, region);
  key = hmac(key, service);
  return hmac(key, 'aws4_request');
}

export function hmac(key: Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Constant-time comparison of two lowercase hex strings (length is not secret). */
export function equalHex(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
