import { describe, expect, it } from 'vitest';
import { call, claimsOf, login, PASSWORD, register, renewOk, uniqueEmail } from '../support/helpers';

describe('the README walkthrough', () => {
  it('registers, logs in, calls /api/me, renews and logs out', async () => {
    const email = uniqueEmail();
    const user = await register(email);
    const token = await login(email, PASSWORD, 'curl');
    expect(token.token_type).toBe('Bearer');
    expect(token.expires_in).toBe(300);
    const me = await call('/api/me', { token: token.access_token });
    expect(me.status).toBe(200);
    expect(await me.json()).toMatchObject({ user_id: user.id, session_id: token.session_id });
    const next = await renewOk(token.access_token);
    expect(next.session_id).toBe(token.session_id);
    expect(claimsOf(next.access_token).gen).toBe(2);
    const out = await call('/auth/logout', { method: 'POST', token: next.access_token });
    expect(out.status).toBe(204);
  });
});
