// Entry point of the `coffer` command: builds the commander program from one file per subcommand and maps
// every failure to a one-line message and the exit status from src/errors.ts (the only place that does so).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { ErrorCode } from '../errors.js';
import { isCommandName, registerCommands } from './commands/index.js';
import { cliError, exitStatusHelp, wantsJson, writeError } from './report-error.js';

/** The program with the commands argv needs (all of them for help). */
export async function buildProgram(argv: readonly string[] = []): Promise<Command> {
  const json = wantsJson(argv);
  const program = new Command('coffer')
    .description('Coffer: an encrypted, chunked research-data vault')
    .version(packageVersion())
    // a usage error is one line like every other failure: `coffer: <what> (see --help) [INVALID_ARGUMENT]`
    .configureOutput({ outputError: (message) => writeError(ErrorCode.INVALID_ARGUMENT, `${oneLine(message.replace(/^error: /, ''))} (see --help)`, json) })
    .addHelpText('after', exitStatusHelp())
    .exitOverride();
  await registerCommands(program, argv);
  return program;
}

/** Runs the CLI with argv; resolves to the exit status (never throws). */
export async function runCli(argv: string[]): Promise<number> {
  // an unknown command is an error even beside --help (commander would print the top-level help and exit 0,
  // so a script probing `coffer backup --help` for a feature would be told yes)
  const words = argv.filter((a) => !a.startsWith('-'));
  const name = words[0] === 'help' ? words[1] : words[0]; // `coffer help X` asks about X
  if (name !== undefined && !isCommandName(name)) {
    writeError(ErrorCode.INVALID_ARGUMENT, `unknown command '${oneLine(name)}' (see --help)`, wantsJson(argv));
    return 2;
  }
  try {
    const program = await buildProgram(argv);
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version exit 0; usage errors were already printed by commander
      return e.exitCode === 0 ? 0 : 2;
    }
    const err = cliError(e);
    writeError(err.code, err.message, wantsJson(argv));
    if (process.env.COFFER_DEBUG) process.stderr.write(`${(e as Error).stack ?? ''}\n`);
    return err.exitCode;
  }
}

/** The version in package.json (found by walking up from this file: src/cli or dist/src/cli). */
function packageVersion(): string {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (existsSync(file)) return (JSON.parse(readFileSync(file, 'utf8')) as { version?: string }).version ?? 'unknown';
  }
  return 'unknown';
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}
