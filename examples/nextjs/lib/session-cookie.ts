// Writing NextAuth's session cookie from proxy.ts after a refresh, the way NextAuth writes
// it: an encrypted JWT (`encode` from next-auth/jwt), HttpOnly, SameSite=Lax, split into
// `<name>.0`, `<name>.1`, ... when it is longer than a browser keeps in one cookie.
import { encode, type JWT } from "next-auth/jwt";
import { NextResponse, type NextRequest } from "next/server";
import { secureCookies, sessionCookieName, sessionSecret } from "./settings";

const MAX_AGE = 30 * 24 * 60 * 60; // NextAuth's default session maxAge
const CHUNK_SIZE = 4096 - 163; // NextAuth's own chunk size (core/lib/cookie.js)

function pieces(value: string): Array<[string, string]> {
  if (value.length <= CHUNK_SIZE) return [[sessionCookieName, value]];
  const count = Math.ceil(value.length / CHUNK_SIZE);
  return Array.from({ length: count }, (_, i) => [
    `${sessionCookieName}.${i}`,
    value.slice(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE),
  ]);
}

/**
 * Continue to the page with `token` as the session: on the request that goes on (so the
 * page of this very request sees the new tokens, and no second refresh runs with a refresh
 * token Tessera has already rotated away) and on the response (for the browser).
 */
export async function continueWithSession(token: JWT, request: NextRequest): Promise<NextResponse> {
  const value = await encode({ token, secret: sessionSecret(), maxAge: MAX_AGE });
  const fresh = pieces(value);
  const names = new Set(fresh.map(([name]) => name));
  const stale = request.cookies
    .getAll()
    .map(({ name }) => name)
    .filter((name) => isSessionCookie(name) && !names.has(name));
  // RequestCookies write through to request.headers ("Cookie").
  for (const name of stale) request.cookies.delete(name);
  for (const [name, piece] of fresh) request.cookies.set(name, piece);
  const response = NextResponse.next({ request: { headers: request.headers } });
  for (const name of stale) response.cookies.set(name, "", { path: "/", maxAge: 0 });
  for (const [name, piece] of fresh) {
    response.cookies.set(name, piece, {
      path: "/",
      httpOnly: true,
      sameSite: "lax",
      secure: secureCookies,
      maxAge: MAX_AGE,
    });
  }
  return response;
}

/** Every session cookie the browser sent (the whole cookie or its chunks). */
export function sessionCookieNames(request: NextRequest): string[] {
  return request.cookies
    .getAll()
    .map(({ name }) => name)
    .filter(isSessionCookie);
}

function isSessionCookie(name: string): boolean {
  return name === sessionCookieName || name.startsWith(`${sessionCookieName}.`);
}
