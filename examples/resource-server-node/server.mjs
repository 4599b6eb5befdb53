// The videos API: a resource server that accepts Tessera access tokens (RFC 9068 JWTs).
// Every request is verified locally with jose against the realm's JWKS:
//   - the signature, with a key of the realm's JWKS (createRemoteJWKSet caches the set for
//     CACHE_MAX_AGE and fetches it again when a token names a kid it does not know, which
//     is how a key rotation reaches it);
//   - `typ: at+jwt` (RFC 9068 §4), `iss` = the realm's issuer, `aud` contains our audience,
//     `exp`/`nbf` (jose checks them), then the scope each route needs (RFC 6750 §3.1).
// A token of another realm fails the signature or `iss`, a token for another API fails `aud`.
//
// Environment (defaults are the examples realm on a developer machine):
//   ISSUER            http://localhost:4000/realms/examples
//   AUDIENCE          videos-api
//   PORT              8083
//   ALLOWED_ORIGINS   http://localhost:5173   (comma-separated; browser apps that may call us)
import http from "node:http";
import { createRemoteJWKSet, jwtVerify, errors } from "jose";

const ISSUER = process.env.ISSUER ?? "http://localhost:4000/realms/examples";
const AUDIENCE = process.env.AUDIENCE ?? "videos-api";
const PORT = Number(process.env.PORT ?? 8083);
const HOST = process.env.HOST ?? "127.0.0.1";
const ALLOWED_ORIGINS = new Set(
  (process.env.ALLOWED_ORIGINS ?? "http://localhost:5173").split(",").map((o) => o.trim()).filter(Boolean),
);
// Tessera publishes a new key `verifier_cache_ttl` (15 min) before it signs with it: a cache
// of at most 10 minutes has always seen it by then. The cooldown bounds refetches caused by
// tokens naming unknown kids (jose's default is 30 s).
const CACHE_MAX_AGE_MS = Number(process.env.JWKS_CACHE_MAX_AGE_SECONDS ?? 600) * 1000;
const COOLDOWN_MS = Number(process.env.JWKS_COOLDOWN_SECONDS ?? 30) * 1000;

// The JWKS location comes from the issuer's discovery document (OIDC Discovery §4).
async function discover(issuer) {
  const response = await fetch(`${issuer}/.well-known/openid-configuration`);
  if (!response.ok) throw new Error(`discovery at ${issuer} answered ${response.status}`);
  const metadata = await response.json();
  if (metadata.issuer !== issuer) throw new Error(`discovery names issuer ${metadata.issuer}, expected ${issuer}`);
  return metadata;
}

const metadata = await discover(ISSUER);
const JWKS = createRemoteJWKSet(new URL(metadata.jwks_uri), {
  cacheMaxAge: CACHE_MAX_AGE_MS,
  cooldownDuration: COOLDOWN_MS,
});

class Refusal extends Error {
  constructor(status, error, description, scope) {
    super(description);
    this.status = status;
    this.error = error;
    this.scope = scope;
  }
}

// The bearer token of a request (RFC 6750 §2.1), verified: its claims and signing key id.
async function verifyRequest(request, requiredScope) {
  const header = request.headers.authorization ?? "";
  const match = /^Bearer\s+([A-Za-z0-9\-._~+/]+=*)$/i.exec(header);
  if (!match) throw new Refusal(401, null, "a bearer token is required");
  let payload, protectedHeader;
  try {
    ({ payload, protectedHeader } = await jwtVerify(match[1], JWKS, {
      issuer: ISSUER,
      audience: AUDIENCE,
      typ: "at+jwt",
      algorithms: ["RS256", "ES256", "EdDSA"],
      requiredClaims: ["exp", "iat", "sub", "client_id", "jti"], // RFC 9068 §2.2
    }));
  } catch (err) {
    throw new Refusal(401, "invalid_token", describe(err));
  }
  const scopes = typeof payload.scope === "string" ? payload.scope.split(" ") : [];
  if (requiredScope && !scopes.includes(requiredScope)) {
    throw new Refusal(403, "insufficient_scope", `the token lacks the scope ${requiredScope}`, requiredScope);
  }
  return { claims: payload, kid: protectedHeader.kid };
}

