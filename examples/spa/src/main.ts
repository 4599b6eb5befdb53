// A single-page app signing in with Tessera through oidc-client-ts:
// - authorization code + PKCE (S256) as the public client `spa` (oidc-client-ts makes the
//   verifier, the state and the nonce and checks them on return);
// - the access token goes to the videos API (examples/resource-server-node) as a bearer;
// - silent renew with the refresh token (offline_access): Tessera rotates it on every use,
//   and oidc-client-ts renews automatically shortly before the access token expires;
// - logout: the tokens are revoked (/revoke), then RP-initiated logout (end_session_endpoint
//   with id_token_hint) ends the Tessera session and comes back here.
// /token, /revoke and /userinfo answer this page because its origin is the client's
// (redirect URI / web_origins): Tessera's CORS.
import { UserManager, WebStorageStateStore, type User } from "oidc-client-ts";

interface AppConfig {
  issuer: string;
  clientId: string;
  apiUrl: string;
}

const $ = (id: string) => document.getElementById(id) as HTMLElement;

function show(ids: string[]) {
  for (const id of ["sign-in", "call-api", "renew", "sign-out"]) $(id).hidden = !ids.includes(id);
}

function render(user: User | null, message?: string) {
  if (user && !user.expired) {
    const who = user.profile.email ?? user.profile.sub;
    $("status").textContent = message ?? `Signed in as ${who}`;
    $("expiry").textContent = `Access token valid until ${new Date((user.expires_at ?? 0) * 1000).toISOString()}`;
    show(["call-api", "renew", "sign-out"]);
  } else {
    $("status").textContent = message ?? "Signed out";
    $("expiry").textContent = "";
    show(["sign-in"]);
  }
}

async function main() {
  const config: AppConfig = await (await fetch("/config.json")).json();
  const userManager = new UserManager({
    authority: config.issuer,
    client_id: config.clientId,
    redirect_uri: `${location.origin}/callback`,
    post_logout_redirect_uri: `${location.origin}/`,
    response_type: "code",
    scope: "openid profile email offline_access videos.read",
    automaticSilentRenew: true, // with a refresh token: a refresh_token grant, no iframe
    revokeTokensOnSignout: true,
    revokeTokenTypes: ["refresh_token", "access_token"],
    userStore: new WebStorageStateStore({ store: window.sessionStorage }),
  });
  userManager.events.addUserLoaded((user) => render(user, `Signed in as ${user.profile.email ?? user.profile.sub} (renewed)`));
  userManager.events.addSilentRenewError((err) => render(null, `Renewal failed: ${err.message}`));

  if (location.pathname === "/callback") {
    try {
      await userManager.signinRedirectCallback();
    } catch (err) {
      render(null, `Sign-in failed: ${(err as Error).message}`);
    }
    history.replaceState(null, "", "/");
  }
  render(await userManager.getUser());

  $("sign-in").onclick = () => userManager.signinRedirect();
  $("sign-out").onclick = () => userManager.signoutRedirect();
  $("renew").onclick = async () => {
    try {
      await userManager.signinSilent();
    } catch (err) {
      render(null, `Renewal failed: ${(err as Error).message}`);
    }
  };
  $("call-api").onclick = async () => {
    const user = await userManager.getUser();
    if (!user) return render(null);
    const response = await fetch(`${config.apiUrl}/videos`, {
      headers: { Authorization: `Bearer ${user.access_token}` },
    });
    const body = await response.json();
    $("result").textContent = response.ok
      ? body.videos.map((v: { title: string }) => `• ${v.title}`).join("\n")
      : `The API refused: ${response.status} ${body.error ?? ""}`;
    $("result").dataset.status = String(response.status);
  };
}

main().catch((err) => {
  $("status").textContent = `Cannot start: ${(err as Error).message}`;
});
