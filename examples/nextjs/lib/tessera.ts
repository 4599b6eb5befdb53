// The OpenID Connect client for Tessera, from openid-client (the library NextAuth itself
// uses for the code exchange): discovery, refresh with ID token validation, and the
// RP-initiated logout URL.
import { errors, Issuer, type BaseClient, type TokenSet } from "openid-client";
import type { JWT } from "next-auth/jwt";
import { clientId, clientSecret, issuer, jwksMaxAge, refreshMargin } from "./settings";

let discovery: Promise<Issuer<BaseClient>> | undefined;
let current: { client: BaseClient; since: number } | undefined;

async function discovered(): Promise<Issuer<BaseClient>> {
  discovery ??= Issuer.discover(issuer);
  try {
    return await discovery;
  } catch (error) {
    discovery = undefined; // try again on the next request
    throw error;
  }
}

/**
 * The client, renewed every JWKS_MAX_AGE seconds: a new Issuer starts with an empty copy of
 * the realm's JWKS. Tessera publishes a signing key `verifier_cache_ttl` (15 min by default)
 * before it signs with it, so a copy younger than that knows every key in use.
 */
export async function tesseraClient(): Promise<BaseClient> {
  const now = Date.now();
  if (!current || now - current.since >= jwksMaxAge * 1000) {
    const realm = new Issuer((await discovered()).metadata);
    const client = new realm.Client({
      client_id: clientId,
      client_secret: clientSecret(),
      token_endpoint_auth_method: "client_secret_basic",
    });
    current = { client, since: now };
  }
  return current.client;
}

/** The token fields this example keeps in NextAuth's encrypted session cookie. */
export function fromTokenSet(token: JWT, tokens: TokenSet | Record<string, unknown>): JWT {
  const expiresAt = Number(tokens.expires_at ?? 0);
  return {
    ...token,
    accessToken: tokens.access_token as string,
    // Tessera rotates refresh tokens: keep the new one; a response without one keeps the old.
    refreshToken: (tokens.refresh_token as string | undefined) ?? token.refreshToken,
    idToken: (tokens.id_token as string | undefined) ?? token.idToken,
    expiresAt,
    error: undefined,
  };
}

export function needsRefresh(token: JWT): boolean {
  const expiresAt = Number(token.expiresAt ?? 0);
  return Boolean(token.refreshToken) && expiresAt - refreshMargin <= Date.now() / 1000;
}

/**
 * One refresh_token grant (RFC 6749 §6), the new ID token validated (OIDC Core §12.2).
 * When Tessera answers invalid_grant (§5.2: the refresh token was revoked, expired or reused)
 * or answers tokens this client cannot accept (RPError: the refresh token is spent all the
 * same), the session keeps only an error and the user signs in again; on any other failure
 * (Tessera unreachable, say) the session is left as it is and the next request tries again.
 */
export async function refreshed(token: JWT): Promise<JWT> {
  try {
    const tokens = await (await tesseraClient()).refresh(token.refreshToken as string);
    return { ...fromTokenSet(token, tokens), refreshes: Number(token.refreshes ?? 0) + 1 };
  } catch (error) {
    console.warn("refreshing the access token failed:", (error as Error).message);
    const spent =
      error instanceof errors.RPError ||
      (error instanceof errors.OPError && error.error === "invalid_grant");
    if (!spent) return token;
    // Who signed in, and the ID token for the logout's id_token_hint; no usable token.
    const { name, email, picture, sub, idToken } = token;
    return { name, email, picture, sub, idToken, error: "RefreshAccessTokenError" };
  }
}
