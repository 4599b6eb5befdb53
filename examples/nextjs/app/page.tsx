// A server component: the session, Tessera's userinfo and the videos API, both called on the
// server with the access token (which, like the refresh token, never reaches the browser).
import { getServerSession } from "next-auth";
import { authOptions } from "@/lib/auth";
import { serverToken } from "@/lib/server-token";
import { apiUrl } from "@/lib/settings";
import { tesseraClient } from "@/lib/tessera";
import { SignInButton } from "./sign-in-button";

export const dynamic = "force-dynamic";

async function userinfo(accessToken: string): Promise<string> {
  try {
    const claims = await (await tesseraClient()).userinfo(accessToken);
    return JSON.stringify(claims, null, 2);
  } catch (error) {
    return `userinfo failed: ${(error as Error).message}`;
  }
}

async function videos(accessToken: string): Promise<string> {
  try {
    const response = await fetch(`${apiUrl}/videos`, {
      headers: { Authorization: `Bearer ${accessToken}` },
      cache: "no-store",
    });
    const body = await response.text();
    if (!response.ok) return `${response.status}: ${response.headers.get("www-authenticate") ?? body}`;
    return JSON.stringify(JSON.parse(body), null, 2);
  } catch (error) {
    return `the videos API at ${apiUrl} did not answer (${(error as Error).message})`;
  }
}

export default async function Home() {
  const session = await getServerSession(authOptions);
  const token = session ? await serverToken() : null;
  if (!session || !token) {
    return (
      <main>
        <h1>Tessera + Next.js</h1>
        <p data-testid="signed-out">You are not signed in.</p>
        <SignInButton />
      </main>
    );
  }
  const signOut = (
    <form method="post" action="/api/logout">
      <button type="submit">Sign out</button>
    </form>
  );
  if (token.error || !token.accessToken) {
    return (
      <main>
        <h1>Tessera + Next.js</h1>
        <p data-testid="session-error">
          Your session with Tessera has ended ({String(token.error ?? "no access token")}). Sign in again.
        </p>
        <SignInButton />
        {signOut}
      </main>
    );
  }
  const expiresAt = new Date(Number(token.expiresAt) * 1000).toISOString();
  return (
    <main>
      <h1>Tessera + Next.js</h1>
      <p>
        Signed in as <strong data-testid="name">{session.user?.name}</strong> (
        <span data-testid="email">{session.user?.email}</span>), subject{" "}
        <code data-testid="sub">{token.sub}</code>.
      </p>
      <p>
        Access token valid until <time data-testid="expires-at">{expiresAt}</time>; refreshed on the
        server <span data-testid="refreshes">{Number(token.refreshes ?? 0)}</span> time(s).
      </p>
      <h2>Userinfo, fetched on the server</h2>
      <pre data-testid="userinfo">{await userinfo(token.accessToken as string)}</pre>
      <h2>
        <code>GET {apiUrl}/videos</code>, called on the server
      </h2>
      <pre data-testid="videos">{await videos(token.accessToken as string)}</pre>
      {signOut}
    </main>
  );
}
