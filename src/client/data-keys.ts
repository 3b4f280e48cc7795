// Where a client gets a blob's data key (DEK): from its own key file (client-held-key mode) or, for sealing new
// blobs, from the KMS (GenerateDataKey). Opening a KMS-wrapped key happens only inside attested enclaves.
import type { KeyRecord } from '../metadata/types.js';
import { newDataKey, readKeyFile, unwrapDataKey, wrapDataKey } from '../crypto/index.js';
import { CofferError, ErrorCode } from '../errors.js';

export interface DataKeyProvider {
  /** A fresh DEK for a new blob and the record that stores it wrapped. */
  newDataKey(blobIdHex: string): Promise<{ dek: Uint8Array; keyRecord: KeyRecord }>;
  /** The DEK of an existing blob. Throws KEY_INVALID / KMS_ACCESS_DENIED when this client may not open it. */
  openDataKey(keyRecord: KeyRecord, blobIdHex: string): Promise<Uint8Array>;
}

/** Client-held-key mode: a 32-byte key file wraps a fresh random DEK per blob (docs/format.md). */
export class KeyFileDataKeys implements DataKeyProvider {
  private constructor(private readonly kek: Uint8Array) {}

  static async open(keyFile: string): Promise<KeyFileDataKeys> {
    return new KeyFileDataKeys(await readKeyFile(keyFile));
  }

  async newDataKey(blobIdHex: string): Promise<{ dek: Uint8Array; keyRecord: KeyRecord }> {
    const dek = newDataKey();
    const keyRecord: KeyRecord = { ...wrapDataKey(this.kek, dek, blobIdHex) };
    return { dek, keyRecord };
  }

  async openDataKey(keyRecord: KeyRecord, blobIdHex: string): Promise<Uint8Array> {
    if (keyRecord.scheme !== 'keyfile') {
      throw new CofferError(
        ErrorCode.KEY_INVALID,
        `this blob's key is held by the KMS (scheme "${keyRecord.scheme}"), not by a key file: it is released only to attested enclaves`,
      );
    }
    return unwrapDataKey(this.kek, keyRecord, blobIdHex);
  }
}
