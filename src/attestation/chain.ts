// Certificate chain check of a Nitro document: leaf ← cabundle[last] ← … ← cabundle[1] ← pinned root, where
// cabundle[0] must be byte-identical (by SHA-256 fingerprint) to the pinned root. Signatures and issuer names
// are checked with Node's X509Certificate (OpenSSL); extensions are read with @peculiar/x509. RFC 5280 §6.1
// rules applied: CA basic constraint and keyCertSign on every issuer, path length constraints, validity at
// the verifier's clock, no unknown critical extension; the leaf is a P-384 end-entity key.
import { X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { CofferError, ErrorCode } from '../errors.js';
import { sha256Hex, type PinnedRoot } from './roots.js';

const BASIC_CONSTRAINTS = '2.5.29.19';
const KEY_USAGE = '2.5.29.15';
const UNDERSTOOD_CRITICAL = new Set([BASIC_CONSTRAINTS, KEY_USAGE]);

interface ParsedCert {
  node: X509Certificate;
  ext: x509.X509Certificate;
  label: string;
}

function invalid(message: string, cause?: unknown): CofferError {
  return new CofferError(ErrorCode.ATTESTATION_INVALID, `attestation certificate chain: ${message}`, cause === undefined ? {} : { cause });
}

// Parsed issuer certificates by DER SHA-256: the same root and intermediates recur in every document of a
// fleet for hours, and parsing dominates the cost of a verification. Only parsing is cached, never a verdict.
const parsedCache = new Map<string, Omit<ParsedCert, 'label'>>();
const PARSED_CACHE_MAX = 64;

function parse(der: Uint8Array, label: string, cache = false): ParsedCert {
  const key = cache ? sha256Hex(der) : '';
  const hit = cache ? parsedCache.get(key) : undefined;
  if (hit) return { ...hit, label };
  let parsed: Omit<ParsedCert, 'label'>;
  try {
    parsed = { node: new X509Certificate(der), ext: new x509.X509Certificate(der) };
  } catch (e) {
    throw invalid(`${label} is not a DER X.509 certificate`, e);
  }
  if (cache) {
    if (parsedCache.size >= PARSED_CACHE_MAX) parsedCache.delete(parsedCache.keys().next().value as string);
    parsedCache.set(key, parsed);
  }
  return { ...parsed, label };
}

function checkCommon(c: ParsedCert, now: Date, skewMs: number): void {
  const sig = c.ext.signatureAlgorithm as { name?: string; hash?: { name?: string } };
  if (sig.name !== 'ECDSA' || sig.hash?.name !== 'SHA-384') throw invalid(`${c.label} is not signed with ECDSA/SHA-384`);
  for (const e of c.ext.extensions) {
    if (e.critical && !UNDERSTOOD_CRITICAL.has(e.type)) throw invalid(`${c.label} has an unknown critical extension ${e.type}`);
  }
  const t = now.getTime();
  if (t + skewMs < c.ext.notBefore.getTime()) throw invalid(`${c.label} is not valid yet (notBefore ${c.ext.notBefore.toISOString()})`);
  if (t - skewMs > c.ext.notAfter.getTime()) throw invalid(`${c.label} has expired (notAfter ${c.ext.notAfter.toISOString()})`);
}

function checkIssuer(parent: ParsedCert, casBelow: number): void {
  const bc = parent.ext.getExtension(x509.BasicConstraintsExtension);
  if (!bc || !bc.ca || !parent.node.ca) throw invalid(`${parent.label} is not a CA certificate`);
  if (bc.pathLength !== undefined && casBelow > bc.pathLength) throw invalid(`${parent.label} path length constraint ${bc.pathLength} exceeded`);
  const ku = parent.ext.getExtension(x509.KeyUsagesExtension);
  if (!ku || (ku.usages & x509.KeyUsageFlags.keyCertSign) === 0) throw invalid(`${parent.label} may not sign certificates (keyCertSign)`);
}

/** The verified leaf certificate and its validity window. */
export interface VerifiedChain {
  leaf: X509Certificate;
  notBefore: Date;
  notAfter: Date;
}

/**
 * Verifies leaf ← cabundle ← pinned root at `now` (± skewMs). Throws CofferError ATTESTATION_INVALID.
 */
export function verifyCertificateChain(leafDer: Uint8Array, cabundle: Uint8Array[], root: PinnedRoot, now: Date, skewMs: number): VerifiedChain {
  try {
    return checkChain(leafDer, cabundle, root, now, skewMs);
  } catch (e) {
    // extensions are parsed lazily by @peculiar/x509: a malformed one surfaces here, and is a refusal
    if (e instanceof CofferError) throw e;
    throw invalid('a certificate could not be parsed', e);
  }
}

function checkChain(leafDer: Uint8Array, cabundle: Uint8Array[], root: PinnedRoot, now: Date, skewMs: number): VerifiedChain {
  const first = cabundle[0];
  if (first === undefined || sha256Hex(first) !== root.fingerprint) throw invalid(`cabundle[0] is not the pinned ${root.kind} root ${root.fingerprint}`);
  // The pinned root object is used from here on, never the document's copy.
  const chain: ParsedCert[] = [parse(root.der, `${root.kind} root`, true)];
  for (let i = 1; i < cabundle.length; i++) chain.push(parse(cabundle[i] as Uint8Array, `cabundle[${i}]`, true));
  const leaf = parse(leafDer, 'leaf certificate');
  chain.push(leaf);

  for (const c of chain) checkCommon(c, now, skewMs);
  for (let i = 1; i < chain.length; i++) {
    const parent = chain[i - 1] as ParsedCert;
    const child = chain[i] as ParsedCert;
    checkIssuer(parent, chain.length - 2 - (i - 1));
    if (!child.node.checkIssued(parent.node)) throw invalid(`${child.label} was not issued by ${parent.label}`);
    let ok = false;
    try {
      ok = child.node.verify(parent.node.publicKey);
    } catch (e) {
      throw invalid(`${child.label} signature could not be checked`, e);
    }
    if (!ok) throw invalid(`${child.label} signature does not verify under ${parent.label}`);
  }

  const bc = leaf.ext.getExtension(x509.BasicConstraintsExtension);
  if (bc?.ca || leaf.node.ca) throw invalid('leaf certificate must not be a CA');
  const ku = leaf.ext.getExtension(x509.KeyUsagesExtension);
  if (ku && (ku.usages & x509.KeyUsageFlags.digitalSignature) === 0) throw invalid('leaf certificate may not make signatures (digitalSignature)');
  const key = leaf.node.publicKey;
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1') throw invalid('leaf key must be ECDSA P-384');
  return { leaf: leaf.node, notBefore: leaf.ext.notBefore, notAfter: leaf.ext.notAfter };
}
