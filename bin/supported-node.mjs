// Which Node.js runs Coffer: the range in package.json `engines.node` (a test keeps the two equal), checked by
// bin/coffer.mjs before anything else is loaded. Plain JavaScript with no imports, so that it runs on any
// Node, however old, and can say in one line why it stops.

/** The supported range: Node 24 LTS from its first LTS release. Same text as package.json engines.node. */
export const SUPPORTED_NODE = '^24.11.0';

/**
 * Null when `version` (e.g. '24.21.0' or 'v24.21.0') is inside SUPPORTED_NODE, else the one-line reason.
 * Only the caret form `^MAJOR.MINOR.PATCH` is understood: same major, and at least that minor and patch.
 */
export function unsupportedNode(version = process.versions.node, range = SUPPORTED_NODE) {
  const want = /^\^(\d+)\.(\d+)\.(\d+)$/.exec(range);
  if (!want) throw new Error(`supported-node: cannot read range ${range}`);
  const have = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version);
  const [wMajor, wMinor, wPatch] = want.slice(1).map(Number);
  const ok = have !== null && (() => {
    const [major, minor, patch] = have.slice(1).map(Number);
    return major === wMajor && (minor > wMinor || (minor === wMinor && patch >= wPatch));
  })();
  if (ok) return null;
  return (
    `Node.js ${version.startsWith('v') ? version : `v${version}`} is not supported: Coffer needs Node.js ${range} ` +
    `(Node ${wMajor} LTS). \`npm start\` and \`npx coffer\` use the Node ${wMajor} that \`npm ci\` installs; ` +
    `to use your own, see "Running on your own Node.js" in the README [UNSUPPORTED_RUNTIME]`
  );
}