function describe(err) {
  if (err instanceof errors.JWTExpired) return "the token has expired";
  if (err instanceof errors.JWTClaimValidationFailed) return `the token's ${err.claim} claim is not accepted`;
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWSSignatureVerificationFailed) {
    return "the token is not signed by the issuer";
  }
  return "the token is not valid";
}

// CORS (Fetch standard): only the configured browser origins may read our answers.
function cors(request, response) {
  const origin = request.headers.origin;
  if (origin && ALLOWED_ORIGINS.has(origin)) {
    response.setHeader("Access-Control-Allow-Origin", origin);
    response.setHeader("Access-Control-Expose-Headers", "WWW-Authenticate");
  }
  response.setHeader("Vary", "Origin");
  return origin && ALLOWED_ORIGINS.has(origin);
}

function send(response, status, body, headers = {}) {
  response.writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store", ...headers });
  response.end(JSON.stringify(body));
}

function refuse(response, refusal) {
  // RFC 6750 §3: the challenge says why; no error code when no token was sent (§3.1).
  let challenge = `Bearer realm="${AUDIENCE}"`;
  if (refusal.error) challenge += `, error="${refusal.error}", error_description="${refusal.message}"`;
  if (refusal.scope) challenge += `, scope="${refusal.scope}"`;
  const body = refusal.error ? { error: refusal.error, error_description: refusal.message } : { error_description: refusal.message };
  send(response, refusal.status, body, { "WWW-Authenticate": challenge });
}

const VIDEOS = [
  { id: "v1", title: "Rotating keys without downtime" },
  { id: "v2", title: "PKCE in five minutes" },
];

const routes = {
  "GET /videos": {
    scope: "videos.read",
    handle: ({ claims }) => ({ videos: VIDEOS, sub: claims.sub, client_id: claims.client_id, scope: claims.scope }),
  },
  "POST /videos": {
    scope: "videos.write",
    handle: ({ claims }, body) => {
      const video = { id: `v${VIDEOS.length + 1}`, title: String(body?.title ?? "Untitled").slice(0, 200), owner: claims.sub };
      VIDEOS.push(video);
      if (VIDEOS.length > 100) VIDEOS.splice(2, 1); // a demo: kept in memory, bounded
      return video;
    },
    status: 201,
  },
  "GET /me": {
    scope: null,
    handle: ({ claims, kid }) => ({ sub: claims.sub, client_id: claims.client_id, scope: claims.scope, kid }),
  },
};

async function readJson(request) {
  let text = "";
  for await (const chunk of request) {
    text += chunk;
    if (text.length > 10_000) throw new Refusal(413, "invalid_request", "the body is too large");
  }
  try {
    return text ? JSON.parse(text) : {};
  } catch {
    throw new Refusal(400, "invalid_request", "the body is not JSON");
  }
}

const server = http.createServer(async (request, response) => {
  const allowed = cors(request, response);
  const path = new URL(request.url, "http://localhost").pathname;
  if (request.method === "OPTIONS") {
    if (!allowed) return send(response, 403, { error: "origin not allowed" });
    response.writeHead(204, {
      "Access-Control-Allow-Methods": "GET, POST",
      "Access-Control-Allow-Headers": "Authorization, Content-Type",
      "Access-Control-Max-Age": "600",
    });
    return response.end();
  }
  if (path === "/healthz") return send(response, 200, { status: "ok" });
  const route = routes[`${request.method} ${path}`];
  if (!route) return send(response, 404, { error: "not_found" });
  try {
    const verified = await verifyRequest(request, route.scope);
    const body = request.method === "POST" ? await readJson(request) : undefined;
    send(response, route.status ?? 200, route.handle(verified, body));
  } catch (err) {
    if (err instanceof Refusal) return refuse(response, err);
    console.error(err);
    send(response, 500, { error: "server_error" });
  }
});

server.listen(PORT, HOST, () => {
  console.log(`videos API on http://${HOST}:${PORT} (issuer ${ISSUER}, audience ${AUDIENCE})`);
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => server.close(() => process.exit(0)));
