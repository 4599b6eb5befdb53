"""examples/webhook (issue 21 §6): the sender's short-lived token has `aud` = the receiver;
the receiver verifies it against the JWKS and accepts only its listed senders."""

from __future__ import annotations

import sys

import httpx

from tests.examples.conftest import EXAMPLES, ExamplesIdp


def test_a_signed_webhook_is_accepted_and_forgeries_are_not(examples_idp: ExamplesIdp, start_example):
    port = examples_idp.port(8085)
    receiver = start_example("receiver", [sys.executable, str(EXAMPLES / "webhook" / "receiver.py")], port=port,
                             env={"ISSUER": examples_idp.issuer, "PORT": str(port)})
    url = f"http://127.0.0.1:{port}/webhooks/billing"
    sender = start_example("sender", [sys.executable, str(EXAMPLES / "webhook" / "sender.py"),
                                      '{"type": "invoice.paid", "invoice": "inv_42"}'],
                           env={"ISSUER": examples_idp.issuer, "RECEIVER_URL": url})
    assert sender.wait() == 0, sender.output() + receiver.output()
    events = httpx.get(f"http://127.0.0.1:{port}/events").json()
    assert events == [{"from": "billing", "event": {"type": "invoice.paid", "invoice": "inv_42"}}]

    def post(token: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(url, json={"type": "invoice.paid", "invoice": "forged"}, headers=headers)

    assert post(None).status_code == 401
    # RFC 7519 §4.1.3: a token for another audience (the videos API) is refused...
    assert post(examples_idp.client_token("reports")).status_code == 401
    # ...and so is one of another realm.
    other = examples_idp.client_token("reports", issuer=examples_idp.other_issuer,
                                      secret="change-me-other-reports-secret-0123456789")
    assert post(other).status_code == 401
    assert len(httpx.get(f"http://127.0.0.1:{port}/events").json()) == 1
