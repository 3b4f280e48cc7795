// Process entry of the `coffer` command (bin/coffer.mjs loads the compiled form; tests run it with tsx).
// Server commands resolve only when they shut down, so exiting afterwards is always right.
import { runCli } from './main.js';

const code = await runCli(process.argv.slice(2));
process.exit(code);
