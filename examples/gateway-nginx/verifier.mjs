// The token verifier NGINX asks before it forwards a request (`auth_request`): it asks
// Tessera whether the bearer token is active (RFC 7662 token introspection, as the
// confidential client `gateway`, through openid-client) and answers NGINX with
//   204 + X-Subject / X-Client-Id / X-Scope  the token is active, for our audience, with the scope;
//   401 + WWW-Authenticate                   no token, or not active (expired, revoked, foreign);
//   403 + WWW-Authenticate                   active but for another audience or without the scope.
// Introspection (unlike local JWT verification) also refuses a token revoked a moment ago.
import http from "node:http";
import * as client from "openid-client";

export function settings(env = process.env) {
  const issuer = env.ISSUER ?? "http://localhost:4000/realms/examples";
  return {
    issuer,
    clientId: env.GATEWAY_CLIENT_ID ?? "gateway",
    clientSecret: env.GATEWAY_CLIENT_SECRET ?? "change-me-gateway-secret-0123456789abcdef",
    audience: env.AUDIENCE ?? "videos-api",
    port: Number(env.VERIFIER_PORT ?? 8086),
  };
}

export async function startVerifier(config = settings()) {
  // Plain http is allowed only for an issuer on this machine (the examples realm).
  const loopback = ["localhost", "127.0.0.1", "[::1]"].includes(new URL(config.issuer).hostname);
  const oidc = await client.discovery(
    new URL(config.issuer),
    config.clientId,
    undefined,
    client.ClientSecretBasic(config.clientSecret),
    loopback ? { execute: [client.allowInsecureRequests] } : undefined,
  );

  async function verdict(request) {
    const match = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? "");
    if (!match) return { status: 401, challenge: "Bearer" };
    const token = await client.tokenIntrospection(oidc, match[1], { token_type_hint: "access_token" });
    if (!token.active) {
      return { status: 401, challenge: 'Bearer error="invalid_token", error_description="the token is not active"' };
    }
    const audiences = Array.isArray(token.aud) ? token.aud : [token.aud];
    if (!audiences.includes(config.audience)) {
      return { status: 401, challenge: 'Bearer error="invalid_token", error_description="the token is not for this API"' };
    }
    const wanted = request.headers["x-required-scope"];
    const scopes = (token.scope ?? "").split(" ");
    if (wanted && !scopes.includes(wanted)) {
      return { status: 403, challenge: `Bearer error="insufficient_scope", scope="${wanted}"` };
    }
    return {
      status: 204,
      headers: { "X-Subject": token.sub ?? "", "X-Client-Id": token.client_id ?? "", "X-Scope": token.scope ?? "" },
    };
  }

  const server = http.createServer(async (request, response) => {
    try {
      const { status, challenge, headers = {} } = await verdict(request);
      if (challenge) headers["WWW-Authenticate"] = challenge;
      response.writeHead(status, { "Cache-Control": "no-store", ...headers }).end();
    } catch (err) {
      console.error(`introspection failed: ${err.message}`);
      response.writeHead(503).end(); // NGINX answers 500: fail closed
    }
  });
  await new Promise((resolve) => server.listen(config.port, "127.0.0.1", resolve));
  console.log(`verifier on http://127.0.0.1:${config.port} (introspecting at ${config.issuer} as ${config.clientId})`);
  return server;
}

if (import.meta.url === `file://${process.argv[1]}`) await startVerifier();
