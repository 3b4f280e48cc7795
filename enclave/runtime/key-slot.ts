// Where the enclave keeps its wrapped metadata MAC key (enclave/integrity/metadata-key.ts): a file in the channel
// directory, `metadata-key.wrapped`, holding the KMS CiphertextBlob. The file is on the host and untrusted: it is
// a ciphertext only an attested enclave can open (Decrypt with Recipient under {"coffer:purpose":"metadata-mac"}),
// and only an attested enclave can make one (the key policy refuses GenerateDataKey/Encrypt under a coffer:purpose
// context without an attestation). Replacing or deleting it makes every existing MAC fail — every endorsed record
// is then refused, never obeyed (docs/metadata.md "The metadata key"). On Nitro the same file lives on the parent
// instance and reaches the enclave through the proxy (docs/enclave-gateway.md).
import { link, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { WrappedKeySlot } from '../integrity/index.js';

export const METADATA_KEY_FILE = 'metadata-key.wrapped';

/** A slot in `dir` named `name` (default the metadata key's; the S3 sealing key has its own, enclave/s3/sealing-key.ts). */
export function fileKeySlot(dir: string, name = METADATA_KEY_FILE): WrappedKeySlot {
  const file = path.join(dir, name);
  const read = async (): Promise<Uint8Array | null> => {
    try {
      return new Uint8Array(await readFile(file));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  };
  return {
    read,
    async createIfAbsent(blob) {
      // written whole under a temporary name, then linked: the first writer wins, nobody sees a partial file
      const tmp = path.join(dir, `.${name}.${randomBytes(8).toString('hex')}`);
      await writeFile(tmp, blob, { mode: 0o600, flush: true });
      try {
        await link(tmp, file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      } finally {
        await rm(tmp, { force: true });
      }
      return (await read()) as Uint8Array;
    },
  };
}
