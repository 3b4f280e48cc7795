// SigV4 verification for the embedded KMS: every request's Authorization header is recomputed with
// @smithy/signature-v4 (the same signer the AWS SDK uses) from the request as received and compared in constant
// time. Unsigned, wrongly signed, unknown-key and stale requests are rejected with AWS's error types.
import { createHash, timingSafeEqual } from 'node:crypto';
import { Sha256 } from '@aws-crypto/sha256-js';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { KmsApiError } from './errors.js';

/** A credential the server accepts: access key id → secret, and the principal the request then acts as. */
export interface KmsCredential {
  accessKeyId: string;
  secretAccessKey: string;
  /** IAM-style ARN matched against key-policy principals, e.g. arn:aws:iam::000000000000:user/alice. */
  principalArn: string;
}

export interface SignedRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  query: Record<string, string>;
  /** Header names in lower case (as node:http gives them). */
  headers: Record<string, string>;
  body: Buffer;
}

/** AWS allows 15 minutes between the signer's clock and the service's. */
export const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;
const AUTH_RE = /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([^/,\s]+)\/([^/,\s]+)\/aws4_request,\s*SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})$/;
/** Headers that must be covered by the signature: without them a request could be replayed as another operation. */
const MUST_SIGN = ['host', 'x-amz-date', 'x-amz-target'];

const badSignature = (): KmsApiError =>
  new KmsApiError('InvalidSignatureException', 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.');

/**
 * Verifies the request's SigV4 signature and returns the credential it was signed with.
 * @throws KmsApiError MissingAuthenticationTokenException (no Authorization), IncompleteSignatureException
 *   (malformed header), UnrecognizedClientException (unknown access key id or a session token),
 *   InvalidSignatureException (wrong signature, scope, body hash, or X-Amz-Date more than 15 minutes off).
 */
export async function verifySigV4(
  req: SignedRequest,
  opts: { credentials: ReadonlyMap<string, KmsCredential>; region: string; now: Date },
): Promise<KmsCredential> {
  const auth = req.headers.authorization;
  if (!auth) throw new KmsApiError('MissingAuthenticationTokenException', 'Missing Authentication Token');
  const m = AUTH_RE.exec(auth.trim());
  if (!m) throw new KmsApiError('IncompleteSignatureException', 'Authorization header requires Credential, SignedHeaders and Signature (AWS4-HMAC-SHA256).');
  const [, accessKeyId = '', scopeDate, scopeRegion, scopeService, signedHeaderList = '', signature = ''] = m;
  const cred = opts.credentials.get(accessKeyId);
  if (!cred) throw new KmsApiError('UnrecognizedClientException', 'The security token included in the request is invalid.');
  if (req.headers['x-amz-security-token'] !== undefined) {
    throw new KmsApiError('UnrecognizedClientException', 'The security token included in the request is invalid (session tokens are not issued by this KMS).');
  }

  const signedHeaders = signedHeaderList.split(';');
  for (const h of MUST_SIGN) {
    if (!signedHeaders.includes(h)) throw new KmsApiError('IncompleteSignatureException', `The ${h} header must be signed.`);
  }
  const amzDate = req.headers['x-amz-date'] ?? '';
  const signingDate = parseAmzDate(amzDate);
  if (!signingDate) throw new KmsApiError('IncompleteSignatureException', 'X-Amz-Date must be in the form YYYYMMDDTHHMMSSZ.');
  const skew = signingDate.getTime() - opts.now.getTime();
  if (skew < -MAX_CLOCK_SKEW_MS) {
    throw new KmsApiError('InvalidSignatureException', `Signature expired: ${amzDate} is now earlier than ${amzDateOf(new Date(opts.now.getTime() - MAX_CLOCK_SKEW_MS))} (${amzDateOf(opts.now)} - 15 min.)`);
  }
  if (skew > MAX_CLOCK_SKEW_MS) {
    throw new KmsApiError('InvalidSignatureException', `Signature not yet current: ${amzDate} is still later than ${amzDateOf(new Date(opts.now.getTime() + MAX_CLOCK_SKEW_MS))} (${amzDateOf(opts.now)} + 15 min.)`);
  }
  if (scopeDate !== amzDate.slice(0, 8)) throw new KmsApiError('InvalidSignatureException', 'Credential should be scoped to a valid date.');
  if (scopeRegion !== opts.region) throw new KmsApiError('InvalidSignatureException', `Credential should be scoped to a valid region, not '${scopeRegion}'.`);
  if (scopeService !== 'kms') throw new KmsApiError('InvalidSignatureException', "Credential should be scoped to correct service: 'kms'.");

  // The signer trusts x-amz-content-sha256 as the body hash; so must we only if it really is the body's hash.
  const declared = req.headers['x-amz-content-sha256'];
  if (declared !== undefined && declared !== createHash('sha256').update(req.body).digest('hex')) throw badSignature();

  const headers: Record<string, string> = {};
  for (const name of signedHeaders) {
    const v = req.headers[name];
    if (v === undefined) throw new KmsApiError('IncompleteSignatureException', `Signed header ${name} is missing from the request.`);
    headers[name] = v;
  }
  const signer = new SignatureV4({ credentials: { accessKeyId, secretAccessKey: cred.secretAccessKey }, region: opts.region, service: 'kms', sha256: Sha256 });
  const request = new HttpRequest({ method: req.method, protocol: 'http:', hostname: headers.host ?? '', path: req.path, query: req.query, headers, body: req.body });
  const resigned = await signer.sign(request, { signingDate, signableHeaders: new Set(signedHeaders) });
  const expected = /Signature=([0-9a-f]{64})$/.exec(String(resigned.headers.authorization ?? ''))?.[1] ?? '';
  const expectedList = /SignedHeaders=([^,]+),/.exec(String(resigned.headers.authorization ?? ''))?.[1];
  const a = Buffer.from(expected, 'ascii');
  const b = Buffer.from(signature, 'ascii');
  if (expectedList !== signedHeaderList || a.length !== b.length || !timingSafeEqual(a, b)) throw badSignature();
  return cred;
}

function parseAmzDate(s: string): Date | null {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) return null;
  const d = new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`);
  return Number.isNaN(d.getTime()) ? null : d;
}

function amzDateOf(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}
