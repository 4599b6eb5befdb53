// RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): end the NextAuth session
// here, revoke the refresh token (RFC 7009), then send the browser to Tessera's
// end_session_endpoint with id_token_hint, which ends the IdP session and comes back to
// post_logout_redirect_uri.
import { NextResponse, type NextRequest } from "next/server";
import { getToken } from "next-auth/jwt";
import { appUrl, secureCookies, sessionSecret } from "@/lib/settings";
import { tesseraClient } from "@/lib/tessera";
import { sessionCookieNames } from "@/lib/session-cookie";

export async function POST(request: NextRequest) {
  const origin = request.headers.get("origin");
  if (origin && origin !== new URL(appUrl).origin) {
    return new NextResponse("Sign-out is only accepted from this application's own pages.", {
      status: 403,
    });
  }
  const home = new URL("/", appUrl).toString();
  const token = await getToken({ req: request, secret: sessionSecret(), secureCookie: secureCookies });
  let target = home;
  if (token?.idToken) {
    try {
      const client = await tesseraClient();
      if (token.refreshToken) {
        await client.revoke(token.refreshToken as string, "refresh_token").catch((error: Error) => {
          console.warn("revoking the refresh token failed:", error.message);
        });
      }
      target = client.endSessionUrl({
        id_token_hint: token.idToken as string,
        post_logout_redirect_uri: home,
      });
    } catch (error) {
      // Tessera unreachable: this application's session still ends.
      console.warn("RP-initiated logout is unavailable:", (error as Error).message);
    }
  }
  const response = NextResponse.redirect(target, 303);
  for (const name of sessionCookieNames(request)) {
    response.cookies.set(name, "", { path: "/", maxAge: 0 });
  }
  return response;
}
