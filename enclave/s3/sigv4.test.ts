// SigV4 verification: AWS's published examples (exact signatures), a differential check against the AWS SDK's
// own signer (@smithy/signature-v4) for header and presigned forms, and every refusal path.
import { Sha256 } from '@aws-crypto/sha256-js';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { describe, expect, it } from 'vitest';
import { decodeAwsChunked } from './aws-chunked.js';
import { S3Error } from './errors.js';
import { verifySigV4, type SecretLookup, type SignedRequest } from './sigv4.js';

// https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html (GET Object example) and
// https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html (the chunked PUT example)
const EXAMPLE_ID = 'AKIAIOSFODNN7EXAMPLE';
const EXAMPLE_SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const EXAMPLE_TIME = new Date('2013-05-24T00:00:00Z');
const lookup: SecretLookup = async (id) => (id === EXAMPLE_ID ? { user: 'alice', secret: EXAMPLE_SECRET } : null);

function req(method: string, rawPath: string, rawQuery: string, headers: Record<string, string>): SignedRequest {
  return { method, rawPath, rawQuery, headers: new Headers(headers) };
}

async function s3Code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof S3Error) return e.code;
    throw e;
  }
  return 'no error';
}

const getExample = (signature = 'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41', extra: Record<string, string> = {}): SignedRequest => req('GET', '/test.txt', '', {
  host: 'examplebucket.s3.amazonaws.com',
  range: 'bytes=0-9',
  'x-amz-content-sha256': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  'x-amz-date': '20130524T000000Z',
  authorization: `AWS4-HMAC-SHA256 Credential=${EXAMPLE_ID}/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=${signature}`,
  ...extra,
});

describe('AWS published examples', () => {
  it('verifies the GET Object example', async () => {
    const v = await verifySigV4(getExample(), lookup, EXAMPLE_TIME);
    expect(v?.user).toBe('alice');
  });

  it('refuses it with one hex digit changed, another key, a changed signed header, an unsigned x-amz header', async () => {
    expect(await s3Code(verifySigV4(getExample('f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb42'), lookup, EXAMPLE_TIME))).toBe('SignatureDoesNotMatch');
    const other: SecretLookup = async () => ({ user: 'alice', secret: `${EXAMPLE_SECRET}x` });
    expect(await s3Code(verifySigV4(getExample(), other, EXAMPLE_TIME))).toBe('SignatureDoesNotMatch');
    expect(await s3Code(verifySigV4(getExample(undefined, { range: 'bytes=0-10' }), lookup, EXAMPLE_TIME))).toBe('SignatureDoesNotMatch');
    expect(await s3Code(verifySigV4(getExample(undefined, { 'x-amz-meta-a': 'b' }), lookup, EXAMPLE_TIME))).toBe('AccessDenied');
    expect(await s3Code(verifySigV4(getExample(), async () => null, EXAMPLE_TIME))).toBe('InvalidAccessKeyId');
  });

  it('refuses a request more than 15 minutes off the clock', async () => {
    expect(await s3Code(verifySigV4(getExample(), lookup, new Date(EXAMPLE_TIME.getTime() + 16 * 60_000)))).toBe('RequestTimeTooSkewed');
    expect(await s3Code(verifySigV4(getExample(), lookup, new Date(EXAMPLE_TIME.getTime() - 16 * 60_000)))).toBe('RequestTimeTooSkewed');
    expect((await verifySigV4(getExample(), lookup, new Date(EXAMPLE_TIME.getTime() + 14 * 60_000)))?.user).toBe('alice');
  });

  it('verifies the chunked PUT seed signature and every chunk signature, and refuses a changed byte', async () => {
    const seed = '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9';
    const r = req('PUT', '/examplebucket/chunkObject.txt', '', {
      host: 's3.amazonaws.com',
      'x-amz-date': '20130524T000000Z',
      'x-amz-storage-class': 'REDUCED_REDUNDANCY',
      'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
      'content-encoding': 'aws-chunked',
      'x-amz-decoded-content-length': '66560',
      'content-length': '66824',
      authorization: `AWS4-HMAC-SHA256 Credential=${EXAMPLE_ID}/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=${seed}`,
    });
    const v = await verifySigV4(r, lookup, EXAMPLE_TIME);
    expect(v?.seedSignature).toBe(seed);
    const body = (corrupt: boolean): Buffer => {
      const parts: Buffer[] = [];
      for (const [size, sig] of [[65536, 'ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648'], [1024, '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497'], [0, 'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9']] as const) {
        const data = Buffer.alloc(size, 'a');
        if (corrupt && size === 1024) data[10] = 0x62;
        parts.push(Buffer.from(`${size.toString(16)};chunk-signature=${sig}\r\n`), data, Buffer.from('\r\n'));
      }
      return Buffer.concat(parts);
    };
    expect(body(false).length).toBe(66824);
    // fed in awkward pieces, as a socket may deliver them
    const pieces = function* (b: Buffer): Generator<Uint8Array> {
      for (let i = 0; i < b.length; i += 7919) yield b.subarray(i, i + 7919);
    };
    let n = 0;
    for await (const p of decodeAwsChunked(pieces(body(false)), { signing: v!, trailer: false })) n += p.length;
    expect(n).toBe(66560);
    let got = 0;
    const bad = (async () => {
      for await (const p of decodeAwsChunked(pieces(body(true)), { signing: v!, trailer: false })) got += p.length;
    })();
    expect(await s3Code(bad)).toBe('SignatureDoesNotMatch');
    expect(got).toBeLessThanOrEqual(65536 + 1024);
  });
});

