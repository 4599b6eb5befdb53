// The OpenID Connect client for Tessera, from openid-client (the library NextAuth itself
// uses for the code exchange): discovery, refresh with ID token validation, and the
// RP-initiated logout URL.
import { errors, Issuer, type BaseClient, type TokenSet } from "openid-client";
import type { JWT } from "next-auth/jwt";
import { clientId, clientSecret, issuer, refreshMargin } from "./settings";

let client: Promise<BaseClient> | undefined;

export function tesseraClient(): Promise<BaseClient> {
  client ??= Issuer.discover(issuer).then(
    (found) =>
      new found.Client({
        client_id: clientId,
        client_secret: clientSecret(),
        token_endpoint_auth_method: "client_secret_basic",
      }),
  );
  client.catch(() => {
    client = undefined; // try discovery again on the next request
  });
  return client;
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
 * One refresh_token grant (RFC 6749 §6). When Tessera answers invalid_grant (§5.2: the
 * refresh token was revoked, expired or reused), the session keeps only an error and the user
 * signs in again; on any other failure (Tessera unreachable, say) the session is left as it
 * is and the next request tries again.
 */
export async function refreshed(token: JWT): Promise<JWT> {
  try {
    const tokens = await (await tesseraClient()).refresh(token.refreshToken as string);
    return { ...fromTokenSet(token, tokens), refreshes: Number(token.refreshes ?? 0) + 1 };
  } catch (error) {
    console.warn("refreshing the access token failed:", (error as Error).message);
    if (!(error instanceof errors.OPError && error.error === "invalid_grant")) return token;
    const { accessToken, refreshToken, expiresAt, ...rest } = token;
    void accessToken; void refreshToken; void expiresAt;
    return { ...rest, error: "RefreshAccessTokenError" };
  }
}
