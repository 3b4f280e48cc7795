// Decoder for `Content-Encoding: aws-chunked` request bodies, verifying each chunk's signature as it streams
// (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html and
// https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming-trailers.html):
//   hex-size[;chunk-signature=SIG]\r\n DATA \r\n … 0[;chunk-signature=SIG]\r\n [trailer-name:value\r\n]* \r\n
// Each chunk's signature chains from the previous one (the first from the header's seed signature):
//   HMAC(signingKey, "AWS4-HMAC-SHA256-PAYLOAD\n" date "\n" scope "\n" prev "\n" sha256("") "\n" sha256(DATA))
// Data is handed on before its chunk's signature is known (it only goes into an upload that is committed after
// the whole body verified); a bad signature ends the stream with SignatureDoesNotMatch at that chunk.
import { createHash, type Hash } from 'node:crypto';
import { S3Error } from './errors.js';
import { EMPTY_SHA256, equalHex, hmac, sha256Hex } from './sigv4.js';

export interface ChunkSigning {
  signingKey: Buffer;
  amzDate: string;
  scope: string;
  seedSignature: string;
}

export interface ChunkedOptions {
  /** null: unsigned chunks (STREAMING-UNSIGNED-PAYLOAD-TRAILER). */
  signing: ChunkSigning | null;
  /** Whether trailing headers follow the last chunk (the *-TRAILER modes); with signing, they carry a signature. */
  trailer: boolean;
  /** Told each trailing header (lowercase name, value) once the trailer verified. */
  onTrailer?: (name: string, value: string) => void;
}

const MAX_LINE = 4096;
const CRLF = Buffer.from('\r\n');

/** Decodes (and verifies) an aws-chunked body. Throws S3Error: IncompleteBody, SignatureDoesNotMatch, InvalidRequest. */
export async function* decodeAwsChunked(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options: ChunkedOptions): AsyncGenerator<Uint8Array> {
  const reader = new ByteReader(source);
  let previous = options.signing?.seedSignature ?? '';
  for (;;) {
    const line = await reader.line();
    const { size, signature } = parseChunkLine(line, options.signing !== null);
    const hash: Hash | null = options.signing ? createHash('sha256') : null;
    let left = size;
    while (left > 0) {
      const piece = await reader.take(left);
      hash?.update(piece);
      left -= piece.length;
      yield piece;
    }
    if (options.signing) {
      const s = options.signing;
      const toSign = ['AWS4-HMAC-SHA256-PAYLOAD', s.amzDate, s.scope, previous, EMPTY_SHA256, (hash as Hash).digest('hex')].join('\n');
      if (!equalHex(hmac(s.signingKey, toSign).toString('hex'), signature)) {
        throw new S3Error('SignatureDoesNotMatch', 'The chunk signature we calculated does not match the signature you provided.');
      }
      previous = signature;
    }
    if (size === 0) break;
    const crlf = await reader.exact(2);
    if (!crlf.equals(CRLF)) throw new S3Error('IncompleteBody', 'malformed aws-chunked body: a chunk does not end with CRLF');
  }
  if (options.trailer) {
    await readTrailer(reader, options, previous);
  } else {
    // after the last chunk only the closing CRLF may follow
    const rest = await reader.line();
    if (rest !== '') throw new S3Error('IncompleteBody', 'malformed aws-chunked body after the last chunk');
  }
  if (!(await reader.atEnd())) throw new S3Error('IncompleteBody', 'data after the end of the aws-chunked body');
}

async function readTrailer(reader: ByteReader, options: ChunkedOptions, previous: string): Promise<void> {
  const headers: Array<[string, string]> = [];
  let trailerSignature: string | null = null;
  for (let n = 0; ; n++) {
    if (n > 16) throw new S3Error('InvalidRequest', 'too many trailing headers');
    const line = await reader.line();
    if (line === '') break;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new S3Error('IncompleteBody', 'malformed trailing header');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'x-amz-trailer-signature') trailerSignature = value;
    else headers.push([name, value]);
  }
  if (options.signing) {
    const s = options.signing;
    if (trailerSignature === null) throw new S3Error('SignatureDoesNotMatch', 'the trailer signature is missing');
    const canonical = headers.map(([k, v]) => `${k}:${v}\n`).join('');
    const toSign = ['AWS4-HMAC-SHA256-TRAILER', s.amzDate, s.scope, previous, sha256Hex(canonical)].join('\n');
    if (!equalHex(hmac(s.signingKey, toSign).toString('hex'), trailerSignature)) {
      throw new S3Error('SignatureDoesNotMatch', 'The trailer signature we calculated does not match the signature you provided.');
    }
  }
  for (const [k, v] of headers) options.onTrailer?.(k, v);
}

function parseChunkLine(line: string, signed: boolean): { size: number; signature: string } {
  const m = /^([0-9a-fA-F]{1,8})(?:;chunk-signature=([0-9a-f]{64}))?$/.exec(line);
  if (!m) throw new S3Error('IncompleteBody', 'malformed aws-chunked chunk header');
  if (signed !== (m[2] !== undefined)) {
    throw new S3Error(signed ? 'SignatureDoesNotMatch' : 'InvalidRequest', signed ? 'a chunk has no signature' : 'unexpected chunk signature in an unsigned stream');
  }
  return { size: parseInt(m[1] as string, 16), signature: m[2] ?? '' };
}

/** Pulls bytes from an async iterable: lines (CRLF-terminated, bounded), exact counts and pieces up to n. */
class ByteReader {
  private buf: Buffer = Buffer.alloc(0);
  private readonly it: AsyncIterator<Uint8Array>;
  private done = false;

  constructor(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>) {
    this.it = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : toAsync(source)[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const r = await this.it.next();
    if (r.done) {
      this.done = true;
      return false;
    }
    const piece = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    this.buf = this.buf.length === 0 ? piece : Buffer.concat([this.buf, piece]);
    return true;
  }

  async line(): Promise<string> {
    for (;;) {
      const i = this.buf.indexOf(CRLF);
      if (i >= 0) {
        const text = this.buf.subarray(0, i).toString('latin1');
        this.buf = this.buf.subarray(i + 2);
        return text;
      }
      if (this.buf.length > MAX_LINE) throw new S3Error('IncompleteBody', 'malformed aws-chunked body: line too long');
      if (!(await this.fill())) throw new S3Error('IncompleteBody', 'The request body terminated unexpectedly');
    }
  }

  /** Up to n bytes (at least 1). */
  async take(n: number): Promise<Buffer> {
    if (this.buf.length === 0 && !(await this.fill())) throw new S3Error('IncompleteBody', 'The request body terminated unexpectedly');
    const piece = this.buf.subarray(0, Math.min(n, this.buf.length));
    this.buf = this.buf.subarray(piece.length);
    return piece;
  }

  async exact(n: number): Promise<Buffer> {
    while (this.buf.length < n) if (!(await this.fill())) throw new S3Error('IncompleteBody', 'The request body terminated unexpectedly');
    const piece = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return piece;
  }

  async atEnd(): Promise<boolean> {
    while (this.buf.length === 0) if (!(await this.fill())) return true;
    return false;
  }
}

async function* toAsync(source: Iterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield* source;
}
