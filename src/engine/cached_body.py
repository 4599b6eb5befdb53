"""Pre-serialised JSON bodies with strong ETags, for documents read far more than they
change (discovery, JWKS): the body is built once per realm object (a reload makes new
ones), and a matching `If-None-Match` gets 304."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy


@dataclass(frozen=True)
class CachedBody:
    body: bytes
    etag: str

    @classmethod
    def of(cls, document: Any) -> CachedBody:
        body = json.dumps(document, separators=(",", ":")).encode()
        return cls(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')

    def response(self, request: web.Request, max_age: int) -> web.Response:
        if request.headers.get("If-None-Match") == self.etag:
            return web.Response(status=304, headers=self._headers(max_age, False))
        return web.Response(body=self.body, headers=self._headers(max_age, True))

    @cache  # noqa: B019 (a few max-ages per body; the body lives as long as its realm)
    def _headers(self, max_age: int, with_body: bool) -> CIMultiDictProxy[str]:
        headers = CIMultiDict({"ETag": self.etag, "Cache-Control": f"public, max-age={max_age}"})
        if with_body:
            headers["Content-Type"] = "application/json"
        return CIMultiDictProxy(headers)
