"""Pre-serialised JSON bodies with strong ETags, for documents read far more than they
change (discovery, JWKS): the body is built once per realm object (a reload makes new
ones), and a matching `If-None-Match` gets 304. Framework-free: the core answers with an
`Answer`, the web layer sends it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from engine.exchange import Answer


@dataclass(frozen=True)
class CachedBody:
    body: bytes
    etag: str
    # (max_age, with body) -> the response headers, built once per body (not a global
    # cache: bodies come and go with realms and key rotations)
    _header_sets: dict[tuple[int, bool], CIMultiDictProxy[str]] = field(
        default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, document: Any) -> CachedBody:
        body = json.dumps(document, separators=(",", ":")).encode()
        return cls(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')

    def answer(self, if_none_match: str | None, max_age: int) -> Answer:
        """The document, or 304 Not Modified (RFC 9110 §13.1.2) when the caller's
        `If-None-Match` is its ETag."""
        if if_none_match == self.etag:
            return Answer(304, None, self._headers(max_age, False))
        return Answer(200, self.body, self._headers(max_age, True))

    def _headers(self, max_age: int, with_body: bool) -> CIMultiDictProxy[str]:
        found = self._header_sets.get((max_age, with_body))
        if found is None:
            headers = CIMultiDict({"ETag": self.etag, "Cache-Control": f"public, max-age={max_age}"})
            if with_body:
                headers["Content-Type"] = "application/json"
            found = self._header_sets[(max_age, with_body)] = CIMultiDictProxy(headers)
        return found
