// `coffer keys …`: key operations. `export-dek PATH` prints a blob's data key in hex (client-held-key mode
// only) so anyone holding the key file can open the chunks with any tool that follows docs/format.md.
import type { Command } from 'commander';
import { dataKeys, withClient, withKeys, withServer, type KeyFlags, type ServerFlags } from '../connect.js';
import { jsonOption } from '../options.js';
import { print } from '../output.js';

export function register(program: Command): void {
  const keys = program.command('keys').description('data key operations');
  const exportDek = keys
    .command('export-dek')
    .description("print a file's data key in hex (key-file mode; treat the output as a secret)")
    .argument('<path>', 'vault path')
    .addOption(jsonOption());
  withKeys(withServer(exportDek)).action(async (vaultPath: string, opts: ServerFlags & KeyFlags & { json?: boolean }) => {
    const provider = await dataKeys(opts);
    await withClient(opts, async (client) => {
      const { manifest } = await client.manifestByPath(vaultPath);
      const dek = await provider.openDataKey(manifest.keyRecord, manifest.blobId);
      const hex = Buffer.from(dek).toString('hex');
      dek.fill(0);
      print(opts, { path: vaultPath, blobId: manifest.blobId, keyGeneration: manifest.keyGeneration, dek: hex }, () => hex);
    });
  });
}
