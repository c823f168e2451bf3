// Generates an Ed25519 private JWK for SIGNING_KEYS. Shared by `npm start` (for .dev.vars) and
// the test configuration, so both run with keys made the same way as production ones.
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';

/** RFC 7638 thumbprint of an OKP public key: a stable, meaningful `kid`. */
function thumbprint(jwk) {
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x });
  return createHash('sha256').update(canonical).digest('base64url');
}

/** A fresh Ed25519 private JWK with `kid`, `alg` and `use`. */
export function generateSigningKey() {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  return { kty: jwk.kty, crv: jwk.crv, x: jwk.x, d: jwk.d, kid: thumbprint(jwk), alg: 'EdDSA', use: 'sig' };
}

/** A random bearer token for ADMIN_TOKEN. */
export function generateAdminToken() {
  return randomBytes(32).toString('base64url');
}
