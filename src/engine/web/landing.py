"""Pages a browser can reach outside any realm's pages (issue 18 item 8): `/`, the error
page of an unknown path or realm, and `/favicon.ico`. Browsers (a request that accepts
`text/html`) get styled HTML with the realm pages' stylesheet; API clients keep JSON.
"""

from __future__ import annotations

import html
from importlib.resources import files

from aiohttp import web

from engine.web.appkeys import SERVICES

STYLE = files("engine.web").joinpath("templates/style.css").read_text()
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}
# A tile in the realm pages' blue: an icon without a file to ship or a 404 in every log.
FAVICON = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
           b'<rect width="16" height="16" rx="3" fill="#1a56db"/><rect x="4" y="4" width="8" height="8" fill="#fff"/>'
           b"</svg>")


def accepts_html(request: web.Request) -> bool:
    """A browser navigating here (it asks for `text/html`), not an API client."""
    return "text/html" in request.headers.get("Accept", "")


def page(title: str, body_html: str, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A styled page; `body_html` is already escaped."""
    text = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main><h1>{html.escape(title)}</h1>{body_html}</main></body></html>"
    )
    return web.Response(text=text, status=status, content_type="text/html", headers={**PAGE_HEADERS, **(headers or {})})


async def landing(request: web.Request) -> web.Response:
    """`GET /`: what this server is, and where a client finds its configuration."""
    runtime = request.app[SERVICES].runtime
    root = runtime.root_realm
    issuer = runtime.config.issuer(root) if root else None
    discovery = f"{issuer}/.well-known/openid-configuration" if issuer else None
    if not accepts_html(request):
        return web.json_response({"issuer": issuer, "openid_configuration": discovery},
                                 headers={"Cache-Control": "no-store"})
    if issuer is None:
        body = ("<p>This is an OpenID Connect identity provider."
                " Each realm is served at <code>/realms/&lt;name&gt;</code>.</p>")
    else:
        name = html.escape(runtime.realms[root].display_name)
        body = (f"<p>This is the sign-in service of {name}. Applications send you here to sign in;"
                " there is nothing to do on this page.</p>"
                f"<p class=help>Issuer: <code>{html.escape(issuer)}</code><br>"
                f"Configuration: <a href='{html.escape(discovery or '')}'>{html.escape(discovery or '')}</a></p>")
    return page("Sign-in service", body)


async def favicon(request: web.Request) -> web.Response:
    return web.Response(body=FAVICON, content_type="image/svg+xml",
                        headers={"Cache-Control": "public, max-age=86400"})
