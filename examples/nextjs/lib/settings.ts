// Everything the example reads from the environment, with the defaults of a developer
// machine (Tessera's `examples` realm on http://localhost:4000, this app on :3000).
const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

function env(name: string, fallback: string): string {
  const value = process.env[name];
  return value === undefined || value === "" ? fallback : value;
}

export const issuer = env("ISSUER", "http://localhost:4000/realms/examples");
export const clientId = env("CLIENT_ID", "nextjs");
export const appUrl = env("NEXTAUTH_URL", `http://localhost:${env("PORT", "3000")}`);
// NextAuth builds its callback URL (the redirect URI registered at Tessera) from NEXTAUTH_URL.
process.env.NEXTAUTH_URL = appUrl;
// Refresh the access token on the server when it has less than this many seconds left.
export const refreshMargin = Number(env("REFRESH_MARGIN", "60"));
// Fetch the realm's JWKS again when the copy is this old (Tessera's verifier_cache_ttl).
export const jwksMaxAge = Number(env("JWKS_MAX_AGE", "900"));
// The videos API (examples/resource-server-python or -node) the page calls on the server.
export const apiUrl = env("API_URL", "http://localhost:8082");
export const scope = "openid profile email offline_access videos.read";

const onLoopback = LOOPBACK_HOSTS.has(new URL(appUrl).hostname);

// Demo defaults, the same rule as Tessera's `${VAR:-change-me-...}` secrets: accepted
// only while the application runs on a loopback address.
function secret(name: string, demoDefault: string): string {
  const value = process.env[name];
  if (value) return value;
  if (onLoopback) return demoDefault;
  throw new Error(`${name} must be set when NEXTAUTH_URL (${appUrl}) is not a loopback address`);
}

export const clientSecret = () =>
  secret("NEXTJS_CLIENT_SECRET", "change-me-nextjs-secret-0123456789abcdef");
export const sessionSecret = () =>
  secret("NEXTAUTH_SECRET", "change-me-nextauth-session-secret-0123456789");

// NextAuth names its cookies after the scheme of NEXTAUTH_URL.
export const secureCookies = appUrl.startsWith("https://");
export const sessionCookieName = secureCookies
  ? "__Secure-next-auth.session-token"
  : "next-auth.session-token";
