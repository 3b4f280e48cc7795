// `coffer ls [PATH]`: lists a directory page by page (or shows a single file).
import type { Command } from 'commander';
import { vaultPathArg, withClient, withServer, type ServerFlags } from '../connect.js';
import { jsonOption } from '../options.js';
import { formatBytes } from '../progress.js';

export function register(program: Command): void {
  const cmd = program
    .command('ls')
    .description('list a vault directory')
    .argument('[path]', 'vault path', vaultPathArg, '/')
    .option('-l, --long', 'show size, owner and modification time')
    .addOption(jsonOption());
  withServer(cmd).action(async (vaultPath: string, opts: ServerFlags & { json?: boolean; long?: boolean }) => {
    await withClient(opts, async (client) => {
      const node = await client.stat(vaultPath);
      const entries = node.type === 'dir' ? client.listAll(vaultPath) : (async function* () { yield node; })();
      if (opts.json) {
        // one JSON array, written as it streams so a 100,000-entry directory never sits in memory twice
        process.stdout.write('[');
        let first = true;
        for await (const e of entries) {
          process.stdout.write(`${first ? '' : ','}${JSON.stringify(e)}`);
          first = false;
        }
        process.stdout.write(']\n');
        return;
      }
      for await (const e of entries) {
        const name = e.type === 'dir' ? `${e.name}/` : e.name;
        process.stdout.write(opts.long ? `${e.type === 'dir' ? 'd' : '-'} ${formatBytes(e.size).padStart(10)} ${e.owner.padEnd(12)} ${e.modifiedAt} ${name}\n` : `${name}\n`);
      }
    });
  });
}
