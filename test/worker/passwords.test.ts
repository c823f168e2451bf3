import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { runInDurableObject } from 'cloudflare:test';
import { USER_SCHEMA_VERSION, UserRecords } from '../../src/storage/user-records';
import { authorityStub } from '../support/faults';
import { app } from '../../src/app';
import { hashPassword, verifyPassword } from '../../src/passwords/hash';
import { adminToken, expectProblem, login, PASSWORD, register, uniqueEmail } from '../support/helpers';

describe('password hashes', () => {
  it('are self-describing and salted: the same password hashes differently each time', async () => {
    const [a, b] = await Promise.all([hashPassword(PASSWORD), hashPassword(PASSWORD)]);
    expect(a).toMatch(/^\$scrypt\$v=1\$ln=14,r=8,p=5\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    expect(a).not.toBe(b);
    expect(await verifyPassword(PASSWORD, a)).toEqual({ ok: true, needsRehash: false });
    expect(await verifyPassword(`${PASSWORD}!`, a)).toEqual({ ok: false, needsRehash: false });
  });

  it('an unknown user never verifies, whatever the password', async () => {
    expect((await verifyPassword('', undefined)).ok).toBe(false);
    expect((await verifyPassword(PASSWORD, undefined)).ok).toBe(false);
  });

  it('normalizes Unicode (NFKC) so the same password typed on another keyboard matches', async () => {
    const composed = 'caf\u00e9 au lait with sugar';
    const decomposed = 'cafe\u0301 au lait with sugar';
    expect((await verifyPassword(decomposed, await hashPassword(composed))).ok).toBe(true);
  });

  it('a hash with older parameters verifies and is upgraded at the next successful login', async () => {
    const email = uniqueEmail();
    const { id } = await register(email);
    const old = await hashPassword(PASSWORD, { ln: 12, r: 8, p: 1 });
    await env.DB.prepare('UPDATE users SET password_hash = ?2 WHERE id = ?1').bind(id, old).run();
    expect(await verifyPassword(PASSWORD, old)).toEqual({ ok: true, needsRehash: true });
    await login(email);
    const row = await env.DB.prepare('SELECT password_hash FROM users WHERE id = ?1').bind(id).first<{ password_hash: string }>();
    expect(row?.password_hash).toMatch(/^\$scrypt\$v=1\$ln=14,r=8,p=5\$/);
    await login(email);
  });
});

describe("the user object's schema", () => {
  it('is migrated once, to the newest version, and migrating again changes nothing', async () => {
    const { id } = await register();
    await login((await emailOf(id)) as string);
    const versions = await runInDurableObject(authorityStub(id), (_instance, state) => {
      const read = () => state.storage.sql.exec<{ version: number }>('SELECT version FROM schema_version').toArray();
      const first = read();
      new UserRecords(state.storage.sql).migrate();
      return { first, again: read(), sessions: state.storage.sql.exec('SELECT id FROM sessions').toArray().length };
    });
    expect(versions.first).toEqual([{ version: USER_SCHEMA_VERSION }]);
    expect(versions.again).toEqual([{ version: USER_SCHEMA_VERSION }]);
    expect(versions.sessions).toBe(1);
    expect(USER_SCHEMA_VERSION).toBeGreaterThanOrEqual(2);
  });

  it('an object made before passkeys and DBSC gains their tables, keeping its records', async () => {
    const { id } = await register();
    await login((await emailOf(id)) as string);
    const upgraded = await runInDurableObject(authorityStub(id), (_instance, state) => {
      const sql = state.storage.sql;
      // The storage as the version before passkeys left it: the two newest migrations undone.
      sql.exec('DROP TABLE dbsc_challenges');
      sql.exec('ALTER TABLE sessions DROP COLUMN dbsc_key');
      sql.exec('DROP TABLE passkey_challenges');
      sql.exec('UPDATE schema_version SET version = ?', USER_SCHEMA_VERSION - 2);
      new UserRecords(sql).migrate();
      sql.exec("INSERT INTO passkey_challenges (challenge, session_id, expires_at) VALUES ('c', 's', 1)");
      sql.exec("INSERT INTO dbsc_challenges (challenge, session_id, expires_at) VALUES ('c', 's', 1)");
      return {
        version: sql.exec<{ version: number }>('SELECT version FROM schema_version').one().version,
        sessions: sql.exec('SELECT id, dbsc_key FROM sessions').toArray(),
      };
    });
    expect(upgraded).toMatchObject({ version: USER_SCHEMA_VERSION, sessions: [{ dbsc_key: null }] });
  });
});

describe('admin routes without ADMIN_TOKEN', () => {
  it('answer 404, as if they did not exist', async () => {
    const { id } = await register();
    const withoutAdmin = { ...env, ADMIN_TOKEN: undefined };
    const request = new Request(`http://localhost/admin/users/${id}/revoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken()}` },
    });
    await expectProblem(await app.fetch(request, withoutAdmin), 404, 'not_found');
  });
});

async function emailOf(userId: string): Promise<string | undefined> {
  const row = await env.DB.prepare('SELECT email FROM users WHERE id = ?1').bind(userId).first<{ email: string }>();
  return row?.email;
}
