// Test support (not a test file): raw S3 requests signed by the AWS SDK's signer (@smithy/signature-v4, an
// implementation independent of ours), sent over https trusting only the endpoint's pinned certificate.
import { createHash } from 'node:crypto';
import { request } from 'node:https';
import { request as httpRequest } from 'node:http';
import { Sha256 } from '@aws-crypto/sha256-js';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';

export interface Creds { id: string; secret: string }

export interface RawResponse { status: number; headers: Record<string, string>; body: Buffer; text: string; code: string | null }

export interface SendOptions {
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** 'unsigned' (default), 'signed' (hex SHA-256 of the body), or a literal x-amz-content-sha256 value. */
  payload?: 'unsigned' | 'signed' | string;
  /** Skip signing (anonymous request). */
  anonymous?: boolean;
  signingDate?: Date;
}

export class S3TestClient {
  constructor(private readonly url: string, private readonly ca: string, private readonly creds: Creds) {}

  with(creds: Creds): S3TestClient {
    return new S3TestClient(this.url, this.ca, creds);
  }

  /** `path` is the raw, percent-encoded path (/bucket/key). */
  async send(method: string, path: string, options: SendOptions = {}): Promise<RawResponse> {
    const u = new URL(this.url);
    const body = options.body === undefined ? undefined : Buffer.from(options.body);
    const payload = options.payload ?? 'unsigned';
    const sha = payload === 'unsigned' ? 'UNSIGNED-PAYLOAD' : payload === 'signed' ? createHash('sha256').update(body ?? Buffer.alloc(0)).digest('hex') : payload;
    const headers: Record<string, string> = { host: u.host, 'x-amz-content-sha256': sha, ...options.headers };
    if (body !== undefined && headers['content-length'] === undefined) headers['content-length'] = String(body.length);
    let signed = new HttpRequest({ method, protocol: u.protocol, hostname: u.hostname, port: Number(u.port), path, query: options.query ?? {}, headers, body });
    if (!options.anonymous) {
      const signer = new SignatureV4({ credentials: { accessKeyId: this.creds.id, secretAccessKey: this.creds.secret }, region: 'us-east-1', service: 's3', sha256: Sha256, uriEscapePath: false, applyChecksum: false });
      signed = (await signer.sign(signed, { signingDate: options.signingDate ?? new Date() })) as HttpRequest;
    }
    const qs = Object.entries(options.query ?? {}).map(([k, v]) => (v === '' ? encodeURIComponent(k) : `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)).join('&');
    return this.raw(method, qs ? `${path}?${qs}` : path, signed.headers, body);
  }

  /** Sends exactly what it is given (presigned URLs, hand-made bodies). */
  raw(method: string, pathAndQuery: string, headers: Record<string, string>, body?: Buffer): Promise<RawResponse> {
    const u = new URL(this.url);
    const make = u.protocol === 'https:' ? request : httpRequest;
    return new Promise((resolve, reject) => {
      const r = make({ method, hostname: u.hostname, port: u.port, path: pathAndQuery, headers, ca: this.ca, agent: false }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => {
          const b = Buffer.concat(parts);
          const text = b.length <= 4 * 1024 * 1024 ? b.toString('utf8') : ''; // big bodies are data: compare bytes
          const m = /<Code>([^<]+)<\/Code>/.exec(text);
          const h: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h[k] = v;
          resolve({ status: res.statusCode ?? 0, headers: h, body: b, text, code: m ? (m[1] as string) : null });
        });
        res.on('error', reject);
      });
      r.on('error', reject);
      r.end(body);
    });
  }
}

export function md5Hex(b: Buffer | string): string {
  return createHash('md5').update(b).digest('hex');
}

export function sha256Hex(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}
