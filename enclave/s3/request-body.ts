// One request body as the vault should receive it: aws-chunked decoded (and its chunk signatures verified),
// counted against the declared length, and checked against whatever digests the client sent (the signed
// x-amz-content-sha256, Content-MD5, x-amz-checksum-* in a header or trailer). Every check runs before the
// stream's end is reported, so a consumer that commits only at the end (a vault upload) never commits a body
// that failed one. The MD5 of the plaintext is computed on the way for the S3 ETag.
import { createHash, type Hash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { decodeAwsChunked } from './aws-chunked.js';
import { S3Error } from './errors.js';
import { STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER, UNSIGNED_PAYLOAD, equalHex, type VerifiedRequest } from './sigv4.js';

/** The x-amz-checksum-* algorithms we verify; others (crc32c, crc64nvme) answer NotImplemented. */
const CHECKSUMS = new Set(['crc32', 'sha1', 'sha256']);
/** x-amz-checksum-* headers that are not checksums. */
const NOT_CHECKSUMS = new Set(['algorithm', 'type', 'mode']);

export interface BodyDigests {
  md5Hex: string;
  size: number;
}

export interface PreparedBody {
  /** The plaintext bytes, verified as a whole when the iterator finishes. */
  stream: AsyncIterable<Uint8Array>;
  /** The decoded length the client declared. */
  size: number;
  /** The MD5 (hex) the client declared in Content-MD5, if it did: the stream fails (BadDigest) unless the body has it. */
  expectedMd5: string | null;
  /** Filled once the stream has ended successfully. */
  digests: () => BodyDigests;
}

/**
 * Throws S3Error at once for a request whose body cannot be accepted (MissingContentLength, InvalidDigest,
 * NotImplemented) and from the stream for one that fails a check (BadDigest, XAmzContentSHA256Mismatch,
 * IncompleteBody, SignatureDoesNotMatch).
 */
export function prepareBody(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, headers: Headers, auth: VerifiedRequest, maxSize: number): PreparedBody {
  const mode = auth.payloadHash;
  const streaming = mode === STREAMING_SIGNED || mode === STREAMING_SIGNED_TRAILER || mode === STREAMING_UNSIGNED_TRAILER;
  const encoding = (headers.get('content-encoding') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (streaming !== encoding.includes('aws-chunked') && streaming) {
    // botocore and the Go SDK always say aws-chunked; a streaming mode without it is not a body we can read
    throw new S3Error('InvalidArgument', `x-amz-content-sha256 ${mode} needs Content-Encoding: aws-chunked`);
  }
  const sizeText = streaming ? headers.get('x-amz-decoded-content-length') : headers.get('content-length');
  if (sizeText === null) {
    throw new S3Error('MissingContentLength', streaming ? 'x-amz-decoded-content-length is required with aws-chunked' : 'You must provide the Content-Length HTTP header.');
  }
  if (!/^\d{1,16}$/.test(sizeText)) throw new S3Error('InvalidArgument', 'invalid content length');
  const size = Number(sizeText);
  if (size > maxSize) throw new S3Error('EntityTooLarge', `Your proposed upload exceeds the maximum allowed size (${maxSize} bytes)`);

  const contentMd5 = headers.get('content-md5');
  let expectedMd5: string | null = null;
  if (contentMd5 !== null) {
    const raw = Buffer.from(contentMd5, 'base64');
    if (raw.length !== 16 || raw.toString('base64') !== contentMd5) throw new S3Error('InvalidDigest', 'The Content-MD5 you specified was invalid.');
    expectedMd5 = raw.toString('hex');
  }
  const declaredTrailer = (headers.get('x-amz-trailer') ?? '').toLowerCase().trim();
  const checks: Array<{ alg: string; expected: () => string | null }> = [];
  const trailerValues = new Map<string, string>();
  headers.forEach((value, name) => {
    const m = /^x-amz-checksum-([a-z0-9]+)$/.exec(name.toLowerCase());
    if (m && !NOT_CHECKSUMS.has(m[1] as string)) checks.push({ alg: checksumAlgorithm(m[1] as string), expected: () => value });
  });
  if (declaredTrailer !== '') {
    const m = /^x-amz-checksum-([a-z0-9]+)$/.exec(declaredTrailer);
    if (!m || !streaming || mode === STREAMING_SIGNED) throw new S3Error('InvalidRequest', `unsupported x-amz-trailer ${declaredTrailer}`);
    checks.push({ alg: checksumAlgorithm(m[1] as string), expected: () => trailerValues.get(declaredTrailer) ?? null });
  }
  const sha256Expected = /^[0-9a-f]{64}$/.test(mode) ? mode : null;
  if (!streaming && mode !== UNSIGNED_PAYLOAD && sha256Expected === null) throw new S3Error('InvalidArgument', 'bad x-amz-content-sha256');

  let result: BodyDigests | null = null;
  async function* run(): AsyncGenerator<Uint8Array> {
    const decoded = streaming
      ? decodeAwsChunked(source, {
        signing: mode === STREAMING_UNSIGNED_TRAILER ? null : auth,
        trailer: mode !== STREAMING_SIGNED,
        onTrailer: (k, v) => trailerValues.set(k, v),
      })
      : source;
    const md5 = createHash('md5');
    const sha = sha256Expected !== null ? createHash('sha256') : null;
    const hashers = checks.map((c) => ({ ...c, h: checksumHasher(c.alg) }));
    let n = 0;
    for await (const piece of decoded) {
      n += piece.length;
      if (n > size) throw new S3Error('IncompleteBody', 'the body is longer than its declared length');
      md5.update(piece);
      sha?.update(piece);
      for (const c of hashers) c.h.update(piece);
      yield piece;
    }
    if (n !== size) throw new S3Error('IncompleteBody', `You did not provide the number of bytes specified by the Content-Length HTTP header (${n} of ${size})`);
    const md5Hex = md5.digest('hex');
    if (expectedMd5 !== null && !equalHex(md5Hex, expectedMd5)) throw new S3Error('BadDigest', 'The Content-MD5 you specified did not match what we received.');
    if (sha !== null && !equalHex(sha.digest('hex'), sha256Expected as string)) {
      throw new S3Error('XAmzContentSHA256Mismatch', "The provided 'x-amz-content-sha256' header does not match what was computed.");
    }
    for (const c of hashers) {
      const expected = c.expected();
      if (expected === null) throw new S3Error('InvalidRequest', `the trailing x-amz-checksum-${c.alg} was announced but not sent`);
      const got = c.h.digest();
      if (got !== expected) throw new S3Error('BadDigest', `The ${c.alg.toUpperCase()} you specified did not match the calculated checksum.`);
    }
    result = { md5Hex, size: n };
  }
  return {
    stream: run(),
    size,
    expectedMd5,
    digests: () => {
      if (result === null) throw new Error('the body has not been read to its end');
      return result;
    },
  };
}

function checksumAlgorithm(alg: string): string {
  if (!CHECKSUMS.has(alg)) throw new S3Error('NotImplemented', `x-amz-checksum-${alg} is not supported (crc32, sha1 and sha256 are)`);
  return alg;
}

/** A running checksum whose digest is base64 as in the x-amz-checksum-* headers. */
function checksumHasher(alg: string): { update(b: Uint8Array): void; digest(): string } {
  if (alg === 'crc32') {
    let crc = 0;
    return {
      update: (b) => { crc = crc32(b, crc); },
      digest: () => { const out = Buffer.alloc(4); out.writeUInt32BE(crc >>> 0); return out.toString('base64'); },
    };
  }
  const h: Hash = createHash(alg);
  return { update: (b) => { h.update(b); }, digest: () => h.digest('base64') };
}
