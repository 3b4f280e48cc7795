// The enclave's one way out: a channel directory of Unix sockets shared with the host-side proxy
// (`coffer enclave proxy`, proxy.ts). On AWS Nitro the same three streams are vsock ports between the enclave
// and its parent instance (docs/enclave-gateway.md, "Host channel"):
//   gateway.sock  host → enclave: raw TLS bytes of client connections (the enclave listens; TLS ends inside)
//   s3.sock       host → enclave: raw TLS bytes of S3 clients (the enclave's S3 listener, same attested certificate)
//   storage.sock  enclave → host: HTTP to the storage service's /v1 API (sealed chunks, wrapped keys, metadata)
//   kms.sock      enclave → host: HTTP to the KMS (AWS KMS JSON protocol; keys come back only for Recipient)
// The proxy forwards bytes and never parses them; it holds no key and sees no plaintext.
import { Agent } from 'node:http';
import net from 'node:net';
import path from 'node:path';

export interface ChannelPaths {
  dir: string;
  gateway: string;
  /** The enclave's S3 listener (docs/s3-api.md). */
  s3: string;
  storage: string;
  kms: string;
}

export function channelPaths(dir: string): ChannelPaths {
  const d = path.resolve(dir);
  return { dir: d, gateway: path.join(d, 'gateway.sock'), s3: path.join(d, 's3.sock'), storage: path.join(d, 'storage.sock'), kms: path.join(d, 'kms.sock') };
}

/** Base URLs the enclave uses for the two outbound streams (the host part is only a name: sockets carry them). */
export const STORAGE_VIA_CHANNEL = 'http://storage.host-channel';
export const KMS_VIA_CHANNEL = 'http://kms.host-channel';

/** A keep-alive HTTP agent whose every connection is the given Unix socket (for the AWS SDK's request handler). */
export function unixSocketAgent(socketPath: string): Agent {
  // `timeout` lets the agent honour the KMS's Keep-Alive hint (src/client/http.ts makeConnections says why)
  const agent = new Agent({ keepAlive: true, maxSockets: 16, timeout: 120_000 });
  (agent as unknown as { createConnection: () => net.Socket }).createConnection = () => net.connect({ path: socketPath });
  return agent;
}
