// XML in and out, through fast-xml-parser (no hand-written parser). Responses carry S3's namespace; request
// bodies (CompleteMultipartUpload, DeleteObjects) are parsed with attributes off and a
// size cap applied by the caller before parsing. Only the predefined and numeric character entities are decoded
// (SDKs escape quotes in ETags as &#34;); documents with a DOCTYPE are refused.
import { XMLBuilder, XMLParser } from 'fast-xml-parser';
import { S3Error } from './errors.js';

const NS = 'http://s3.amazonaws.com/doc/2006-03-01/';
const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@', suppressEmptyNode: false, processEntities: true });
const parser = new XMLParser({
  ignoreAttributes: true, processEntities: true, htmlEntities: true, parseTagValue: false, trimValues: false,
  isArray: (name) => name === 'Part' || name === 'Object',
});

/** `<Root xmlns=…>…</Root>` with the XML declaration. Values are escaped by the builder. */
export function xmlDocument(root: string, body: Record<string, unknown>, namespace = true): string {
  const content = namespace ? { '@xmlns': NS, ...body } : body;
  return `<?xml version="1.0" encoding="UTF-8"?>\n${builder.build({ [root]: content }) as string}`;
}

/** The error document S3 answers with. */
export function errorDocument(code: string, message: string, resource: string, requestId: string, extra: Record<string, string> = {}): string {
  return xmlDocument('Error', { Code: code, Message: message, ...extra, Resource: resource, RequestId: requestId }, false);
}

/** Parses a request body; anything that is not well-formed XML with the expected root is MalformedXML. */
export function parseXmlBody(text: string, root: string): Record<string, unknown> {
  let doc: unknown;
  try {
    if (!/^\s*(<\?xml[^>]*\?>\s*)?</.test(text)) throw new Error('not XML');
    if (/<!DOCTYPE|<!ENTITY/i.test(text)) throw new Error('no document type declarations'); // no entity expansion games
    doc = parser.parse(text, true);
  } catch {
    throw new S3Error('MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema');
  }
  const value = (doc as Record<string, unknown>)[root];
  if (value === undefined || value === null || typeof value !== 'object') {
    throw new S3Error('MalformedXML', `expected a <${root}> document`);
  }
  return value as Record<string, unknown>;
}

/** Minimal XML escaping for the few values we insert by hand (entity-safe). */
export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] as string);
}
