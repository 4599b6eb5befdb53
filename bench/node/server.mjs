// node-oidc-provider, configured for the cases the Tessera benchmark compares against:
// client_credentials with RS256 JWT access tokens (resource indicators), introspection,
// discovery and JWKS. Default in-memory adapter, one process (the benchmark pins it to
// the same core Tessera gets). Usage: PORT=4200 CLIENT_SECRET=... node server.mjs
import { generateKeyPairSync } from 'node:crypto';

import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 4200);
const secret = process.env.CLIENT_SECRET || 'bench-secret-0123456789abcdef0123456789';
const resource = process.env.RESOURCE || 'https://api.bench.example';
// Structured (JWT) access tokens cannot be introspected by oidc-provider (it answers
// unsupported_token_type), so the introspection case runs it with opaque tokens.
const format = process.env.ACCESS_TOKEN_FORMAT || 'jwt';
// The same three signing keys as the benchmark realm (RS256, ES256, EdDSA), so that the JWKS
// case (4b) compares documents of the same keys; access tokens are signed with the RSA key.
const signingKey = (type, options, kid, alg) => {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
};
const keys = [
  signingKey('rsa', { modulusLength: 2048 }, 'bench-rs256', 'RS256'),
  signingKey('ec', { namedCurve: 'P-256' }, 'bench-es256', 'ES256'),
  signingKey('ed25519', {}, 'bench-eddsa', 'EdDSA'),
];

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: 'svc',
    client_secret: secret,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
    introspection_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys },
  scopes: ['api.read'],
  cookies: { keys: ['bench-cookie-key-0123456789'] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'api.read',
        audience: resource,
        accessTokenTTL: 600,
        accessTokenFormat: format,
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
});

provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`node-oidc-provider listening on ${port}\n`);
});
