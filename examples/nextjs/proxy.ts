// Refresh on the server: before a page renders, an access token close to expiry is
// exchanged for a new one (refresh_token grant, with Tessera's rotation) and the encrypted
// session cookie is rewritten. The browser only ever holds that encrypted, HttpOnly cookie.
import { NextResponse, type NextRequest } from "next/server";
import { getToken } from "next-auth/jwt";
import { secureCookies, sessionSecret } from "@/lib/settings";
import { needsRefresh, refreshed } from "@/lib/tessera";
import { continueWithSession } from "@/lib/session-cookie";

export async function proxy(request: NextRequest) {
  const token = await getToken({ req: request, secret: sessionSecret(), secureCookie: secureCookies });
  if (!token || !needsRefresh(token)) return NextResponse.next();
  const next = await refreshed(token);
  return next === token ? NextResponse.next() : continueWithSession(next, request);
}

export const config = {
  // Pages only: not NextAuth's own routes, the logout route, or static files.
  matcher: ["/((?!api|_next/static|_next/image|favicon.ico).*)"],
};