describe('differential: signed by the AWS SDK signer, verified here', () => {
  const credentials = { accessKeyId: EXAMPLE_ID, secretAccessKey: EXAMPLE_SECRET };
  const signer = new SignatureV4({ credentials, region: 'eu-west-1', service: 's3', sha256: Sha256, uriEscapePath: false, applyChecksum: false });
  const now = new Date('2026-01-02T03:04:05Z');

  function toSigned(r: HttpRequest): SignedRequest {
    const query = Object.entries(r.query ?? {}).flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((x) => `${encodeURIComponent(k)}=${encodeURIComponent(x ?? '')}`)).join('&');
    return { method: r.method, rawPath: r.path, rawQuery: query, headers: new Headers(r.headers as Record<string, string>) };
  }

  const cases: Array<{ path: string; query: Record<string, string | string[]>; headers: Record<string, string> }> = [
    { path: '/bucket/dir/a%20b%2Bc.txt', query: {}, headers: { 'x-amz-meta-colour': 'blue  and   green' } },
    { path: '/bucket', query: { 'list-type': '2', prefix: 'a/b c', 'continuation-token': 'x+y/z=', 'encoding-type': 'url' }, headers: {} },
    { path: '/bucket/k%C3%A9y', query: { uploadId: 'abc', partNumber: '3' }, headers: { 'content-md5': 'XUFAKrxLKna5cZ2REBfFkg==' } },
    { path: '/bucket', query: { delete: '' }, headers: { 'content-type': 'application/xml' } },
  ];

  for (const [i, c] of cases.entries()) {
    it(`header form, case ${i}`, async () => {
      const r = new HttpRequest({ method: 'PUT', protocol: 'https:', hostname: '127.0.0.1', port: 9443, path: c.path, query: c.query, headers: { host: '127.0.0.1:9443', 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', ...c.headers } });
      const signed = await signer.sign(r, { signingDate: now });
      expect((await verifySigV4(toSigned(signed as HttpRequest), lookup, now))?.user).toBe('alice');
      const tampered = toSigned(signed as HttpRequest);
      tampered.rawPath += 'x';
      expect(await s3Code(verifySigV4(tampered, lookup, now))).toBe('SignatureDoesNotMatch');
    });

    it(`presigned form, case ${i}, with expiry`, async () => {
      // as @aws-sdk/s3-request-presigner does: the payload is UNSIGNED-PAYLOAD
      const r = new HttpRequest({ method: 'GET', protocol: 'https:', hostname: '127.0.0.1', port: 9443, path: c.path, query: c.query, headers: { host: '127.0.0.1:9443', 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } });
      const signed = await signer.presign(r, { signingDate: now, expiresIn: 300, unhoistableHeaders: new Set(['x-amz-content-sha256']) });
      const s = toSigned(signed as HttpRequest);
      expect((await verifySigV4(s, lookup, new Date(now.getTime() + 299_000)))?.presigned).toBe(true);
      expect(await s3Code(verifySigV4(s, lookup, new Date(now.getTime() + 301_000)))).toBe('AccessDenied');
      expect(await s3Code(verifySigV4({ ...s, rawQuery: s.rawQuery.replace('X-Amz-Expires=300', 'X-Amz-Expires=3000') }, lookup, now))).toBe('SignatureDoesNotMatch');
    });
  }
});

describe('refusals', () => {
  it('no auth at all is null (the handler refuses anonymous access); V2 is NotImplemented; malformed headers', async () => {
    expect(await verifySigV4(req('GET', '/', '', { host: 'h' }), lookup)).toBeNull();
    expect(await s3Code(verifySigV4(req('GET', '/', '', { host: 'h', authorization: 'AWS AKIA:abc' }), lookup))).toBe('NotImplemented');
    expect(await s3Code(verifySigV4(req('GET', '/', 'AWSAccessKeyId=x&Signature=y&Expires=1', { host: 'h' }), lookup))).toBe('NotImplemented');
    expect(await s3Code(verifySigV4(req('GET', '/', '', { host: 'h', authorization: 'AWS4-HMAC-SHA256 garbage' }), lookup))).toBe('AuthorizationHeaderMalformed');
    const noHost = getExample().headers;
    noHost.set('authorization', (noHost.get('authorization') as string).replace('SignedHeaders=host;', 'SignedHeaders='));
    expect(await s3Code(verifySigV4({ ...getExample(), headers: noHost }, lookup, EXAMPLE_TIME))).toBe('AccessDenied');
    const noSha = getExample().headers;
    noSha.delete('x-amz-content-sha256');
    expect(await s3Code(verifySigV4({ ...getExample(), headers: noSha }, lookup, EXAMPLE_TIME))).not.toBe('no error');
  });

  it('a presigned URL valid for more than 7 days is refused', async () => {
    const q = `X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${EXAMPLE_ID}%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=604801&X-Amz-SignedHeaders=host&X-Amz-Signature=${'0'.repeat(64)}`;
    expect(await s3Code(verifySigV4(req('GET', '/b/k', q, { host: 'h' }), lookup, EXAMPLE_TIME))).toBe('AuthorizationHeaderMalformed');
  });
});
