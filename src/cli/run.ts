// Process entry of the `coffer` command (bin/coffer.mjs loads the compiled form; tests run it with tsx).
// Server commands resolve only when they shut down, so exiting afterwards is always right.
import '../gc-tuning.js';
import { endWithParent } from '../child-lifetime.js';

// The AWS SDK warns on every start that its releases after January 2027 need Node 22; Coffer pins versions that
// support Node 20 (package-lock.json), so for users of this command the notice is noise. The SDK's own switch:
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// started by `coffer dev` (its enclave): end with it, whatever ends it (src/child-lifetime.ts)
endWithParent();

const { runCli } = await import('./main.js');
const code = await runCli(process.argv.slice(2));
process.exit(code);
