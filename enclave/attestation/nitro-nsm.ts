// Production attestation provider: obtains documents from the Nitro Secure Module through a helper command
// (a small program inside the enclave that talks to /dev/nsm). Protocol (docs/attestation.md, "Nitro helper
// protocol"): the request is one line of JSON on stdin,
//   {"v":1,"public_key":<base64|null>,"user_data":<base64|null>,"nonce":<base64|null>}
// and the helper writes the raw COSE_Sign1 document to stdout and exits 0; on failure it exits non-zero with
// a reason on stderr. The document is decoded strictly and must bind exactly the requested fields.
import { spawn } from 'node:child_process';
import { CofferError, ErrorCode } from '../../src/errors.js';
import { decodeAttestationDocument, MAX_DOCUMENT_BYTES, type AttestationRequest, type TrustRoot } from '../../src/attestation/index.js';
import { validateAttestationRequest, type AttestationProvider } from './provider.js';

export interface NitroNsmOptions {
  /** Helper executable (run without a shell). */
  command: string;
  args?: string[];
  /** Kill the helper and fail with TIMEOUT after this long; default 10 s. */
  timeoutMs?: number;
  /** Root the documents verify under; default AWS. (Tests point a simulated helper at a dev root.) */
  trustRoot?: TrustRoot;
  env?: NodeJS.ProcessEnv;
}

const STDERR_KEEP = 512;

function b64(u: Uint8Array | undefined): string | null {
  return u === undefined ? null : Buffer.from(u).toString('base64');
}

function sameField(got: Uint8Array | null, want: Uint8Array | undefined): boolean {
  if (want === undefined) return got === null;
  return got !== null && Buffer.from(got).equals(Buffer.from(want));
}

export class NitroNsmProvider implements AttestationProvider {
  readonly kind = 'nitro' as const;
  readonly trustRoot: TrustRoot;
  private readonly timeoutMs: number;

  constructor(private readonly opts: NitroNsmOptions) {
    if (typeof opts?.command !== 'string' || opts.command === '') throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'Nitro NSM helper command is required');
    this.trustRoot = opts.trustRoot ?? { kind: 'aws' };
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  /** See AttestationProvider.attest. */
  async attest(req: AttestationRequest): Promise<Uint8Array> {
    validateAttestationRequest(req);
    const request = JSON.stringify({ v: 1, public_key: b64(req.publicKey), user_data: b64(req.userData), nonce: b64(req.nonce) }) + '\n';
    const bytes = await this.run(request);
    const doc = decodeAttestationDocument(bytes); // ATTESTATION_FORMAT for garbage
    if (!sameField(doc.publicKey, req.publicKey) || !sameField(doc.userData, req.userData) || !sameField(doc.nonce, req.nonce)) {
      throw new CofferError(ErrorCode.ATTESTATION_INVALID, 'NSM helper returned a document that does not bind the requested public_key/user_data/nonce');
    }
    return bytes;
  }

  private run(request: string): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      // detached: the helper gets its own process group, so a timeout kills it and anything it started
      const child = spawn(this.opts.command, this.opts.args ?? [], { stdio: ['pipe', 'pipe', 'pipe'], detached: true, env: this.opts.env ?? process.env });
      const out: Buffer[] = [];
      let outLen = 0;
      let err = '';
      let settled = false;
      const finish = (e: CofferError | null, value?: Uint8Array): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (e) {
          if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
            try {
              process.kill(-child.pid, 'SIGKILL');
            } catch {
              /* already gone */
            }
          }
          reject(e);
        } else resolve(value as Uint8Array);
      };
      const timer = setTimeout(() => finish(new CofferError(ErrorCode.TIMEOUT, `NSM helper did not answer within ${this.timeoutMs} ms`, { retryable: true })), this.timeoutMs);
      child.on('error', (e) => finish(new CofferError(ErrorCode.UNAVAILABLE, `NSM helper ${this.opts.command} could not be started: ${e.message}`, { cause: e })));
      child.stdout.on('data', (chunk: Buffer) => {
        outLen += chunk.length;
        if (outLen > MAX_DOCUMENT_BYTES) finish(new CofferError(ErrorCode.ATTESTATION_FORMAT, `NSM helper output exceeds ${MAX_DOCUMENT_BYTES} bytes`));
        else out.push(chunk);
      });
      child.stderr.on('data', (chunk: Buffer) => {
        if (err.length < STDERR_KEEP) err += chunk.toString('utf8');
      });
      child.stdin.on('error', () => {
        /* the helper may exit without reading; its exit status tells */
      });
      child.on('close', (code, signal) => {
        if (code === 0) finish(null, new Uint8Array(Buffer.concat(out)));
        else {
          const reason = err.trim().split('\n')[0]?.slice(0, STDERR_KEEP) || (signal ? `killed by ${signal}` : `exit status ${code}`);
          finish(new CofferError(ErrorCode.UNAVAILABLE, `NSM helper failed: ${reason}`, { retryable: true, details: { exitCode: code, signal } }));
        }
      });
      child.stdin.end(request);
    });
  }
}
