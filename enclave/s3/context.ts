// What every S3 operation handler receives, and the response helpers they share.
import { randomBytes } from 'node:crypto';
import type { BodyOutcome, BodyReader } from '../gateway/send-body.js';
import type { Principal, VaultBackend } from './backend.js';
import { S3Error } from './errors.js';
import type { ObjectMetaCache } from './object-meta-cache.js';
import type { VerifiedRequest } from './sigv4.js';
import { errorDocument } from './xml.js';

export interface S3Request {
  method: string;
  /** The path as sent, still percent-encoded (what the signature covers). */
  rawPath: string;
  rawQuery: string;
  headers: Headers;
  /** The request body as it arrives (null when there is none). */
  body: AsyncIterable<Uint8Array> | null;
}

export interface S3Limits {
  /** Largest single PUT and part (S3: 5 GiB). */
  maxObjectSize: number;
  /** Smallest part but the last (S3: 5 MiB). */
  minPartSize: number;
  /** Largest XML request body (DeleteObjects, CompleteMultipartUpload). */
  maxXmlBytes: number;
}

export const DEFAULT_LIMITS: S3Limits = { maxObjectSize: 5 * 1024 ** 3, minPartSize: 5 * 1024 ** 2, maxXmlBytes: 2 * 1024 * 1024 };

export interface S3Context {
  req: S3Request;
  query: URLSearchParams;
  bucket: string;
  /** null for bucket-level requests. */
  key: string | null;
  who: Principal;
  auth: VerifiedRequest;
  backend: VaultBackend;
  limits: S3Limits;
  requestId: string;
  /** Sidecars already read (object-meta-cache.ts), shared by the handler's requests. */
  metaCache?: ObjectMetaCache;
}

/**
 * A GET's body as the Node listener can send it straight to the socket (send-body.ts sendBody: no copy of the
 * pooled chunk buffers), attached to the Response whose web-stream body is the fallback for other callers.
 * Only one of the two is ever read. `failed`: the answer when the body fails before its first byte.
 */
export interface DirectBody {
  read: BodyReader;
  done: (outcome: BodyOutcome) => void;
  failed: (e: unknown) => Response;
}

const directBodies = new WeakMap<Response, DirectBody>();

export function withDirectBody(res: Response, body: DirectBody): Response {
  directBodies.set(res, body);
  return res;
}

/** The direct body of a Response, taken at most once. */
export function takeDirectBody(res: Response): DirectBody | undefined {
  const body = directBodies.get(res);
  directBodies.delete(res);
  return body;
}

export function newRequestId(): string {
  return randomBytes(8).toString('hex').toUpperCase();
}

export function xmlResponse(xml: string, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(xml, { status, headers: { 'content-type': 'application/xml', ...headers } });
}

export function emptyResponse(status: number, headers: Record<string, string> = {}): Response {
  return new Response(null, { status, headers });
}

export function errorResponse(e: S3Error, resource: string, requestId: string, head: boolean): Response {
  const headers: Record<string, string> = { 'content-type': 'application/xml', 'x-amz-request-id': requestId };
  if (e.code === 'InvalidRange' && e.extra.ActualObjectSize !== undefined) headers['content-range'] = `bytes */${e.extra.ActualObjectSize}`;
  if (head || e.status === 304) return new Response(null, { status: e.status, headers });
  return new Response(errorDocument(e.code, e.message, resource, requestId, e.extra), { status: e.status, headers });
}

/**
 * A 200 answer for long operations (CompleteMultipartUpload, CopyObject): S3 starts the response at once and
 * sends whitespace while it works so clients do not time out, then the result or an <Error> document, which
 * the AWS SDKs check for in these answers.
 */
export function slowXmlResponse(work: () => Promise<string>, requestId: string, resource: string, intervalMs = 5000): Response {
  const enc = new TextEncoder();
  let timer: ReturnType<typeof setInterval> | undefined;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(enc.encode('<?xml version="1.0" encoding="UTF-8"?>\n'));
      timer = setInterval(() => controller.enqueue(enc.encode(' ')), intervalMs);
      work().then(
        (xml) => controller.enqueue(enc.encode(xml.replace(/^<\?xml[^>]*\?>\n?/, ''))),
        (e: unknown) => {
          const err = e instanceof S3Error ? e : new S3Error('InternalError', 'We encountered an internal error. Please try again.');
          controller.enqueue(enc.encode(errorDocument(err.code, err.message, resource, requestId, err.extra).replace(/^<\?xml[^>]*\?>\n?/, '')));
        },
      ).finally(() => {
        clearInterval(timer);
        controller.close();
      });
    },
    cancel() {
      clearInterval(timer);
    },
  });
  return new Response(body, { status: 200, headers: { 'content-type': 'application/xml', 'x-amz-request-id': requestId } });
}

/** Reads a small request body whole (XML documents), refusing more than `max` bytes. */
export async function readSmallBody(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array> | null, max: number): Promise<Buffer> {
  if (source === null) return Buffer.alloc(0);
  const parts: Buffer[] = [];
  let n = 0;
  for await (const p of source) {
    n += p.length;
    if (n > max) throw new S3Error('EntityTooLarge', 'the request body is too large');
    parts.push(Buffer.from(p));
  }
  return Buffer.concat(parts);
}
