// The framing of the one-request small-file calls (docs/http-api.md "Small files"): a body is
//   u32 big-endian J ‖ J bytes of JSON ‖ the rest (a sealed chunk, possibly empty)
// so that a request's metadata (a key record may be 16 KiB: too big for a header) and its sealed bytes travel
// together, and the bytes after the JSON stream on without being buffered or copied.
import { CofferError, ErrorCode } from '../errors.js';

export const FRAME_PREFIX = 4;
export const FILE_MEDIA_TYPE = 'application/vnd.coffer.file+v1';
/** The batch read's answer: a sequence of framed records (docs/http-api.md "Many small files in one request"). */
export const FILES_MEDIA_TYPE = 'application/vnd.coffer.files+v1';
/** Many files in one upload request (POST /v1/files/batch): the same framing, the JSON part listing the files. */
export const FILE_BATCH_MEDIA_TYPE = 'application/vnd.coffer.file-batch+v1';

/**
 * Reads the prefix and the JSON part of a framed body; returns the JSON bytes and a stream of the rest (the
 * bytes read past the JSON included). Throws INVALID_ARGUMENT (body shorter than its prefix or JSON part),
 * PAYLOAD_TOO_LARGE (JSON part over `maxJson`).
 */
export async function readFrameHead(
  source: AsyncIterable<Uint8Array>, maxJson: number,
): Promise<{ json: Buffer; rest: AsyncIterable<Uint8Array>; jsonLength: number }> {
  const it = source[Symbol.asyncIterator]();
  const parts: Buffer[] = [];
  let have = 0;
  let need = FRAME_PREFIX;
  let jsonLength = -1;
  while (have < need) {
    const r = await it.next();
    if (r.done) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'the body ended inside its JSON part');
    const b = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    parts.push(b);
    have += b.length;
    if (jsonLength < 0 && have >= FRAME_PREFIX) {
      jsonLength = Buffer.concat(parts).readUInt32BE(0);
      if (jsonLength > maxJson) throw new CofferError(ErrorCode.PAYLOAD_TOO_LARGE, `the JSON part is over ${maxJson} bytes`);
      need = FRAME_PREFIX + jsonLength;
    }
  }
  const head = Buffer.concat(parts);
  const json = head.subarray(FRAME_PREFIX, need);
  const after = head.subarray(need);
  async function* rest(): AsyncGenerator<Uint8Array> {
    if (after.length > 0) yield after;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  }
  return { json, rest: rest(), jsonLength };
}

/** The prefix and JSON part of a framed body for `value`. */
export function frameHead(value: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(value), 'utf8');
  const head = Buffer.allocUnsafe(FRAME_PREFIX + json.length);
  head.writeUInt32BE(json.length, 0);
  json.copy(head, FRAME_PREFIX);
  return head;
}
