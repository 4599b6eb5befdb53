// The tokens in the session, for server components only (they never reach the browser:
// the session callback in lib/auth.ts returns none of them).
import "server-only";
import { cookies, headers } from "next/headers";
import { getToken, type JWT } from "next-auth/jwt";
import { secureCookies, sessionSecret } from "./settings";

export async function serverToken(): Promise<JWT | null> {
  const req = { cookies: await cookies(), headers: Object.fromEntries(await headers()) };
  // getToken reads the (possibly chunked) session cookie from any object with cookies.getAll().
  return getToken({ req: req as never, secret: sessionSecret(), secureCookie: secureCookies });
}
