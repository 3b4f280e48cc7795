// parseResponseHead: the strict HTTP/1.1 response-head parser — framing, keep-alive, size limit, and refusals.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CofferError, ErrorCode } from '../errors.js';
import { MAX_HEAD_SIZE, parseResponseHead, type ResponseHead } from './response-head.js';

/** The bytes of `s`, one byte per character (so "\xff" is the byte 0xff). */
const bytes = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

function parse(s: string): ResponseHead {
  const head = parseResponseHead(bytes(s));
  if (head === null) throw new Error(`no complete head in ${JSON.stringify(s)}`);
  return head;
}

/** The CofferError that parsing `s` throws (anything else thrown, or no throw, fails the test). */
function refusal(s: string | Uint8Array): CofferError {
  try {
    parseResponseHead(typeof s === 'string' ? bytes(s) : s);
  } catch (e) {
    expect(e).toBeInstanceOf(CofferError);
    return e as CofferError;
  }
  throw new Error(`accepted ${JSON.stringify(typeof s === 'string' ? s : Buffer.from(s).toString('latin1'))}`);
}

const integrity = (s: string): void => expect(refusal(s).code).toBe(ErrorCode.INTEGRITY);

/** A head with the given status line and field lines, ended by the blank line. */
const head = (status: string, ...fields: string[]): string => `${status}\r\n${fields.map((f) => `${f}\r\n`).join('')}\r\n`;
const ok = (...fields: string[]): string => head('HTTP/1.1 200 OK', ...fields);

