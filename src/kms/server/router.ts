// The AWS KMS JSON 1.1 protocol front: POST / with `X-Amz-Target: TrentService.<Op>` and
// `Content-Type: application/x-amz-json-1.1`. Order: size limit → SigV4 → target → JSON → field validation →
// handler. Every failure is answered in AWS's error shape; unexpected errors become KMSInternalException.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Caller, OpContext, ServerSettings } from './context.js';
import { KmsApiError } from './errors.js';
import { JsonSyntaxError, parseStrictJson } from '../../strict-json.js';
import * as crypto from './handlers/crypto.js';
import * as keys from './handlers/keys.js';
import { verifySigV4, type KmsCredential } from './sigv4.js';
import { parseInput, SCHEMAS, type Operation } from './validate.js';

/** Request bodies are small (an attestation document is ~5 KiB); anything bigger is refused unread. */
export const MAX_BODY_BYTES = 64 * 1024;
const JSON_TYPE = 'application/x-amz-json-1.1';

type Handler = (op: OpContext, input: never) => Record<string, unknown> | Promise<Record<string, unknown>>;
const HANDLERS: Record<Operation, Handler> = {
  CreateKey: keys.createKey,
  DescribeKey: keys.describeKey,
  ListKeys: keys.listKeys,
  CreateAlias: keys.createAlias,
  ListAliases: keys.listAliases,
  GetKeyPolicy: keys.getKeyPolicy,
  PutKeyPolicy: keys.putKeyPolicy,
  EnableKeyRotation: keys.enableKeyRotation,
  DisableKeyRotation: keys.disableKeyRotation,
  GetKeyRotationStatus: keys.getKeyRotationStatus,
  RotateKeyOnDemand: keys.rotateKeyOnDemand,
  EnableKey: (op, i) => keys.setKeyEnabled(op, i, true),
  DisableKey: (op, i) => keys.setKeyEnabled(op, i, false),
  GenerateDataKey: crypto.generateDataKey,
  GenerateDataKeyWithoutPlaintext: crypto.generateDataKeyWithoutPlaintext,
  Encrypt: crypto.encrypt,
  Decrypt: crypto.decrypt,
  ReEncrypt: crypto.reEncrypt,
};

export interface RouterOptions {
  settings: ServerSettings;
  credentials: ReadonlyMap<string, KmsCredential>;
  /** Called for errors that are not KmsApiError (bugs, I/O) — never with secrets. */
  onInternalError?: (e: unknown) => void;
}

/** A node:http request listener serving the KMS API. */
export function createKmsRequestListener(opts: RouterOptions): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    void handle(req, opts).then(
      (body) => send(res, 200, body, opts.settings.now()),
      (e: unknown) => {
        if (e instanceof KmsApiError) return send(res, e.status, { __type: e.type, message: e.message }, opts.settings.now());
        opts.onInternalError?.(e);
        send(res, 500, { __type: 'KMSInternalException', message: 'The request was rejected because an internal exception occurred.' }, opts.settings.now());
      },
    );
  };
}

async function handle(req: IncomingMessage, opts: RouterOptions): Promise<Record<string, unknown>> {
  const body = await readBody(req);
  const url = new URL(req.url ?? '/', 'http://kms.invalid');
  if (req.method !== 'POST' || url.pathname !== '/' || url.search !== '') {
    throw new KmsApiError('UnknownOperationException', 'Only POST / with an X-Amz-Target header is served.');
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(',') : value;

  const cred = await verifySigV4({ method: 'POST', path: '/', query: {}, headers, body }, { credentials: opts.credentials, region: opts.settings.region, now: opts.settings.now() });
  const caller: Caller = { principalArn: cred.principalArn, accessKeyId: cred.accessKeyId };

  const target = /^TrentService\.([A-Za-z]+)$/.exec(headers['x-amz-target'] ?? '')?.[1];
  if (!target || !Object.hasOwn(SCHEMAS, target)) {
    throw new KmsApiError('UnknownOperationException', `Operation ${headers['x-amz-target'] ?? '(none)'} is not supported by this KMS.`);
  }
  const op = target as Operation;
  if ((headers['content-type'] ?? '').split(';')[0]?.trim() !== JSON_TYPE) {
    throw new KmsApiError('SerializationException', `Content-Type must be ${JSON_TYPE}.`);
  }
  let json: unknown;
  try {
    json = body.length === 0 ? {} : parseStrictJson(body.toString('utf8'));
  } catch (e) {
    if (!(e instanceof JsonSyntaxError)) throw e;
    throw new KmsApiError('SerializationException', `The request body is not usable JSON: ${e.message}.`);
  }
  const input = parseInput(SCHEMAS[op], json) as { GrantTokens?: string[] };
  if (input.GrantTokens?.length) throw new KmsApiError('UnsupportedOperationException', 'Grants are not supported by this KMS.');
  return (HANDLERS[op] as (o: OpContext, i: unknown) => Record<string, unknown> | Promise<Record<string, unknown>>)({ settings: opts.settings, caller }, input);
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY_BYTES) {
      req.resume();
      reject(new KmsApiError('RequestEntityTooLargeException', `Request bodies are limited to ${MAX_BODY_BYTES} bytes.`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        req.destroy();
        reject(new KmsApiError('RequestEntityTooLargeException', `Request bodies are limited to ${MAX_BODY_BYTES} bytes.`));
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** `Date` comes from the server's clock: the SDK corrects its signing clock from it, as with AWS. */
function send(res: ServerResponse, status: number, body: Record<string, unknown>, now: Date): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': JSON_TYPE,
    'content-length': Buffer.byteLength(text),
    'x-amzn-requestid': randomUUID(),
    date: now.toUTCString(),
    ...(status >= 400 && typeof body.__type === 'string' ? { 'x-amzn-errortype': body.__type } : {}),
  });
  res.end(text);
}
