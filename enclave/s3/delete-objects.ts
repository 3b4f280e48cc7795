// DeleteObjects (POST /bucket?delete): up to 1000 keys in one request, each deleted as DeleteObject would,
// each outcome reported (Quiet: errors only).
import { readSmallBody, xmlResponse, type S3Context } from './context.js';
import { S3Error, toS3Error } from './errors.js';
import { deleteKey, ensureBucket } from './objects.js';
import { prepareBody } from './request-body.js';
import { parseXmlBody, xmlDocument } from './xml.js';

const MAX_KEYS = 1000;

export async function deleteObjects(ctx: S3Context): Promise<Response> {
  const body = prepareBody(ctx.req.body ?? [], ctx.req.headers, ctx.auth, ctx.limits.maxXmlBytes);
  const doc = parseXmlBody((await readSmallBody(body.stream, ctx.limits.maxXmlBytes)).toString('utf8'), 'Delete');
  const objects = (doc.Object ?? []) as Array<Record<string, unknown>>;
  if (objects.length === 0) throw new S3Error('MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema');
  if (objects.length > MAX_KEYS) throw new S3Error('MalformedXML', `at most ${MAX_KEYS} keys per request`);
  const quiet = String(doc.Quiet ?? 'false').trim().toLowerCase() === 'true';
  await ensureBucket(ctx);
  const deleted: Array<Record<string, unknown>> = [];
  const errors: Array<Record<string, unknown>> = [];
  for (const o of objects) {
    const key = typeof o.Key === 'string' ? o.Key : String(o.Key ?? '');
    const version = o.VersionId === undefined ? null : String(o.VersionId);
    try {
      if (version !== null && version !== 'null') throw new S3Error('NoSuchVersion', 'The specified version does not exist.');
      await deleteKey(ctx, key);
      if (!quiet) deleted.push({ Key: key });
    } catch (e) {
      const err = toS3Error(e);
      errors.push({ Key: key, Code: err.code, Message: err.message });
    }
  }
  return xmlResponse(xmlDocument('DeleteResult', { Deleted: deleted, Error: errors }));
}