describe('parseResponseHead', () => {
  describe('a complete head', () => {
    it('parses a plain HTTP/1.1 200 with Content-Length, counting the head but not the body after it', () => {
      const text = ok('Content-Length: 5', 'Content-Type: text/plain', 'X-Request-ID: abc');
      const r = parse(`${text}hello`);
      expect(r.status).toBe(200);
      expect(r.headers).toEqual(new Map([['content-length', '5'], ['content-type', 'text/plain'], ['x-request-id', 'abc']]));
      expect(r.length).toBe(text.length);
      expect(r.contentLength).toBe(5);
      expect(r.keepAlive).toBe(true);
      expect(r.chunked).toBe(false);
    });

    it('counts the blank line in the length even with no fields and no body', () => {
      const r = parse('HTTP/1.1 404 Not Found\r\n\r\n');
      expect(r.status).toBe(404);
      expect(r.headers.size).toBe(0);
      expect(r.length).toBe('HTTP/1.1 404 Not Found\r\n\r\n'.length);
      expect(r.contentLength).toBeNull();
    });

    it('lower-cases field names but keeps values as sent', () => {
      const r = parse(ok('CONTENT-TYPE: Text/Plain', 'eTaG: "AbC"', 'Content-Length: 0'));
      expect(r.headers.get('content-type')).toBe('Text/Plain');
      expect(r.headers.get('etag')).toBe('"AbC"');
      expect(r.headers.has('CONTENT-TYPE')).toBe(false);
    });

    it('works on a Uint8Array view with a non-zero byteOffset into a larger ArrayBuffer', () => {
      const text = ok('Content-Length: 3');
      const backing = new Uint8Array(64 + text.length + 64).fill(0x41); // 'A' around the head
      backing.set(bytes(text), 64);
      const view = new Uint8Array(backing.buffer, 64, text.length + 3);
      const r = parseResponseHead(view);
      expect(r?.status).toBe(200);
      expect(r?.length).toBe(text.length);
      expect(r?.contentLength).toBe(3);
      // and it reads only the view: a blank line past the view's end does not count
      const short = new Uint8Array(backing.buffer, 64, text.length - 1);
      expect(parseResponseHead(short)).toBeNull();
    });
  });

  describe('incomplete and oversized heads', () => {
    it('returns null until the last byte of the blank line arrives', () => {
      const text = ok('Content-Length: 0');
      const all = bytes(text);
      for (let n = 0; n < all.length; n++) expect(parseResponseHead(all.subarray(0, n))).toBeNull();
      expect(parseResponseHead(all)?.length).toBe(all.length);
    });

    it('does not take a bare LF LF as the end of the head', () => {
      expect(parseResponseHead(bytes('HTTP/1.1 200 OK\nContent-Length: 0\n\n'))).toBeNull();
    });

    it('throws HEADERS_TOO_LARGE once MAX_HEAD_SIZE bytes arrive without a blank line', () => {
      const filler = (n: number): string => `HTTP/1.1 200 OK\r\nX-Pad: ${'a'.repeat(n - 'HTTP/1.1 200 OK\r\nX-Pad: '.length)}`;
      expect(parseResponseHead(bytes(filler(MAX_HEAD_SIZE - 1)))).toBeNull();
      const e = refusal(filler(MAX_HEAD_SIZE));
      expect(e.code).toBe(ErrorCode.HEADERS_TOO_LARGE);
      expect(refusal(filler(MAX_HEAD_SIZE + 100)).code).toBe(ErrorCode.HEADERS_TOO_LARGE);
    });

    it('still parses a head of exactly MAX_HEAD_SIZE bytes, but not one a byte longer', () => {
      const padded = (total: number): string => {
        const bare = ok('X-Pad: ');
        return ok(`X-Pad: ${'a'.repeat(total - bare.length)}`);
      };
      const atLimit = padded(MAX_HEAD_SIZE);
      expect(atLimit.length).toBe(MAX_HEAD_SIZE);
      const r = parse(`${atLimit}body`);
      expect(r.length).toBe(MAX_HEAD_SIZE);
      expect(r.headers.get('x-pad')?.length).toBe(MAX_HEAD_SIZE - ok('X-Pad: ').length);
      expect(parse(padded(MAX_HEAD_SIZE - 1)).length).toBe(MAX_HEAD_SIZE - 1);
      expect(refusal(padded(MAX_HEAD_SIZE + 1)).code).toBe(ErrorCode.HEADERS_TOO_LARGE);
    });
  });

  describe('keep-alive', () => {
    it('keeps an HTTP/1.0 connection only with Connection: keep-alive', () => {
      expect(parse(head('HTTP/1.0 200 OK', 'Content-Length: 0')).keepAlive).toBe(false);
      expect(parse(head('HTTP/1.0 200 OK', 'Content-Length: 0', 'Connection: keep-alive')).keepAlive).toBe(true);
      expect(parse(head('HTTP/1.0 200 OK', 'Content-Length: 0', 'Connection: Keep-Alive')).keepAlive).toBe(true);
      expect(parse(head('HTTP/1.0 200 OK', 'Content-Length: 0', 'Connection: upgrade')).keepAlive).toBe(false);
      // close wins whatever the version (RFC 9112 §9.3)
      expect(parse(head('HTTP/1.0 200 OK', 'Content-Length: 0', 'Connection: keep-alive, close')).keepAlive).toBe(false);
    });

    it('does not keep an HTTP/1.1 connection that says Connection: close, alone or among other options', () => {
      expect(parse(ok('Content-Length: 0', 'Connection: close')).keepAlive).toBe(false);
      expect(parse(ok('Content-Length: 0', 'Connection: CLOSE')).keepAlive).toBe(false);
      expect(parse(ok('Content-Length: 0', 'Connection: foo, close')).keepAlive).toBe(false);
      expect(parse(ok('Content-Length: 0', 'Connection: foo', 'Connection: close')).keepAlive).toBe(false);
      expect(parse(ok('Content-Length: 0', 'Connection: keep-alive')).keepAlive).toBe(true);
      expect(parse(ok('Content-Length: 0', 'Connection: closed')).keepAlive).toBe(true);
    });
  });

  describe('repeated fields and Content-Length', () => {
    it('joins repeated fields with ", " in the order received', () => {
      const r = parse(ok('Content-Length: 0', 'Vary: Accept', 'X-Multi: a', 'vary: Origin', 'X-MULTI: b, c'));
      expect(r.headers.get('vary')).toBe('Accept, Origin');
      expect(r.headers.get('x-multi')).toBe('a, b, c');
    });

    it('accepts identical duplicate Content-Length values, on separate lines or as a list', () => {
      const lines = parse(ok('Content-Length: 5', 'Content-Length: 5'));
      expect(lines.contentLength).toBe(5);
      expect(lines.headers.get('content-length')).toBe('5');
      const list = parse(ok('Content-Length: 5, 5'));
      expect(list.contentLength).toBe(5);
      expect(list.headers.get('content-length')).toBe('5');
      expect(parse(ok('Content-Length: 5,5', 'Content-Length: 5')).contentLength).toBe(5);
    });

    it('rejects conflicting Content-Length values as INTEGRITY', () => {
      integrity(ok('Content-Length: 5', 'Content-Length: 6'));
      integrity(ok('Content-Length: 5, 6'));
      integrity(ok('Content-Length: 5, 5', 'Content-Length: 50'));
    });

    it('reads Content-Length as a decimal count, up to 15 digits', () => {
      expect(parse(ok('Content-Length: 0')).contentLength).toBe(0);
      expect(parse(ok('Content-Length: 999999999999999')).contentLength).toBe(999_999_999_999_999);
    });

    it('rejects Content-Length that is not plain digits as INTEGRITY', () => {
      for (const v of ['-1', '1e3', '0x10', '', '+5', '5 5', '5.0', ' , ', '5,', '05x', '5;5', '\xa05', '5,\xa05', '5\xa0']) integrity(ok(`Content-Length: ${v}`));
    });

    it('rejects a 16-digit Content-Length as INTEGRITY', () => {
      integrity(ok('Content-Length: 1000000000000000'));
      integrity(ok('Content-Length: 9007199254740993'));
    });
  });

  describe('Transfer-Encoding', () => {
    it('marks Transfer-Encoding: chunked as chunked, with no Content-Length', () => {
      const r = parse(ok('Transfer-Encoding: chunked'));
      expect(r.chunked).toBe(true);
      expect(r.contentLength).toBeNull();
      expect(parse(ok('Transfer-Encoding: Chunked')).chunked).toBe(true);
    });

    it('rejects Transfer-Encoding in an HTTP/1.0 response as INTEGRITY (RFC 9112 §6.1)', () => {
      integrity(head('HTTP/1.0 200 OK', 'Connection: keep-alive', 'Transfer-Encoding: chunked'));
    });

    it('rejects Transfer-Encoding together with Content-Length as INTEGRITY, in either order', () => {
      integrity(ok('Transfer-Encoding: chunked', 'Content-Length: 5'));
      integrity(ok('Content-Length: 5', 'Transfer-Encoding: chunked'));
    });

    it('rejects any transfer coding other than a lone chunked as INTEGRITY', () => {
      integrity(ok('Transfer-Encoding: gzip, chunked'));
      integrity(ok('Transfer-Encoding: gzip', 'Transfer-Encoding: chunked'));
      integrity(ok('Transfer-Encoding: chunked, chunked'));
      integrity(ok('Transfer-Encoding: identity'));
      integrity(ok('Transfer-Encoding: gzip'));
      integrity(ok('Transfer-Encoding: '));
    });
  });

  describe('status line', () => {
    it('accepts 1xx to 9xx codes, an empty reason and a reason with spaces, tabs and obs-text', () => {
      expect(parse(head('HTTP/1.1 204 ')).status).toBe(204);
      expect(parse(head('HTTP/1.1 100 Continue')).status).toBe(100);
      expect(parse(head('HTTP/1.1 999 x')).status).toBe(999);
      expect(parse(head('HTTP/1.0 503 Service \tUnavailable now')).status).toBe(503);
      expect(parse(head('HTTP/1.1 200 D\xe9j\xe0 vu')).status).toBe(200);
    });

    // RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ] — only the reason is optional,
    // the second SP is not; the whitespace-lenient reading is a MAY, and this parser is deliberately strict.
    it('rejects a status line without the SP after the code', () => {
      integrity(head('HTTP/1.1 200'));
      integrity(head('HTTP/1.1 204'));
    });

    it('rejects bad status lines as INTEGRITY', () => {
      for (const line of [
        'HTTP/2.0 200 OK',
        'HTTP/1.2 200 OK',
        'HTTP/1.1 20 OK',
        'HTTP/1.1 2000 OK',
        'HTTP/1.1 099 x',
        'HTTP/1.1 000 x',
        'HTTP/1.1 200OK',
        'HTTP/1.1200 OK',
        'HTTP/1.1  200 OK',
        'HTTP/1.1\t200 OK',
        'http/1.1 200 OK',
        ' HTTP/1.1 200 OK',
        'HTTP/1.1 2a0 OK',
        'ICY 200 OK',
        '',
        'HTTP/1.1 200 O\nK',
        'HTTP/1.1 200 O\rK',
        'HTTP/1.1 200 O\x00K',
        'HTTP/1.1 200 O\x7fK',
      ]) integrity(head(line, 'Content-Length: 0'));
    });

    it('reports a status line with control bytes printably, with ? in place of them', () => {
      const e = refusal(head('HTTP/1.1 2\x000 \x1b[31mOK\x07\x7f\xff', 'Content-Length: 0'));
      expect(e.code).toBe(ErrorCode.INTEGRITY);
      expect(e.message).toContain('"HTTP/1.1 2?0 ?[31mOK???"');
      expect(e.message).toMatch(/^[ -~]*$/);
    });

    it('cuts a long bad status line short in the message', () => {
      const e = refusal(head(`HTTP/9.9 200 ${'x'.repeat(500)}`));
      expect(e.message.length).toBeLessThan(200);
    });
  });

  describe('field lines', () => {
    it('trims OWS around values and allows empty values', () => {
      const r = parse(ok('Content-Length:0', 'X-A: \t a b \t ', 'X-Empty:', 'X-Blank:  \t ', 'Content-Type:\ttext/plain\t'));
      expect(r.contentLength).toBe(0);
      expect(r.headers.get('x-a')).toBe('a b');
      expect(r.headers.get('x-empty')).toBe('');
      expect(r.headers.get('x-blank')).toBe('');
      expect(r.headers.get('content-type')).toBe('text/plain');
    });

    it('accepts every token character in a name and obs-text in a value', () => {
      const r = parse(ok("!#$%&'*+-.^_`|~09azAZ: v\x80\xff", 'Content-Length: 0'));
      expect(r.headers.get("!#$%&'*+-.^_`|~09azaz")).toBe('v\x80\xff');
    });

    it('rejects obs-fold continuation lines as INTEGRITY', () => {
      integrity(ok('X-A: a', ' continued', 'Content-Length: 0'));
      integrity(ok('X-A: a', '\tcontinued', 'Content-Length: 0'));
      integrity(ok('X-A: a', ' X-B: b', 'Content-Length: 0'));
      integrity(ok('X-A: a', '\tX-B: b', 'Content-Length: 0'));
    });

    it('rejects a bad or empty field name as INTEGRITY', () => {
      for (const line of ['X A: x', 'X-A : x', 'X-A\t: x', ': x', 'X"A: x', 'X(A): x', 'X/A: x', 'X\xe9: x', 'X@A: x']) {
        integrity(ok(line, 'Content-Length: 0'));
      }
    });

    it('rejects a field line without a colon as INTEGRITY', () => {
      integrity(ok('X-A x', 'Content-Length: 0'));
      integrity(ok('Content-Length: 0', 'garbage'));
    });

    it('rejects a bare LF or bare CR inside a line as INTEGRITY', () => {
      integrity(ok('X-A: a\nX-B: b', 'Content-Length: 0'));
      integrity(ok('X-A: a\rX-B: b', 'Content-Length: 0'));
      integrity(ok('X-A: a\n', 'Content-Length: 0'));
      integrity(ok('X-A: a\r', 'Content-Length: 0'));
      integrity(ok('X-A\n: a', 'Content-Length: 0'));
      integrity(ok('Content-Length: 0', '\nX-B: b'));
    });

    it('rejects NUL and other control characters in a value as INTEGRITY', () => {
      for (const c of ['\x00', '\x01', '\x08', '\x0b', '\x0c', '\x1b', '\x1f', '\x7f']) integrity(ok(`X-A: a${c}b`, 'Content-Length: 0'));
      integrity(ok('X-A: \x00', 'Content-Length: 0'));
    });
  });

  it('never throws anything but a CofferError, whatever the bytes', () => {
    const piece = fc.constantFrom('HTTP/1.1 200 OK', 'HTTP/1.0 ', '200 ', '\r\n', '\r', '\n', ':', ' ', '\t', ',', 'Content-Length', 'Transfer-Encoding', 'chunked', 'Connection', 'close', '5', '\x00', '\xff');
    const input = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc.array(piece, { maxLength: 40 }).map((ps) => bytes(`${ps.join('')}\r\n\r\n`)),
    );
    fc.assert(fc.property(input, (b) => {
      try {
        const r = parseResponseHead(b);
        if (r) expect(r.length).toBeLessThanOrEqual(b.length);
      } catch (e) {
        expect(e).toBeInstanceOf(CofferError);
        expect((e as CofferError).code).toBe(ErrorCode.INTEGRITY);
        expect((e as CofferError).message).toMatch(/^[ -~…]*$/);
      }
    }), { numRuns: 2000 });
  });
});
