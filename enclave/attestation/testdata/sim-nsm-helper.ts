// Test helper program speaking the Nitro helper protocol (docs/attestation.md) but backed by the simulated
// NSM: reads the JSON request on stdin, writes the document to stdout. Environment: COFFER_SIM_DATA_DIR,
// COFFER_SIM_PCR0 (hex). Lets the contract suite drive NitroNsmProvider end to end with real processes.
import { SimulatedNsm } from '../simulated-nsm.js';

async function main(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const req = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, string | null | number>;
  if (req.v !== 1) throw new Error('unsupported request version');
  const field = (k: string): Uint8Array | undefined => (typeof req[k] === 'string' ? new Uint8Array(Buffer.from(req[k], 'base64')) : undefined);
  const nsm = await SimulatedNsm.create({ dataDir: process.env.COFFER_SIM_DATA_DIR ?? '', pcrs: { 0: process.env.COFFER_SIM_PCR0 ?? '' } });
  const doc = await nsm.attest({
    ...(field('public_key') && { publicKey: field('public_key') }),
    ...(field('user_data') && { userData: field('user_data') }),
    ...(field('nonce') && { nonce: field('nonce') }),
  });
  process.stdout.write(doc);
}

main().catch((e: unknown) => {
  process.stderr.write(`sim-nsm-helper: ${(e as Error).message}\n`);
  process.exit(1);
});
