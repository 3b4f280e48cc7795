// The checks that need no key (records.ts selfConsistency), the gateway's file-path decoding, and the TLS binding
// format: what every later integrity check and every client verification starts from.
import { describe, expect, it } from 'vitest';
import { boundSpkiSha256, tlsBinding } from '../../src/attestation/index.js';
import { selfConsistency, type Manifest, type NodeInfo } from './records.js';
import { filePathOf } from './routes.js';

const blobId = '00112233445566778899aabbccddeeff';
const node = (over: Partial<NodeInfo> = {}): NodeInfo => ({
  id: 'n1', path: '/a.bin', name: 'a.bin', type: 'file', size: 9_000_000, blobId, owner: 'alice',
  createdAt: '2026-01-01T00:00:00.000Z', modifiedAt: '2026-01-01T00:00:00.000Z', version: 1, ...over,
} as NodeInfo);
const manifest = (over: Partial<Manifest> = {}): Manifest => ({
  blobId, state: 'committed', owner: 'alice', keyGeneration: 1, keyRecord: { scheme: 'kms' }, size: 9_000_000, chunkCount: 2, chunkSize: 8 * 1024 * 1024, chunks: [], ...over,
} as Manifest);

describe('selfConsistency', () => {
  it('accepts a consistent file and refuses each inconsistency as INTEGRITY', async () => {
    await expect(selfConsistency.checkFile(node(), manifest())).resolves.toBeUndefined();
    await expect(selfConsistency.checkFile(node({ blobId: 'ff'.repeat(16) }), manifest())).rejects.toMatchObject({ code: 'INTEGRITY' });
    await expect(selfConsistency.checkFile(node(), manifest({ chunkCount: 1 }))).rejects.toMatchObject({ code: 'INTEGRITY' });
    await expect(selfConsistency.checkFile(node({ size: 1 }), manifest())).rejects.toMatchObject({ code: 'INTEGRITY' });
    await expect(selfConsistency.checkFile(node(), manifest({ state: 'uploading' } as Partial<Manifest>))).rejects.toMatchObject({ code: 'INTEGRITY' });
    await expect(selfConsistency.checkNode(node(), '/other')).rejects.toMatchObject({ code: 'INTEGRITY' });
  });
});

describe('filePathOf', () => {
  it('decodes segment by segment and refuses bad escapes', () => {
    expect(filePathOf('https://h/v1/files/a%20b/c%2Fd')).toBe('/a b/c/d');
    expect(filePathOf('https://h/v1/files/')).toBe('/');
    expect(filePathOf('https://h/v1/files/dir/')).toBe('/dir');
    expect(() => filePathOf('https://h/v1/files/%FF')).toThrow(expect.objectContaining({ code: 'INVALID_PATH' }));
  });
});

describe('TLS binding in user_data', () => {
  it('round-trips and refuses anything else', () => {
    const h = 'ab'.repeat(32);
    expect(Buffer.from(tlsBinding(h)).toString('ascii')).toBe(`coffer-tls-v1:${h}`);
    expect(boundSpkiSha256(tlsBinding(h))).toBe(h);
    expect(boundSpkiSha256(null)).toBeNull();
    expect(boundSpkiSha256(new Uint8Array(Buffer.from(`coffer-tls-v1:${h}x`)))).toBeNull();
    expect(boundSpkiSha256(new Uint8Array(Buffer.from(`coffer-tls-v2:${h}`)))).toBeNull();
  });
});
