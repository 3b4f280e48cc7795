// Bucket operations: CreateBucket, HeadBucket, DeleteBucket, and the two bucket reads clients make before
// anything else (GetBucketLocation, GetBucketVersioning). A bucket is a top-level vault directory.
import { isCofferError } from '../../src/errors.js';
import { emptyResponse, readSmallBody, xmlResponse, type S3Context } from './context.js';
import { S3Error, toS3Error } from './errors.js';
import { RESERVED, bucketPath, checkNewBucketName } from './mapping.js';
import { refuseUnsupported } from './object-headers.js';
import { prepareBody } from './request-body.js';
import { parseXmlBody, xmlDocument } from './xml.js';

export async function createBucket(ctx: S3Context): Promise<Response> {
  checkNewBucketName(ctx.bucket);
  refuseUnsupported(ctx.req.headers);
  const lock = ctx.req.headers.get('x-amz-bucket-object-lock-enabled');
  if (lock !== null && lock.toLowerCase() === 'true') throw new S3Error('NotImplemented', 'object lock is not supported');
  const ownership = ctx.req.headers.get('x-amz-object-ownership');
  if (ownership !== null && ownership !== 'BucketOwnerEnforced') throw new S3Error('NotImplemented', 'object ownership other than BucketOwnerEnforced (ACLs disabled) is not supported');
  const body = prepareBody(ctx.req.body ?? [], ctx.req.headers, ctx.auth, ctx.limits.maxXmlBytes);
  const text = (await readSmallBody(body.stream, ctx.limits.maxXmlBytes)).toString('utf8');
  if (text.trim() !== '') parseXmlBody(text, 'CreateBucketConfiguration'); // LocationConstraint: one region here, any name accepted
  try {
    await ctx.backend.mkdir(ctx.who, bucketPath(ctx.bucket), false);
  } catch (e) {
    if (isCofferError(e) && e.code === 'ALREADY_EXISTS') {
      throw new S3Error('BucketAlreadyOwnedByYou', 'Your previous request to create the named bucket succeeded and you already own it.', { BucketName: ctx.bucket });
    }
    throw toS3Error(e);
  }
  return emptyResponse(200, { location: `/${ctx.bucket}` });
}

export async function headBucket(ctx: S3Context): Promise<Response> {
  const info = await ctx.backend.stat(ctx.who, bucketPath(ctx.bucket)).catch((e: unknown) => { throw toS3Error(e, 'NoSuchBucket'); });
  if (info.type !== 'dir') throw new S3Error('NoSuchBucket', 'The specified bucket does not exist');
  return emptyResponse(200, { 'x-amz-bucket-region': 'us-east-1' });
}

/** Refused while any object is in the bucket; in-progress multipart uploads and object metadata go with it. */
export async function deleteBucket(ctx: S3Context): Promise<Response> {
  const dir = bucketPath(ctx.bucket);
  await headBucket(ctx);
  const page = await ctx.backend.list(ctx.who, dir, { limit: 2 }).catch((e: unknown) => { throw toS3Error(e, 'NoSuchBucket'); });
  if (page.items.some((i) => i.name !== RESERVED)) throw new S3Error('BucketNotEmpty', 'The bucket you tried to delete is not empty', { BucketName: ctx.bucket });
  try {
    if (page.items.length > 0) await ctx.backend.remove(ctx.who, `${dir}/${RESERVED}`, true);
    await ctx.backend.remove(ctx.who, dir, false);
  } catch (e) {
    if (isCofferError(e) && e.code === 'DIRECTORY_NOT_EMPTY') throw new S3Error('BucketNotEmpty', 'The bucket you tried to delete is not empty', { BucketName: ctx.bucket });
    throw toS3Error(e, 'NoSuchBucket');
  }
  return emptyResponse(204);
}

export async function getBucketLocation(ctx: S3Context): Promise<Response> {
  await headBucket(ctx);
  return xmlResponse(xmlDocument('LocationConstraint', {}));
}

/** Versioning was never enabled (and cannot be): the empty configuration says exactly that. */
export async function getBucketVersioning(ctx: S3Context): Promise<Response> {
  await headBucket(ctx);
  return xmlResponse(xmlDocument('VersioningConfiguration', {}));
}
