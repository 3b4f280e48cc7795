// The audit hash chain over the real SQLite store, tampered with directly in the database as a host-side
// attacker would.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
// The test edits the SQLite file behind the store's back, which is the point (test files may use the driver).
import { DatabaseSync, type SQLInputValue } from 'node:sqlite';
import { appendAudit, auditHash, canonicalJson, GENESIS_HASH, verifyAuditChain } from './audit.js';
import { openTestVault, type TestVault } from './test-env.js';

let t: TestVault;
let db: DatabaseSync;
beforeEach(async () => {
  t = await openTestVault({ defaultRootRole: 'write' });
  for (let i = 1; i <= 6; i++) await appendAudit(t.store, { actor: 'alice', action: 'test', target: `/t${i}`, details: { i, nested: { b: [1, 'x'], a: null } } });
  db = new DatabaseSync(t.dbPath);
});
afterEach(async () => {
  db.close();
  await t.close();
});

describe('audit chain', () => {
  it('canonical JSON sorts keys and refuses non-JSON values', () => {
    expect(canonicalJson({ b: 1, a: [true, null, 'é'] })).toBe('{"a":[true,null,"é"],"b":1}');
    expect(() => canonicalJson({ a: undefined })).toThrow();
    expect(() => canonicalJson({ a: NaN })).toThrow();
    expect(() => canonicalJson({ a: new Date() })).toThrow();
  });

  it('verifies an intact chain and starts from 64 zeros', async () => {
    const r = await verifyAuditChain(t.store, 4); // small pages: crosses a page boundary
    expect(r).toMatchObject({ ok: true, count: 6, head: { seq: 6 } });
    const first = (await t.store.listAudit(0, 1))[0]!;
    expect(first.prevHash).toBe(GENESIS_HASH);
    expect(auditHash(first)).toBe(first.hash);
  });

  it('detects an edited entry', async () => {
    db.prepare(`UPDATE audit SET target = '/evil' WHERE seq = 3`).run();
    expect(await verifyAuditChain(t.store)).toMatchObject({ ok: false, brokenAt: 3, count: 2 });
  });

  it('detects an edited entry whose hash was recomputed (next link breaks)', async () => {
    const e3 = (await t.store.listAudit(2, 1))[0]!;
    const forged = { ...e3, target: '/evil' };
    db.prepare(`UPDATE audit SET target = '/evil', hash = ? WHERE seq = 3`).run(auditHash(forged));
    expect(await verifyAuditChain(t.store)).toMatchObject({ ok: false, brokenAt: 4 });
  });

  it('detects edited details', async () => {
    db.prepare(`UPDATE audit SET details = '{"i":99}' WHERE seq = 2`).run();
    expect(await verifyAuditChain(t.store)).toMatchObject({ ok: false, brokenAt: 2 });
  });

  it('detects a removed entry (seq gap)', async () => {
    db.prepare(`DELETE FROM audit WHERE seq = 5`).run();
    expect(await verifyAuditChain(t.store)).toMatchObject({ ok: false, brokenAt: 5 });
  });

  it('detects reordered entries', async () => {
    const rows = db.prepare(`SELECT * FROM audit WHERE seq IN (2, 3) ORDER BY seq`).all() as Array<Record<string, SQLInputValue>>;
    const cols = Object.keys(rows[0]!).filter((k) => k !== 'seq');
    const set = db.prepare(`UPDATE audit SET ${cols.map((c) => `${c} = @${c}`).join(', ')} WHERE seq = @seq`);
    db.exec('BEGIN');
    set.run({ ...rows[1], seq: 2 });
    set.run({ ...rows[0], seq: 3 });
    db.exec('COMMIT');
    expect(await verifyAuditChain(t.store)).toMatchObject({ ok: false, brokenAt: 2 });
  });

  it('a truncated tail still verifies: only an external anchor (the head) reveals it', async () => {
    const head = (await verifyAuditChain(t.store)).head;
    db.prepare(`DELETE FROM audit WHERE seq >= 5`).run();
    const r = await verifyAuditChain(t.store);
    expect(r.ok).toBe(true);
    expect(r.head.seq).toBe(4);
    expect(r.head.hash).not.toBe(head.hash);
  });

  it('concurrent appends all land, in one unbroken chain', async () => {
    await Promise.all(Array.from({ length: 20 }, (_, i) => appendAudit(t.store, { actor: 'x', action: 'race', target: String(i) })));
    expect(await verifyAuditChain(t.store)).toMatchObject({ ok: true, count: 26 });
  });
});
