// Runs only the `coffer kms` subcommands (for cli.test.ts, before the lead wires them into the CLI).
import { Command } from 'commander';
import { register } from '../../cli/commands/kms.js';

const program = new Command('coffer').exitOverride();
register(program);
try {
  await program.parseAsync(process.argv.slice(2), { from: 'user' });
  process.exit(0);
} catch (e) {
  process.stderr.write(`coffer: ${(e as Error).message} [${(e as { code?: string }).code ?? ''}]\n`);
  process.exit(1);
}
