// Entry point of the `coffer` command: builds the commander program from one file per subcommand and maps
// every failure to a one-line message and the exit status from src/errors.ts (the only place that does so).
import { Command, CommanderError } from 'commander';
import { toCofferError } from '../errors.js';
import { registerAll } from './commands/index.js';

export function buildProgram(): Command {
  const program = new Command('coffer')
    .description('Coffer: an encrypted, chunked research-data vault')
    .version(process.env.npm_package_version ?? '0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerAll(program);
  return program;
}

/** Runs the CLI with argv; resolves to the exit status (never throws). */
export async function runCli(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version exit 0; usage errors were already printed by commander
      return e.exitCode === 0 ? 0 : 2;
    }
    const err = toCofferError(e);
    process.stderr.write(`coffer: ${oneLine(err.message)} [${err.code}]\n`);
    if (process.env.COFFER_DEBUG) process.stderr.write(`${(e as Error).stack ?? ''}\n`);
    return err.exitCode;
  }
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}
