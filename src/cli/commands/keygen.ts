// `coffer keygen --out FILE`: writes a new 32-byte key-encryption key (mode 0600) for client-held-key mode.
import type { Command } from 'commander';
import { generateKeyFile } from '../../crypto/index.js';
import { jsonOption } from '../options.js';
import { print } from '../output.js';

export function register(program: Command): void {
  program
    .command('keygen')
    .description('create a 32-byte key file (mode 0600) that wraps a fresh data key per blob')
    .requiredOption('--out <file>', 'where to write the key (refuses to overwrite)')
    .addOption(jsonOption())
    .action(async (opts: { out: string; json?: boolean }) => {
      await generateKeyFile(opts.out);
      print(opts, { keyFile: opts.out }, () => `wrote ${opts.out} (32 bytes, mode 0600); keep it safe: without it your files cannot be opened`);
    });
}
