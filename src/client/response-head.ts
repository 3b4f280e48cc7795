// Strict parser for the head of an HTTP/1.1 response (status line and header fields, RFC 9112 §4–5), used by the
// bulk chunk fetcher (body-fetcher.ts), which reads bodies itself. Anything it does not understand is an error,
// never guessed at: obsolete line folding, a bad field name, a control character in a value, a Content-Length
// that is not digits or that disagrees with another, a transfer coding other than chunked. The service is not
// trusted, so a malformed head is INTEGRITY (not retried); a head over MAX_HEAD_SIZE is HEADERS_TOO_LARGE.
import { CofferError, ErrorCode } from '../errors.js';

/** Largest response head accepted (status line, fields, blank line). */
export const MAX_HEAD_SIZE = 16 * 1024;

export interface ResponseHead {
  status: number;
  /** Field names in lower case; repeated fields joined with ", " (Content-Length: must agree, kept once). */
  headers: Map<string, string>;
  /** Bytes of the head, blank line included: the body starts there. */
  length: number;
  /** The Content-Length, or null when there is none. */
  contentLength: number | null;
  /** Transfer-Encoding: chunked (then Content-Length is null). */
  chunked: boolean;
  /** The connection may carry another request (HTTP/1.1 without "Connection: close"). */
  keepAlive: boolean;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d) [\t !-~\x80-\xff]*$/;
/** An HTTP token (RFC 9110 §5.6.2): what a field name must be. */
export const HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// field values: visible characters, spaces and tabs, obs-text; no CR, LF or NUL
const FIELD_VALUE = /^[\t !-~\x80-\xff]*$/;

/**
 * Parses the response head at the start of `bytes`. Returns null when the blank line that ends the head has not
 * arrived yet (and `bytes` is still under MAX_HEAD_SIZE). Throws CofferError INTEGRITY or HEADERS_TOO_LARGE.
 */
export function parseResponseHead(bytes: Uint8Array): ResponseHead | null {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = buf.subarray(0, MAX_HEAD_SIZE).indexOf(CRLFCRLF);
  if (end < 0) {
    if (buf.length >= MAX_HEAD_SIZE) throw new CofferError(ErrorCode.HEADERS_TOO_LARGE, `response head larger than ${MAX_HEAD_SIZE} bytes`);
    return null;
  }
  const lines = buf.toString('latin1', 0, end).split('\r\n');
  const statusLine = STATUS_LINE.exec(lines[0] as string);
  if (!statusLine) throw malformed(`bad status line "${printable(lines[0] as string)}"`);
  const minor = statusLine[1];
  const status = Number(statusLine[2]);
  const headers = new Map<string, string>();
  let contentLength: number | null = null;
  for (const line of lines.slice(1)) {
    if (line.includes('\n') || line.includes('\r')) throw malformed('bare CR or LF in the response head');
    const colon = line.indexOf(':');
    if (colon <= 0) throw malformed(`bad header line "${printable(line)}"`); // also rejects obs-fold (leading space)
    const name = line.slice(0, colon);
    if (!HTTP_TOKEN.test(name)) throw malformed(`bad header name "${printable(name)}"`);
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (!FIELD_VALUE.test(value)) throw malformed(`bad value for header ${name}`);
    const key = name.toLowerCase();
    if (key === 'content-length') {
      for (const part of value.split(',')) {
        const v = part.replace(/^[ \t]+|[ \t]+$/g, ''); // OWS only (String.trim would also take U+00A0)
        if (!/^\d{1,15}$/.test(v)) throw malformed(`bad Content-Length "${printable(value)}"`);
        if (contentLength !== null && Number(v) !== contentLength) throw malformed('conflicting Content-Length headers');
        contentLength = Number(v);
      }
      headers.set(key, String(contentLength));
      continue;
    }
    const prior = headers.get(key);
    headers.set(key, prior === undefined ? value : `${prior}, ${value}`);
  }
  const te = headers.get('transfer-encoding');
  let chunked = false;
  if (te !== undefined) {
    // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message is faulty framing
    if (minor === '0') throw malformed('Transfer-Encoding in an HTTP/1.0 response');
    if (te.toLowerCase() !== 'chunked') throw malformed(`unsupported Transfer-Encoding "${printable(te)}"`);
    if (contentLength !== null) throw malformed('both Transfer-Encoding and Content-Length');
    chunked = true;
  }
  const connection = (headers.get('connection') ?? '').toLowerCase().split(',').map((t) => t.trim());
  // RFC 9112 §9.3: "close" ends the connection whatever the version; HTTP/1.0 persists only when asked to
  const keepAlive = !connection.includes('close') && (minor === '1' || connection.includes('keep-alive'));
  return { status, headers, length: end + CRLFCRLF.length, contentLength, chunked, keepAlive };
}

function malformed(what: string): CofferError {
  return new CofferError(ErrorCode.INTEGRITY, `malformed HTTP response from the service: ${what}`);
}

function printable(s: string): string {
  const cut = s.length > 80 ? `${s.slice(0, 80)}…` : s;
  return cut.replace(/[^ -~]/g, '?');
}
