// Shared contract suite of AttestationProvider: every implementation runs these cases (STYLE.md rule 2).
// `setup` returns a provider and the clock at which its documents must verify.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCofferError } from '../../src/errors.js';
import { decodeAttestationDocument, verifyAttestationDocument, type TrustRoot } from '../../src/attestation/index.js';
import type { AttestationProvider } from './provider.js';

export interface ProviderUnderTest {
  provider: AttestationProvider;
  /** A root whose documents must NOT verify this provider's output (the other kind). */
  foreignRoot: TrustRoot;
  cleanup?: () => Promise<void>;
}

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  try {
    await p;
  } catch (e) {
    expect(isCofferError(e), String(e)).toBe(true);
    expect((e as { code: string }).code).toBe(code);
    return;
  }
  throw new Error(`expected ${code}`);
}

export function runAttestationProviderContract(name: string, setup: () => Promise<ProviderUnderTest>): void {
  describe(`AttestationProvider contract: ${name}`, () => {
    let t: ProviderUnderTest;
    beforeAll(async () => {
      t = await setup();
    });
    afterAll(async () => {
      await t?.cleanup?.();
    });

    it('issues a document that verifies under its trust root, with unset fields null and 16 SHA-384 PCRs', async () => {
      const bytes = await t.provider.attest({});
      const doc = verifyAttestationDocument(bytes, { root: t.provider.trustRoot });
      expect(doc.publicKey).toBeNull();
      expect(doc.userData).toBeNull();
      expect(doc.nonce).toBeNull();
      expect(doc.pcrs.size).toBeGreaterThanOrEqual(16);
      for (const v of doc.pcrs.values()) expect(v.length).toBe(48);
      expect(Math.abs(doc.timestamp.getTime() - Date.now())).toBeLessThan(60_000);
    });

    it('binds exactly the requested public key, user data and nonce', async () => {
      const req = { publicKey: new Uint8Array(294).fill(7), userData: new TextEncoder().encode('bind me'), nonce: new Uint8Array(32).fill(9) };
      const bytes = await t.provider.attest(req);
      const doc = verifyAttestationDocument(bytes, { root: t.provider.trustRoot, expectedNonce: req.nonce });
      expect(doc.publicKey).toEqual(req.publicKey);
      expect(doc.userData).toEqual(req.userData);
      expect(() => verifyAttestationDocument(bytes, { root: t.provider.trustRoot, expectedNonce: new Uint8Array(32).fill(8) })).toThrow(/nonce/);
    });

    it('makes a new document (new signing certificate) on every call', async () => {
      const a = decodeAttestationDocument(await t.provider.attest({ nonce: new Uint8Array([1]) }));
      const b = decodeAttestationDocument(await t.provider.attest({ nonce: new Uint8Array([1]) }));
      expect(Buffer.from(a.certificate).equals(Buffer.from(b.certificate))).toBe(false);
      expect(a.pcrs).toEqual(b.pcrs);
    });

    it('documents do not verify under the other kind of root', async () => {
      const bytes = await t.provider.attest({});
      expect(() => verifyAttestationDocument(bytes, { root: t.foreignRoot })).toThrow(/pinned|root/);
    });

    it('refuses request fields over the NSM limits before asking the NSM', async () => {
      await expectCode(t.provider.attest({ nonce: new Uint8Array(513) }), 'INVALID_ARGUMENT');
      await expectCode(t.provider.attest({ userData: new Uint8Array(513) }), 'INVALID_ARGUMENT');
      await expectCode(t.provider.attest({ publicKey: new Uint8Array(1025) }), 'INVALID_ARGUMENT');
      await expectCode(t.provider.attest({ publicKey: new Uint8Array(0) }), 'INVALID_ARGUMENT');
      await expectCode(t.provider.attest({ nonce: 'x' as unknown as Uint8Array }), 'INVALID_ARGUMENT');
      await expectCode(t.provider.attest({ extra: new Uint8Array(1) } as never), 'INVALID_ARGUMENT');
    });
  });
}
