// Verifying an enclave gateway before trusting it (docs/enclave-gateway.md, "Client verification"): open a TLS
// connection without trusting anything yet, ask that very connection for an attestation document with a nonce of
// our own, and accept the certificate the handshake showed only if the document verifies under the pinned root
// (chain, ES384, age), carries our nonce and a PCR0 the caller expects (never a debug-mode enclave unless
// allowed), and binds exactly that certificate's key (user_data, src/attestation/tls-binding.ts). The
// certificate is then what every later connection pins (`curl --cacert`, AWS_CA_BUNDLE, rclone --ca-cert, ...).
import { randomBytes } from 'node:crypto';
import { request } from 'node:https';
import tls from 'node:tls';
import {
  boundSpkiSha256, isDebugModeDocument, spkiSha256OfCertificate, verifyAttestation, type AttestationDocument, type TrustRoot,
} from '../attestation/index.js';
import { CofferError, ErrorCode } from '../errors.js';

export interface GatewayVerifyOptions {
  /** https://host:port of the gateway. */
  server: string;
  /** Expected PCR0 (96 hex digits); one or several allowed values. */
  expectPcr0: string | string[];
  /** Pinned root: AWS Nitro (production) or a development root. */
  root: TrustRoot;
  /** Accept a debug-mode enclave (all-zero PCRs: its memory is open to the host). Default false. */
  allowDebugMode?: boolean;
  /** Maximum document age (default 5 minutes). */
  maxAgeMs?: number;
  timeoutMs?: number;
  now?: () => Date;
}

export interface VerifiedGateway {
  /** The gateway's certificate (PEM): pin it for every later connection. */
  certPem: string;
  spkiSha256: string;
  document: AttestationDocument;
  pcr0: string;
}

function refused(message: string, cause?: unknown): CofferError {
  return new CofferError(ErrorCode.ATTESTATION_INVALID, `enclave gateway not verified: ${message}`, cause === undefined ? {} : { cause });
}

/**
 * Verifies the gateway. Throws CofferError INVALID_ARGUMENT (not an https URL, bad PCR0), UNAVAILABLE (cannot
 * connect), ATTESTATION_FORMAT / ATTESTATION_INVALID / ATTESTATION_POLICY (the document or the binding fails).
 */
export async function verifyGateway(options: GatewayVerifyOptions): Promise<VerifiedGateway> {
  let url: URL;
  try {
    url = new URL(options.server);
  } catch {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, `invalid gateway URL ${JSON.stringify(options.server)}`);
  }
  if (url.protocol !== 'https:') throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'the enclave gateway is reached over https:// only');
  const expected = (Array.isArray(options.expectPcr0) ? options.expectPcr0 : [options.expectPcr0]).map((p) => p.toLowerCase());
  if (expected.length === 0 || expected.some((p) => !/^[0-9a-f]{96}$/.test(p))) {
    throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'the expected PCR0 must be 96 hex digits (48 bytes)');
  }
  const nonce = randomBytes(32);
  const { certDer, body } = await fetchOverOneConnection(url, `/v1/attestation?nonce=${nonce.toString('hex')}`, options.timeoutMs ?? 30_000);
  const document = verifyAttestation(new Uint8Array(body), {
    root: options.root,
    now: options.now?.() ?? new Date(),
    expectedNonce: new Uint8Array(nonce),
    ...(options.maxAgeMs === undefined ? {} : { maxAgeMs: options.maxAgeMs }),
    pcrPolicy: { pcrs: { 0: expected }, allowDebugMode: options.allowDebugMode === true },
  });
  if (isDebugModeDocument(document) && options.allowDebugMode !== true) throw refused('the enclave runs in debug mode (its memory is open to the host)');
  const bound = boundSpkiSha256(document.userData);
  if (bound === null) throw refused('the attestation document binds no TLS certificate (user_data)');
  const shown = spkiSha256OfCertificate(certDer);
  if (bound !== shown) throw refused('the certificate this TLS connection showed is not the one the enclave attests (a machine in the middle?)');
  const pem = `-----BEGIN CERTIFICATE-----\n${Buffer.from(certDer).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`;
  return { certPem: pem, spkiSha256: shown, document, pcr0: Buffer.from(document.pcrs.get(0) ?? new Uint8Array()).toString('hex') };
}

/** GET over one TLS connection whose certificate is captured (not yet trusted: it is judged by the document). */
function fetchOverOneConnection(url: URL, target: string, timeoutMs: number): Promise<{ certDer: Uint8Array; body: Buffer }> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host, port: Number(url.port) || 443, servername: /^[\d.]+$|:/.test(host) ? undefined : host,
      rejectUnauthorized: false, // judged below by the attestation document, never by a CA
      ALPNProtocols: ['http/1.1'],
    });
    const fail = (e: unknown): void => {
      socket.destroy();
      reject(e instanceof CofferError ? e : new CofferError(ErrorCode.UNAVAILABLE, `cannot reach the gateway at ${url.host}: ${(e as Error).message}`, { cause: e, retryable: true }));
    };
    socket.setTimeout(timeoutMs, () => fail(new CofferError(ErrorCode.TIMEOUT, `the gateway at ${url.host} did not answer`, { retryable: true })));
    socket.once('error', fail);
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate();
      if (!cert?.raw) return fail(refused('the TLS handshake showed no certificate'));
      const certDer = new Uint8Array(cert.raw);
      const req = request({ host: url.host, path: target, method: 'GET', createConnection: () => socket, headers: { host: url.host, accept: 'application/cbor' } }, (res) => {
        const parts: Buffer[] = [];
        let n = 0;
        res.on('data', (d: Buffer) => {
          n += d.length;
          if (n > 64 * 1024) return fail(refused('the attestation answer is too large'));
          parts.push(d);
        });
        res.on('end', () => {
          socket.destroy();
          if (res.statusCode !== 200) return reject(refused(`GET /v1/attestation answered ${res.statusCode}: ${Buffer.concat(parts).toString('utf8').slice(0, 200)}`));
          resolve({ certDer, body: Buffer.concat(parts) });
        });
        res.on('error', fail);
      });
      req.on('error', fail);
      req.end();
    });
  });
}
