// A backup target in an S3-compatible bucket: `s3://bucket/prefix`, endpoint/region/credentials from the AWS
// SDK's usual settings (see src/chunk-store-config.ts). Chunks go through the S3 chunk store under the same
// prefix; the small files are objects beside them. Files are uploaded with @aws-sdk/lib-storage's Upload (one
// PutObject when small, a multipart upload of 8 MiB parts otherwise: visible only once complete, aborted on
// failure), so a metadata export of any size streams with flat memory.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { openS3ChunkStore, type S3ChunkStore } from '../../storage-backend/s3/index.js';
import { isNotFound, s3Error } from '../../storage-backend/s3/errors.js';
import { parseS3Url } from '../chunk-store-config.js';
import { CofferError, ErrorCode } from '../errors.js';
import { assertFileName, MARKER, MARKER_BODY, type BackupTarget, type TargetDir } from './target.js';

class S3Target implements BackupTarget {
  constructor(readonly chunks: S3ChunkStore, readonly description: string) {}

  #key(dir: TargetDir | '', name: string): string {
    return `${this.chunks.prefix}${dir ? `${dir}/` : ''}${name}`;
  }

  async writeFile(dir: TargetDir | '', name: string, data: AsyncIterable<Uint8Array>): Promise<{ size: number; sha256: string }> {
    assertFileName(name);
    const hash = createHash('sha256');
    let size = 0;
    const tapped = async function* (): AsyncGenerator<Uint8Array> {
      for await (const piece of data) {
        hash.update(piece);
        size += piece.byteLength;
        yield piece;
      }
    };
    const upload = new Upload({
      client: this.chunks.client, partSize: 8 * 1024 * 1024, queueSize: 2, leavePartsOnError: false,
      params: { Bucket: this.chunks.bucket, Key: this.#key(dir, name), Body: Readable.from(tapped()) },
    });
    try {
      await upload.done();
    } catch (e) {
      throw s3Error(e, `write ${dir}/${name}`, this.description);
    }
    return { size, sha256: hash.digest('hex') };
  }

  async #get(dir: TargetDir, name: string): Promise<Readable> {
    assertFileName(name);
    try {
      const out = await this.chunks.client.send(new GetObjectCommand({ Bucket: this.chunks.bucket, Key: this.#key(dir, name) }));
      return (out.Body as Readable | undefined) ?? Readable.from([]);
    } catch (e) {
      if (isNotFound(e)) throw new CofferError(ErrorCode.NOT_FOUND, `${dir}/${name} is not in the backup target ${this.description}`);
      throw s3Error(e, `read ${dir}/${name}`, this.description);
    }
  }

  async readFile(dir: TargetDir, name: string): Promise<Buffer> {
    const parts: Buffer[] = [];
    try {
      for await (const p of await this.#get(dir, name)) parts.push(p as Buffer);
    } catch (e) {
      throw s3Error(e, `read ${dir}/${name}`, this.description);
    }
    return Buffer.concat(parts);
  }

  openFile(dir: TargetDir, name: string): Promise<Readable> {
    return this.#get(dir, name);
  }

  async listFiles(dir: TargetDir): Promise<string[]> {
    const prefix = this.#key(dir, '');
    const names: string[] = [];
    let token: string | undefined;
    do {
      const out = await this.chunks.client.send(new ListObjectsV2Command({ Bucket: this.chunks.bucket, Prefix: prefix, ContinuationToken: token })).catch((e: unknown) => {
        throw s3Error(e, `list ${dir}`, this.description);
      });
      for (const c of out.Contents ?? []) {
        const name = (c.Key as string).slice(prefix.length);
        if (name && !name.includes('/') && !name.startsWith('.')) names.push(name);
      }
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
    return names.sort();
  }

  async deleteFile(dir: TargetDir, name: string): Promise<void> {
    assertFileName(name);
    await this.chunks.client.send(new DeleteObjectCommand({ Bucket: this.chunks.bucket, Key: this.#key(dir, name) })).catch((e: unknown) => {
      throw s3Error(e, `delete ${dir}/${name}`, this.description);
    });
  }

  /** True when the marker exists; false when the prefix is empty; throws when it holds something else. */
  async hasMarker(): Promise<boolean> {
    try {
      await this.chunks.client.send(new HeadObjectCommand({ Bucket: this.chunks.bucket, Key: this.#key('', MARKER) }));
      return true;
    } catch (e) {
      if (!isNotFound(e)) throw s3Error(e, 'open', this.description);
    }
    const out = await this.chunks.client.send(new ListObjectsV2Command({ Bucket: this.chunks.bucket, Prefix: this.chunks.prefix, MaxKeys: 1 })).catch((e: unknown) => {
      throw s3Error(e, 'open', this.description);
    });
    if ((out.Contents ?? []).length > 0) {
      throw new CofferError(ErrorCode.INVALID_ARGUMENT, `${this.description} is not a Coffer backup (no ${MARKER}) and not empty: choose an empty bucket or prefix`);
    }
    return false;
  }

  close(): Promise<void> {
    return this.chunks.close();
  }
}

/** Opens `s3://bucket/prefix` as a target; with `create`, an empty prefix becomes one. Throws UNAVAILABLE, NOT_FOUND, INVALID_ARGUMENT. */
export async function openS3Target(spec: string, options: { create: boolean }): Promise<BackupTarget> {
  const { kind: _kind, ...config } = parseS3Url(spec);
  const chunks = await openS3ChunkStore(config);
  const target = new S3Target(chunks, `s3://${config.bucket}/${config.prefix ?? ''}`);
  try {
    if (!(await target.hasMarker())) {
      if (!options.create) throw new CofferError(ErrorCode.NOT_FOUND, `no backup in ${target.description}`);
      await target.writeFile('', MARKER, (async function* () {
        yield Buffer.from(MARKER_BODY);
      })());
    }
    return target;
  } catch (e) {
    await chunks.close();
    throw e;
  }
}
