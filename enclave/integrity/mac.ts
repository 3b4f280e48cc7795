// HMAC-SHA-256 metadata MACs under the enclave's metadata key (docs/format.md "Metadata MAC v1"). Stored form:
// `cm1.` + 64 lowercase hex digits. Verification is constant-time and fails closed: a missing, malformed or
// other-version MAC is refused exactly like a wrong one.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { CofferError, ErrorCode } from '../../src/errors.js';
import { encodeMessage } from './encoding.js';
import {
  blobFields, grantFields, KIND, nodeFields, userFields, type BlobFacts, type GrantFacts, type NodeFacts, type RecordKind, type UserFacts,
} from './records.js';

export const MAC_PREFIX = 'cm1.';
const MAC_FORM = /^cm1\.[0-9a-f]{64}$/;

/** The metadata key: 32 bytes that only attested enclaves ever hold. Wipe with `destroy()` when done. */
export class MetadataMacKey {
  private readonly key: Buffer;

  /** @throws CofferError KEY_INVALID unless exactly 32 bytes. The bytes are copied; wipe your copy. */
  constructor(bytes: Uint8Array) {
    if (bytes.length !== 32) throw new CofferError(ErrorCode.KEY_INVALID, `a metadata MAC key is 32 bytes, not ${bytes.length}`);
    this.key = Buffer.from(bytes);
  }

  private tag(kind: RecordKind, fields: ReturnType<typeof nodeFields>): Buffer {
    return createHmac('sha256', this.key).update(encodeMessage(KIND[kind], fields)).digest();
  }

  node(n: NodeFacts): string {
    return MAC_PREFIX + this.tag('node', nodeFields(n)).toString('hex');
  }

  blob(b: BlobFacts): string {
    if (b.dek.length !== 32) throw new CofferError(ErrorCode.KEY_INVALID, 'a blob MAC binds a 32-byte data key');
    return MAC_PREFIX + this.tag('blob', blobFields(b)).toString('hex');
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
    if (typeof stored !== 'string' || !MAC_FORM.test(stored)) return false;
    let want: string;
    try {
      want = kind === 'node' ? this.node(facts as NodeFacts)
        : kind === 'blob' ? this.blob(facts as BlobFacts)
        : kind === 'grant' ? this.grant(facts as GrantFacts)
        : this.user(facts as UserFacts);
    } catch {
      return false; // facts with no canonical form (a corrupted record) verify nothing
    }
    return timingSafeEqual(Buffer.from(want, 'ascii'), Buffer.from(stored, 'ascii'));
  }

  destroy(): void {
    this.key.fill(0);
  }
}
