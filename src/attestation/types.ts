// Types of the attestation area: the decoded AWS Nitro attestation document, the trust roots a verifier may
// pin, verification options and the PCR policy. See docs/attestation.md.

/** A decoded (not yet verified) AWS Nitro Enclaves attestation document. */
export interface AttestationDocument {
  /** Issuing NSM's module id, e.g. "i-0de38b2b6853cc9e8-enc0193685e7fee7d85". */
  moduleId: string;
  /** Digest used for the PCRs; Nitro documents always say SHA384. */
  digest: 'SHA384';
  /** When the NSM produced the document (millisecond precision). */
  timestamp: Date;
  /** PCR index (0..31) → measurement bytes (48 bytes for SHA384; 32/64 accepted by the codec). */
  pcrs: Map<number, Uint8Array>;
  /** DER of the leaf certificate whose key signed the document. */
  certificate: Uint8Array;
  /** DER certificates, root first: cabundle[0] is the root, the last one issued the leaf. */
  cabundle: Uint8Array[];
  publicKey: Uint8Array | null;
  userData: Uint8Array | null;
  nonce: Uint8Array | null;
  /** The exact bytes that were decoded (the whole COSE_Sign1). */
  raw: Uint8Array;
}

/** The one root a verifier trusts: the AWS Nitro root G1 (pinned in code) or a development root. Never both. */
export type TrustRoot = { kind: 'aws' } | { kind: 'dev'; rootCertPem: string };

export interface VerifyOptions {
  root: TrustRoot;
  /** The verifier's clock (injectable for tests and for checking old documents); default: current time. */
  now?: Date;
  /** Maximum age of the document's timestamp; default 5 minutes. */
  maxAgeMs?: number;
  /** Leeway for certificate validity and future timestamps; default 60 s. */
  clockSkewMs?: number;
  /** When given, the document must carry exactly this nonce (a document without a nonce fails). */
  expectedNonce?: Uint8Array;
}

/**
 * Which enclave measurements are allowed. Every listed PCR must match (a string, or any one of an array of
 * strings: lowercase hex of 48 bytes). An empty or missing policy denies everything.
 */
export type PcrPolicy = {
  pcrs: Record<number, string | string[]>;
  /**
   * Debug-mode enclaves report all-zero PCRs 0–2 while their chain and signature still verify; a policy
   * that would accept an all-zero PCR value is refused unless this is set (tests and local debugging only).
   */
  allowDebugMode?: boolean;
};

/** Fields of a request to the NSM (or the simulated NSM); each is bound into the document as given. */
export interface AttestationRequest {
  /** Public key to bind (≤ 1024 bytes), e.g. the enclave's RSA key for KMS CiphertextForRecipient. */
  publicKey?: Uint8Array;
  /** Application data to bind (≤ 512 bytes). */
  userData?: Uint8Array;
  /** Verifier's challenge (≤ 512 bytes). */
  nonce?: Uint8Array;
}

/** NSM limits on the request fields (AWS Nitro Enclaves NSM API). */
export const NSM_LIMITS = Object.freeze({ publicKey: 1024, userData: 512, nonce: 512 });
