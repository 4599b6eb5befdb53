// NextAuth (v4) with Tessera as an OpenID Connect provider: authorization code with PKCE,
// state and nonce; the ID token is validated by openid-client against the realm's JWKS.
import type { NextAuthOptions } from "next-auth";
import { clientId, clientSecret, issuer, scope, sessionSecret } from "./settings";
import { fromTokenSet } from "./tessera";

export const authOptions: NextAuthOptions = {
  secret: sessionSecret(),
  providers: [
    {
      id: "tessera", // the callback is /api/auth/callback/tessera
      name: "Tessera",
      type: "oauth",
      wellKnown: `${issuer}/.well-known/openid-configuration`,
      clientId,
      clientSecret: clientSecret(),
      authorization: { params: { scope } },
      checks: ["pkce", "state", "nonce"],
      idToken: true,
      profile(claims) {
        return {
          id: claims.sub,
          name: claims.name ?? claims.email,
          email: claims.email,
          image: claims.picture,
        };
      },
    },
  ],
  session: { strategy: "jwt" },
  callbacks: {
    // The tokens live only in the encrypted, HttpOnly session cookie; proxy.ts refreshes them.
    async jwt({ token, account }) {
      if (account) return fromTokenSet(token, account);
      return token;
    },
    // What getServerSession and /api/auth/session return: no token at all.
    async session({ session, token }) {
      return { ...session, sub: token.sub, error: token.error as string | undefined };
    },
  },
};
