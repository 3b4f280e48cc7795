// HMAC-SHA-256 metadata MACs under the enclave's metadata key (docs/format.md "Metadata MAC v1"). Stored forms:
// `cm1.` + 64 lowercase hex digits (node, grant, user); a blob's is `cm1.<tag>.<commitment>`, where the
// commitment is the MAC of its data key, so the record verifies before the key is opened and the opened key is
// checked against it afterwards. Verification is constant-time and fails closed: a missing, malformed or
// other-version MAC is refused exactly like a wrong one.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { CofferError, ErrorCode } from '../../src/errors.js';
import { encodeMessage, type Field } from './encoding.js';
import {
  blobFields, dataKeyFields, grantFields, KIND, nodeFields, userFields, type BlobFacts, type GrantFacts, type NodeFacts, type RecordKind, type UserFacts,
} from './records.js';

export const MAC_PREFIX = 'cm1.';
const MAC_FORM = /^cm1\.([0-9a-f]{64})$/;
const BLOB_MAC_FORM = /^cm1\.([0-9a-f]{64})\.([0-9a-f]{64})$/;

const same = (a: string, b: string): boolean => a.length === b.length && timingSafeEqual(Buffer.from(a, 'ascii'), Buffer.from(b, 'ascii'));

/** The metadata key: 32 bytes that only attested enclaves ever hold. Wipe with `destroy()` when done. */
export class MetadataMacKey {
  private readonly key: Buffer;

  /** @throws CofferError KEY_INVALID unless exactly 32 bytes. The bytes are copied; wipe your copy. */
  constructor(bytes: Uint8Array) {
    if (bytes.length !== 32) throw new CofferError(ErrorCode.KEY_INVALID, `a metadata MAC key is 32 bytes, not ${bytes.length}`);
    this.key = Buffer.from(bytes);
  }

  private tag(kind: RecordKind, fields: Field[]): Buffer {
    return createHmac('sha256', this.key).update(encodeMessage(KIND[kind], fields)).digest();
  }

  node(n: NodeFacts): string {
    return MAC_PREFIX + this.tag('node', nodeFields(n)).toString('hex');
  }

  /** @throws CofferError KEY_INVALID unless `dek` is 32 bytes. */
  blob(b: BlobFacts, dek: Uint8Array): string {
    if (dek.length !== 32) throw new CofferError(ErrorCode.KEY_INVALID, 'a blob MAC binds a 32-byte data key');
    const commitment = this.tag('dataKey', dataKeyFields(b.id, dek));
    return `${MAC_PREFIX}${this.tag('blob', blobFields(b, commitment)).toString('hex')}.${commitment.toString('hex')}`;
  }

  grant(g: GrantFacts): string {
    return MAC_PREFIX + this.tag('grant', grantFields(g)).toString('hex');
  }

  user(u: UserFacts): string {
    return MAC_PREFIX + this.tag('user', userFields(u)).toString('hex');
  }

  /** Whether `stored` is the MAC of the record kind with these facts (false for missing or malformed). */
  verify(kind: 'node', facts: NodeFacts, stored: unknown): boolean;
  verify(kind: 'blob', facts: BlobFacts, stored: unknown): boolean;
  verify(kind: 'grant', facts: GrantFacts, stored: unknown): boolean;
  verify(kind: 'user', facts: UserFacts, stored: unknown): boolean;
  verify(kind: RecordKind, facts: NodeFacts | BlobFacts | GrantFacts | UserFacts, stored: unknown): boolean {
    if (typeof stored !== 'string') return false;
    try {
      if (kind === 'blob') {
        const m = BLOB_MAC_FORM.exec(stored);
        if (!m) return false;
        const want = this.tag('blob', blobFields(facts as BlobFacts, Buffer.from(m[2] as string, 'hex'))).toString('hex');
        return same(want, m[1] as string);
      }
      if (!MAC_FORM.test(stored)) return false;
      const want = kind === 'node' ? this.node(facts as NodeFacts) : kind === 'grant' ? this.grant(facts as GrantFacts) : this.user(facts as UserFacts);
      return same(want, stored);
    } catch {
      return false; // facts with no canonical form (a corrupted record) verify nothing
    }
  }

  /** Whether `dek` is the data key a (verified) blob MAC commits to. */
  verifyDataKey(blobId: string, dek: Uint8Array, storedBlobMac: unknown): boolean {
    const m = typeof storedBlobMac === 'string' ? BLOB_MAC_FORM.exec(storedBlobMac) : null;
    if (!m || dek.length !== 32) return false;
    return same(this.tag('dataKey', dataKeyFields(blobId, dek)).toString('hex'), m[2] as string);
  }

  destroy(): void {
    this.key.fill(0);
  }
}
