// A client for programs talking to an enclave gateway: it verifies the gateway first (gateway-verify.ts) and
// pins the certificate it accepted for every request after. Plaintext goes over that TLS only; sealing happens
// in the enclave. Tree operations (stat, list, mkdir, move, remove, grants) are the storage service's shapes, so
// `vault` is the ordinary VaultClient pointed at the gateway.
//
//   const gw = await GatewayClient.connect({ server, token, expectPcr0, root: { kind: 'aws' } });
//   await gw.putFile('./results.h5', '/docs/results.h5');
//   await gw.getFile('/docs/results.h5', './copy.h5');
import { createReadStream } from 'node:fs';
import { link, lstat, open, rename, stat, unlink } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { request, Agent } from 'node:https';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { TrustRoot } from '../attestation/index.js';
import { CofferError, ErrorCode } from '../errors.js';
import { verifyGateway, type VerifiedGateway } from './gateway-verify.js';
import { errorFromResponse } from './http-errors.js';
import { partialPath } from './partial-files.js';
import { VaultClient, type NodeInfo } from './vault-client.js';

export interface GatewayConnectOptions {
  server: string;
  token: string;
  expectPcr0: string | string[];
  root: TrustRoot;
  allowDebugMode?: boolean;
}

function filePath(vaultPath: string): string {
  if (!vaultPath.startsWith('/')) throw new CofferError(ErrorCode.INVALID_PATH, `vault path must be absolute: ${vaultPath}`);
  return `/v1/files${vaultPath.split('/').map(encodeURIComponent).join('/')}`;
}

export class GatewayClient {
  readonly vault: VaultClient;
  private readonly agent: Agent;

  private constructor(readonly base: URL, private readonly token: string, readonly verified: VerifiedGateway) {
    this.vault = new VaultClient({ server: base.href, token, ca: verified.certPem });
    // `timeout` lets the agent honour the gateway's Keep-Alive hint (http.ts makeConnections says why)
    this.agent = new Agent({ keepAlive: true, ca: verified.certPem, maxSockets: 8, timeout: 120_000 });
  }

  /** Verifies the gateway and returns a client pinned to its certificate. Throws as verifyGateway. */
  static async connect(options: GatewayConnectOptions): Promise<GatewayClient> {
    const verified = await verifyGateway({ server: options.server, expectPcr0: options.expectPcr0, root: options.root, allowDebugMode: options.allowDebugMode === true });
    return new GatewayClient(new URL(options.server), options.token, verified);
  }

  /** Client for a gateway verified earlier (its certificate, from `coffer enclave verify --out`). */
  static pinned(server: string, token: string, verified: VerifiedGateway): GatewayClient {
    return new GatewayClient(new URL(server), token, verified);
  }

  private send(method: string, vaultPath: string, headers: Record<string, string>, body?: Readable): Promise<IncomingMessage> {
    const u = new URL(filePath(vaultPath), this.base);
    return new Promise((resolve, reject) => {
      const req = request(u, { method, agent: this.agent, headers: { ...headers, authorization: `Bearer ${this.token}` } }, resolve);
      req.on('error', (e) => reject(new CofferError(ErrorCode.UNAVAILABLE, `cannot reach the gateway: ${e.message}`, { cause: e, retryable: true })));
      if (body) body.on('error', (e) => req.destroy(e)).pipe(req);
      else req.end();
    });
  }

  private static async failOn(res: IncomingMessage): Promise<void> {
    if ((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300) return;
    const parts: Buffer[] = [];
    for await (const p of res) parts.push(p as Buffer);
    throw errorFromResponse(res.statusCode ?? 0, Buffer.concat(parts).toString('utf8'));
  }

  /** Uploads a byte stream (size: Content-Length if known). The path appears only once all of it is sealed and stored. */
  async putStream(vaultPath: string, body: Readable, options: { size?: number; overwrite?: boolean } = {}): Promise<NodeInfo> {
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (options.size !== undefined) headers['content-length'] = String(options.size);
    if (options.overwrite === false) headers['if-none-match'] = '*';
    const res = await this.send('PUT', vaultPath, headers, body);
    await GatewayClient.failOn(res);
    const parts: Buffer[] = [];
    for await (const p of res) parts.push(p as Buffer);
    return JSON.parse(Buffer.concat(parts).toString('utf8')) as NodeInfo;
  }

  /** Uploads a local file. Throws NOT_FOUND for a missing file and the gateway's errors. */
  async putFile(local: string, vaultPath: string, options: { overwrite?: boolean } = {}): Promise<NodeInfo> {
    const st = await stat(local).catch((e: NodeJS.ErrnoException) => {
      throw new CofferError(e.code === 'ENOENT' ? ErrorCode.NOT_FOUND : ErrorCode.INVALID_ARGUMENT, `cannot read ${local}: ${e.message}`);
    });
    if (st.isDirectory()) throw new CofferError(ErrorCode.IS_A_DIRECTORY, `${local} is a directory`);
    return this.putStream(vaultPath, createReadStream(local, { highWaterMark: 1024 * 1024 }), { size: st.size, ...options });
  }

  /** The response for a file (or a byte range, `range` as in HTTP: 'bytes=a-b'); the caller consumes its body. */
  async getStream(vaultPath: string, range?: string): Promise<IncomingMessage> {
    const res = await this.send('GET', vaultPath, range ? { range } : {});
    await GatewayClient.failOn(res);
    return res;
  }

  /**
   * Downloads a file beside `destination` and renames it into place only when every byte came (the gateway cuts
   * the connection rather than send a byte it could not authenticate). Throws ALREADY_EXISTS without overwrite.
   */
  async getFile(vaultPath: string, destination: string, options: { overwrite?: boolean } = {}): Promise<{ size: number; destination: string }> {
    let dest = path.resolve(destination);
    if ((await lstat(dest).catch(() => null))?.isDirectory()) dest = path.join(dest, path.posix.basename(vaultPath));
    if (!options.overwrite && (await lstat(dest).catch(() => null))) throw new CofferError(ErrorCode.ALREADY_EXISTS, `${dest} exists (use --force to replace it)`);
    const res = await this.getStream(vaultPath);
    const expected = Number(res.headers['content-length']);
    const temp = partialPath(path.dirname(dest));
    const fh = await open(temp, 'wx', 0o600);
    let placed = false;
    try {
      let n = 0;
      const counted = async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
        for await (const d of source) {
          n += d.length;
          yield d;
        }
      };
      // the stream closes the descriptor itself (a FileHandle whose stream keeps it open never finishes closing)
      await pipeline(res, counted, fh.createWriteStream());
      if (!res.complete || n !== expected) throw new CofferError(ErrorCode.INTEGRITY, `the gateway cut the download off after ${n} of ${expected} bytes (an integrity failure inside the enclave?)`);
      const synced = await open(temp, 'r+');
      await synced.sync().finally(() => synced.close());
      if (options.overwrite) await rename(temp, dest);
      else {
        await link(temp, dest).catch((e: NodeJS.ErrnoException) => {
          throw e.code === 'EEXIST' ? new CofferError(ErrorCode.ALREADY_EXISTS, `${dest} appeared during the download`) : e;
        });
        await unlink(temp);
      }
      placed = true;
      return { size: n, destination: dest };
    } finally {
      await fh.close().catch(() => undefined);
      if (!placed) await unlink(temp).catch(() => undefined);
    }
  }

  close(): void {
    this.agent.destroy();
    this.vault.close();
  }
}
