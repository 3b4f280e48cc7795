// Entry of the host proxy's own process when `coffer dev` starts it (proxy-process.ts). It loads the proxy's
// few modules only, not the whole CLI: a small heap makes each garbage collection cheap, and the proxy
// allocates a read buffer per socket read for every byte of every gateway transfer. Its configuration comes as
// JSON in COFFER_PROXY_CONFIG (written by proxy-process.ts, not by people: `coffer enclave proxy` is the
// command for that); it prints the gateway URL line and stops on SIGTERM/SIGINT.
import '../../src/gc-tuning.js';
import { endWithParent } from '../../src/child-lifetime.js';
import { startHostProxy, type HostProxyOptions } from './proxy.js';

async function main(): Promise<void> {
  endWithParent(); // `coffer dev` started this process: it ends with it (src/child-lifetime.ts)
  const options = JSON.parse(process.env.COFFER_PROXY_CONFIG ?? 'null') as HostProxyOptions | null;
  if (!options) throw new Error('COFFER_PROXY_CONFIG is not set');
  const proxy = await startHostProxy(options);
  // before the lines the launcher waits for: a SIGTERM sent as soon as they arrive must find the handler
  const stop = (): void => {
    void proxy.close().finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  if (proxy.s3Url) process.stdout.write(`enclave S3: ${proxy.s3Url}\n`);
  process.stdout.write(`enclave gateway: ${proxy.url}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`coffer: ${(e as Error).message}\n`);
  process.exit(1);
});
