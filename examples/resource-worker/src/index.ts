/**
 * An API of its own that accepts latchkey's access tokens: the pattern for any Worker that sits
 * next to latchkey. It never signs anything and holds no secret; it checks tokens with
 * `latchkey/verify` against one of three key sources (wrangler.toml says which is chosen).
 *
 * Tokens bound to a client's key (DPoP, RFC 9449) are accepted on every route only as
 * `Authorization: DPoP` with a `DPoP` proof of that key; `POST /notes` takes nothing else.
 */
import { env } from 'cloudflare:workers';
import { Hono } from 'hono';
import {
  createVerifier,
  type KeySource,
  type LatchkeyBinding,
  type LatchkeyVariables,
  latchkeyAuth,
} from 'latchkey/verify';

function keySource(): { name: 'binding' | 'inline' | 'jwks'; keys: KeySource } {
  // A binding that is not configured is absent at run time, whatever the generated type says.
  // The generated type knows the entrypoint's name, not its methods: hence the cast.
  const binding = (env as Partial<Env>).LATCHKEY as unknown as LatchkeyBinding | undefined;
  if (binding) return { name: 'binding', keys: { binding } };
  if (env.LATCHKEY_JWKS.trim() !== '') return { name: 'inline', keys: { jwks: env.LATCHKEY_JWKS } };
  return { name: 'jwks', keys: { jwksUrl: new URL('/.well-known/jwks.json', env.LATCHKEY_ISSUER) } };
}

const source = keySource();

// Built once per isolate, at start-up: a bad option stops the Worker from loading, and the
// fetched keys are cached across requests.
const verifier = createVerifier({ issuer: env.LATCHKEY_ISSUER, audience: env.LATCHKEY_AUDIENCE, keys: source.keys });

const app = new Hono<{ Bindings: Env; Variables: LatchkeyVariables }>()
  .get('/health', (c) => c.json({ ok: true, key_source: source.name }))
  // Stateless: the token alone, no call to latchkey once the keys are cached. A bound token also
  // needs its proof here (the default, `dpop: 'allowed'`); an unbound one comes as Bearer.
  .get('/notes', latchkeyAuth(verifier), (c) => {
    const { sub, sid } = c.get('latchkey');
    return c.json({ user_id: sub, session_id: sid, notes: [] });
  })
  // Bound tokens only: a copy of the token is useless here without the client's key. Each proof
  // is accepted once; this verifier remembers them per isolate (docs/VERIFYING.md says when to
  // give it a stronger store).
  .post('/notes', latchkeyAuth(verifier, { dpop: 'required' }), (c) => {
    const { sub, cnf } = c.get('latchkey');
    return c.json({ user_id: sub, bound_to: cnf?.jkt ?? null, saved: true }, 201);
  });

// Strict: latchkey confirms the session is still live (not signed out, not revoked), so a stolen
// token stops working at once rather than when it expires. Needs the service binding.
if (verifier.supportsStrict) {
  app.post('/payments', latchkeyAuth(verifier, { strict: true }), (c) => {
    const { sub } = c.get('latchkey');
    return c.json({ user_id: sub, accepted: true }, 201);
  });
}

app.notFound(
  () =>
    new Response(
      JSON.stringify({ type: 'urn:latchkey:problem:not_found', title: 'Not found', status: 404, code: 'not_found' }),
      { status: 404, headers: { 'content-type': 'application/problem+json' } },
    ),
);

export default app satisfies ExportedHandler<Env>;
