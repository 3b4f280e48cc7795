// Metadata MAC v1: the encoding is unambiguous, every bound field changes the MAC, verification fails closed,
// and an independent implementation of docs/format.md (Python's hmac/struct, below) computes the same MACs.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { encodeMessage, MetadataMacKey, type BlobFacts, type NodeFacts } from './index.js';

const key = new MetadataMacKey(Buffer.alloc(32, 7));
const node: NodeFacts = { id: 'n1', path: '/docs/a.bin', type: 'file', blobId: '0a'.repeat(16), size: 11, owner: 'alice' };
const blob: BlobFacts = { id: '0a'.repeat(16), state: 'committed', owner: 'alice', keyGeneration: 1, size: 11, chunkCount: 1, chunkSha256: ['ab'.repeat(32)] };
const dek = Buffer.alloc(32, 9);

describe('metadata MAC encoding', () => {
  it('tells null, empty, zero and different splits apart', () => {
    // (a string and bytes share a tag: each position of a kind has one fixed type, docs/format.md)
    const forms = [[null], [''], [0], [[]], ['ab', 'c'], ['a', 'bc'], [['a'], 'b'], ['a', ['b']]];
    const encoded = forms.map((f) => encodeMessage(1, f as never).toString('hex'));
    expect(new Set(encoded).size).toBe(forms.length);
    expect(encodeMessage(1, ['x']).equals(encodeMessage(2, ['x']))).toBe(false);
  });

  it('refuses values without a canonical form', () => {
    expect(() => encodeMessage(1, [-1])).toThrow(/non-negative/);
    expect(() => encodeMessage(1, [1.5])).toThrow(/non-negative/);
    expect(() => encodeMessage(1, ['\ud800'])).toThrow(/well-formed/);
  });
});

describe('metadata MACs', () => {
  it('verify the record they were made for and nothing else', () => {
    const mac = key.node(node);
    expect(mac).toMatch(/^cm1\.[0-9a-f]{64}$/);
    expect(key.verify('node', node, mac)).toBe(true);
    for (const change of [{ id: 'n2' }, { path: '/docs/b.bin' }, { path: '/a.bin' }, { type: 'dir' as const }, { blobId: '0b'.repeat(16) }, { blobId: null }, { size: 12 }, { owner: 'bob' }]) {
      expect(key.verify('node', { ...node, ...change }, mac), JSON.stringify(change)).toBe(false);
    }
    const bmac = key.blob(blob, dek);
    expect(bmac).toMatch(/^cm1\.[0-9a-f]{64}\.[0-9a-f]{64}$/);
    expect(key.verify('blob', blob, bmac)).toBe(true);
    for (const change of [{ id: '0b'.repeat(16) }, { size: 10 }, { chunkCount: 2 }, { chunkSha256: ['cd'.repeat(32)] }, { owner: 'bob' }, { keyGeneration: 2 }, { state: 'deleting' }]) {
      expect(key.verify('blob', { ...blob, ...change }, bmac), JSON.stringify(Object.keys(change))).toBe(false);
    }
    // the data key: committed to, checked once opened; the commitment cannot be swapped without breaking the tag
    expect(key.verifyDataKey(blob.id, dek, bmac)).toBe(true);
    expect(key.verifyDataKey(blob.id, Buffer.alloc(32, 8), bmac)).toBe(false);
    expect(key.verifyDataKey('0b'.repeat(16), dek, bmac)).toBe(false);
    const otherCommitment = key.blob(blob, Buffer.alloc(32, 8)).split('.')[2];
    expect(key.verify('blob', blob, `${bmac.split('.').slice(0, 2).join('.')}.${otherCommitment}`)).toBe(false);
    // a MAC of one kind never verifies as another, even over "the same" strings
    const grant = key.grant({ path: '/docs', user: 'bob', role: 'read' });
    expect(key.verify('grant', { path: '/docs', user: 'bob', role: 'read' }, grant)).toBe(true);
    expect(key.verify('grant', { path: '/docs', user: 'bob', role: 'write' }, grant)).toBe(false);
    expect(key.verify('grant', { path: '/', user: 'bob', role: 'read' }, grant)).toBe(false);
    expect(key.verify('user', { name: 'bob', disabled: false }, key.user({ name: 'bob', disabled: true }))).toBe(false);
    expect(new MetadataMacKey(Buffer.alloc(32, 8)).verify('node', node, mac)).toBe(false);
  });

  it('fail closed on a missing, malformed or other-version MAC', () => {
    const mac = key.node(node);
    for (const stored of [undefined, null, '', mac.toUpperCase(), mac.slice(0, -1), `cm2.${mac.slice(4)}`, mac.replace('cm1.', ''), 42]) {
      expect(key.verify('node', node, stored)).toBe(false);
    }
    expect(key.verify('node', { ...node, size: -1 }, mac)).toBe(false);
    expect(() => new MetadataMacKey(Buffer.alloc(31))).toThrow(/32 bytes/);
  });

  it('match an independent implementation of the format (Python hmac + struct)', () => {
    const py = String.raw`
import hmac, hashlib, struct, sys, json
def f(v):
    if v is None: return b'\x00'
    if isinstance(v, bool): raise SystemExit('no bools')
    if isinstance(v, int): return b'\x02' + struct.pack('>Q', v)
    if isinstance(v, list): return b'\x03' + struct.pack('>I', len(v)) + b''.join(f(x) for x in v)
    if isinstance(v, dict): b = bytes.fromhex(v['hex'])
    else: b = v.encode('utf-8')
    return b'\x01' + struct.pack('>I', len(b)) + b
def tag(kind, fields):
    msg = b'coffer-metadata-mac\x00' + bytes([1, kind]) + b''.join(f(x) for x in fields)
    return hmac.new(bytes([7]) * 32, msg, hashlib.sha256).hexdigest()
def mac(kind, fields):
    if kind != 2: return 'cm1.' + tag(kind, fields)
    commitment = tag(5, [fields[0], fields[-1]])
    return 'cm1.' + tag(2, fields[:-1] + [{'hex': commitment}]) + '.' + commitment
cases = json.load(sys.stdin)
print(json.dumps([mac(k, fs) for k, fs in cases]))
`;
    const cases = [
      [1, [node.id, node.path, node.type, node.blobId, node.size, node.owner]],
      [2, [blob.id, blob.state, blob.owner, blob.keyGeneration, blob.size, blob.chunkCount, blob.chunkSha256, { hex: dek.toString('hex') }]],
      [3, ['/docs', 'bob', 'read']],
      [4, ['bob', 1]],
      [1, ['root', '/', 'dir', null, 0, 'älice 😀']],
    ];
    const theirs = JSON.parse(execFileSync('python3', ['-c', py], { input: JSON.stringify(cases) }).toString()) as string[];
    expect(theirs).toEqual([
      key.node(node),
      key.blob(blob, dek),
      key.grant({ path: '/docs', user: 'bob', role: 'read' }),
      key.user({ name: 'bob', disabled: true }),
      key.node({ id: 'root', path: '/', type: 'dir', blobId: null, size: 0, owner: 'älice 😀' }),
    ]);
  });
});
