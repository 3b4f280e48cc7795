// Entry point of the `coffer` command (placeholder until the CLI lands).
process.stdout.write('coffer\n');
