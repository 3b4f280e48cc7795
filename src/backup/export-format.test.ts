// The metadata export's records (docs/backup.md "Metadata export", docs/format.md change log): the optional
// `mac` key is appended last and only when a record has one, so records without a MAC keep their exact bytes;
// exports written before it existed still parse; a malformed `mac` or `disabled` is refused, not guessed.
import { describe, expect, it } from 'vitest';
import { encodeRecord, parseRecord } from './export-format.js';

const at = new Date('2026-12-04T17:05:12.123Z');
const MAC = `cm1.${'ab'.repeat(32)}`;

describe('metadata export records', () => {
  it('encodes a user without a MAC exactly as before, and one with its MAC as the last key', () => {
    expect(encodeRecord({ type: 'user', user: { name: 'carol', createdAt: at, disabled: true } }))
      .toBe('{"type":"user","name":"carol","createdAt":"2026-12-04T17:05:12.123Z","disabled":true}\n');
    expect(encodeRecord({ type: 'user', user: { name: 'carol', createdAt: at, disabled: true, mac: null } }))
      .toBe('{"type":"user","name":"carol","createdAt":"2026-12-04T17:05:12.123Z","disabled":true}\n');
    expect(encodeRecord({ type: 'user', user: { name: 'carol', createdAt: at, disabled: true, mac: MAC } }))
      .toBe(`{"type":"user","name":"carol","createdAt":"2026-12-04T17:05:12.123Z","disabled":true,"mac":"${MAC}"}\n`);
    expect(encodeRecord({ type: 'grant', grant: { nodeId: 'n1', user: 'bob', role: 'read', createdAt: at, mac: MAC } }))
      .toBe(`{"type":"grant","nodeId":"n1","user":"bob","role":"read","createdAt":"2026-12-04T17:05:12.123Z","mac":"${MAC}"}\n`);
  });

  it('round-trips disabled and MACs of users, nodes, blobs and grants; a line without `mac` has none', () => {
    const node = { id: 'n1', parentId: 'root', name: 'a', type: 'file' as const, blobId: 'b'.repeat(32), size: 1, owner: 'alice', createdAt: at, modifiedAt: at, version: 2, mac: MAC };
    const blob = {
      id: 'b'.repeat(32), state: 'committed' as const, owner: 'alice', keyGeneration: 1, keyRecord: { scheme: 'keyfile' } as never, size: 1,
      chunkCount: 1, chunkSha256: ['0'.repeat(64)], createdAt: at, updatedAt: at, attrs: {}, mac: `${MAC}.${'cd'.repeat(32)}`,
    };
    for (const r of [
      { type: 'user' as const, user: { name: 'carol', createdAt: at, disabled: true, mac: MAC } },
      { type: 'user' as const, user: { name: 'dave', createdAt: at, disabled: false } },
      { type: 'node' as const, node },
      { type: 'blob' as const, blob },
      { type: 'grant' as const, grant: { nodeId: 'n1', user: 'bob', role: 'write' as const, createdAt: at, mac: MAC } },
    ]) {
      expect(parseRecord(encodeRecord(r).trimEnd(), 2)).toEqual(r);
    }
    expect(parseRecord('{"type":"user","name":"erin","createdAt":"2026-12-04T17:05:12.123Z","disabled":true}', 2)).toEqual({ type: 'user', user: { name: 'erin', createdAt: at, disabled: true } });
  });

  it('refuses a malformed MAC and a user whose disabled flag is not a boolean', () => {
    const user = (extra: string): string => `{"type":"user","name":"x","createdAt":"2026-12-04T17:05:12.123Z"${extra}}`;
    for (const bad of [',"disabled":true,"mac":""', ',"disabled":true,"mac":"a b"', ',"disabled":true,"mac":7', `,"disabled":true,"mac":"${'a'.repeat(257)}"`, ',"disabled":"yes"', '']) {
      expect(() => parseRecord(user(bad), 3), bad).toThrow(expect.objectContaining({ code: 'INTEGRITY', message: expect.stringMatching(/line 3: "(mac|disabled)"/) }));
    }
  });
});
