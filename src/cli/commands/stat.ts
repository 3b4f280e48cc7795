// `coffer stat PATH`: a node's metadata; for files also its blob id, chunk count and key scheme.
import type { Command } from 'commander';
import { vaultPathArg, withClient, withServer, type ServerFlags } from '../connect.js';
import { jsonOption } from '../options.js';
import { print } from '../output.js';

export function register(program: Command): void {
  const cmd = program.command('stat').description('show a file or directory').argument('<path>', 'vault path', vaultPathArg).addOption(jsonOption());
  withServer(cmd).action(async (vaultPath: string, opts: ServerFlags & { json?: boolean }) => {
    await withClient(opts, async (client) => {
      const node = await client.stat(vaultPath);
      let extra: Record<string, unknown> = {};
      if (node.type === 'file') {
        const { manifest } = await client.manifestByPath(vaultPath);
        extra = { chunkCount: manifest.chunkCount, keyGeneration: manifest.keyGeneration, keyScheme: manifest.keyRecord.scheme };
      }
      const out = { ...node, ...extra };
      print(opts, out, () => Object.entries(out).map(([k, v]) => `${k}: ${v === null ? '-' : String(v)}`).join('\n'));
    });
  });
}
