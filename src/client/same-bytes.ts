// Whether a local file and a vault file hold the same bytes (`put -r` / `get -r` with --checksum): the local file is
// hashed, the vault copy fetched, authenticated and hashed (one request for a one-chunk file).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { DataKeyProvider } from './data-keys.js';
import { fileSha256 } from './download.js';
import { SMALL_FILE_MAX, fetchSmallFile } from './small-file.js';
import type { NodeInfo, VaultClient } from './vault-client.js';

export async function sameBytes(client: VaultClient, local: string, node: NodeInfo, keys: DataKeyProvider): Promise<boolean> {
  const h = createHash('sha256');
  for await (const piece of createReadStream(local)) h.update(piece as Buffer);
  const want = h.digest('hex');
  if (node.size <= SMALL_FILE_MAX) {
    const { plaintext } = await fetchSmallFile(client, node.path, keys);
    if (plaintext) {
      const same = createHash('sha256').update(plaintext).digest('hex') === want;
      plaintext.fill(0);
      return same;
    }
  }
  return (await fileSha256(client, node.path, keys)) === want;
}
