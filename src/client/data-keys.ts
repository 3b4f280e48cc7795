// Where a client gets a blob's data key (DEK): from its own key file (client-held-key mode) or, for sealing new
// blobs, from the KMS (GenerateDataKey). Opening a KMS-wrapped key happens only inside attested enclaves.
import type { KeyRecord } from '../metadata/types.js';
import { dataKeyUnwrapper, dataKeyWrapper, newDataKey, readKeyFile } from '../crypto/index.js';
import { CofferError, ErrorCode } from '../errors.js';
import type { KeyService } from '../kms/index.js';

export interface DataKeyProvider {
  /** A fresh DEK for a new blob and the record that stores it wrapped. */
  newDataKey(blobIdHex: string): Promise<{ dek: Uint8Array; keyRecord: KeyRecord }>;
  /** The DEK of an existing blob. Throws KEY_INVALID / KMS_ACCESS_DENIED when this client may not open it. */
  openDataKey(keyRecord: KeyRecord, blobIdHex: string): Promise<Uint8Array>;
  close?(): void;
}

/** Client-held-key mode: a 32-byte key file wraps a fresh random DEK per blob (docs/format.md). */
export class KeyFileDataKeys implements DataKeyProvider {
  readonly #wrap: ReturnType<typeof dataKeyWrapper>;
  readonly #unwrap: ReturnType<typeof dataKeyUnwrapper>;

  private constructor(kek: Uint8Array) {
    this.#wrap = dataKeyWrapper(kek);
    this.#unwrap = dataKeyUnwrapper(kek);
  }

  static async open(keyFile: string): Promise<KeyFileDataKeys> {
    return new KeyFileDataKeys(await readKeyFile(keyFile));
  }

  async newDataKey(blobIdHex: string): Promise<{ dek: Uint8Array; keyRecord: KeyRecord }> {
    const dek = newDataKey();
    const keyRecord: KeyRecord = { ...this.#wrap(dek, blobIdHex) };
    return { dek, keyRecord };
  }

  async openDataKey(keyRecord: KeyRecord, blobIdHex: string): Promise<Uint8Array> {
    if (keyRecord.scheme !== 'keyfile') {
      throw new CofferError(
        ErrorCode.KEY_INVALID,
        `this blob's key is held by the KMS (scheme "${keyRecord.scheme}"), not by a key file: it is released only to attested enclaves`,
      );
    }
    return this.#unwrap(keyRecord, blobIdHex);
  }
}

/** KMS mode: each new blob's DEK comes from KMS GenerateDataKey (this client must be an allowed sealer). */
export class KmsDataKeys implements DataKeyProvider {
  constructor(private readonly service: KeyService) {}

  async newDataKey(blobIdHex: string): Promise<{ dek: Uint8Array; keyRecord: KeyRecord }> {
    const { plaintextKey, keyRecord } = await this.service.generateDataKey(blobIdHex);
    return { dek: plaintextKey, keyRecord: { ...keyRecord } };
  }

  async openDataKey(keyRecord: KeyRecord, _blobIdHex: string): Promise<Uint8Array> {
    throw new CofferError(
      ErrorCode.KMS_ACCESS_DENIED,
      `this blob's key (scheme "${keyRecord.scheme}") is released by the KMS only to attested enclaves: read it through the enclave gateway`,
    );
  }

  close(): void {
    this.service.close();
  }
}
