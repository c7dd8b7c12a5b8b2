"""The card management routes: the whole lifecycle over HTTP, scopes, idempotency, and hostile
input answered with problem+json (never a 500, never a PIN)."""

from __future__ import annotations

import itertools
import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cardkit import FAST_KDF, assert_hidden, fast_chips, register  # noqa: F401
from mynumber.api.app import create_app
from mynumber.api.auth import TokenStore
from mynumber.jlis.ocsp import OcspStatus
from mynumber.platform import Platform

pytestmark = pytest.mark.usefixtures("fast_chips")
API = "/api/jlis/cards"
AUTH_PIN, SIG_PIN = "2719", "K7QX9M"
_keys = itertools.count()


class Desk:
    """A client with a counter token, a loss-line token and a token without card scopes."""

    def __init__(self, p: Platform) -> None:
        tokens = TokenStore(p.settings.data_dir / "tokens.json")
        self.counter = tokens.create("counter-01", ["card:counter"])
        self.line = tokens.create("24h-line", ["card:suspend"])
        self.other = tokens.create("agency", ["jlis:query"])
        self.client = TestClient(create_app(p, sync_interval=None), raise_server_exceptions=False)

    def post(
        self, path: str, body: Any = None, *, token: str | None = None, key: str | None = None
    ) -> Any:
        headers = {
            "Authorization": f"Bearer {token or self.counter}",
            "Idempotency-Key": key or f"k{next(_keys)}",
            "Accept-Language": "en",
        }
        return self.client.post(API + path, json=body or {}, headers=headers)

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(
            API + path, params=params, headers={"Authorization": f"Bearer {self.counter}"}
        )


@pytest.fixture
def desk(platform: Platform) -> Desk:
    platform.cards.kdf = FAST_KDF
    return Desk(platform)


def problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    assert body["messages"]["ja"] and body["messages"]["en"]
    return body


def handed_over(desk: Desk, rc: str) -> dict[str, Any]:
    r = desk.post("", {"resident_code": rc, "channel": "paper"})
    assert r.status_code == 201, r.text
    card_id = r.json()["card_id"]
    assert desk.post(f"/{card_id}/production").status_code == 200
    r = desk.post(
        f"/{card_id}/handover",
        {"identity_documents": ["passport"], "auth_pin": AUTH_PIN, "signature_pin": SIG_PIN},
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_lifecycle_over_http(platform: Platform, desk: Desk) -> None:
    rc = register(platform)
    card = handed_over(desk, rc)
    assert card["state"] == "active" and card["face"]["name"] == "髙橋 一郎"
    assert_hidden(str(card), AUTH_PIN, SIG_PIN)
    card_id = card["card_id"]
    # Only the loss line suspends.
    problem(desk.post(f"/{card_id}/suspension"), 403, "auth.scope")
    r = desk.post(f"/{card_id}/suspension", token=desk.line)
    assert r.status_code == 200 and r.json()["state"] == "suspended"
    for c in platform.pki.certificates(rc):
        assert platform.pki.status(c.serial).status is OcspStatus.REVOKED
    r = desk.post(f"/{card_id}/lift", {"identity_documents": ["driving_licence"]})
    assert r.status_code == 200 and r.json()["state"] == "active"
    r = desk.post(f"/{card_id}/reissue", {"reason": "loss", "identity_documents": ["passport"]})
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["fee_yen"] == 1000 and new["replaces"] == card_id and new["state"] == "applied"
    assert desk.get(f"/{card_id}").json()["state"] == "reissued"
    events = desk.get(f"/{card_id}/events").json()
    assert [e["kind"] for e in events] == [
        "apply",
        "produce",
        "hand_over",
        "suspend",
        "lift",
        "reissue",
    ]
    assert [c["card_id"] for c in desk.get("", resident_code=rc).json()] == [
        card_id,
        new["card_id"],
    ]
    assert [c["card_id"] for c in desk.get("", state="applied").json()] == [new["card_id"]]
    r = desk.post(f"/{new['card_id']}/cancellation", {"reason": "withdrawn"})
    assert r.json()["state"] == "cancelled"


def test_return_renewal_face_and_pin_routes(platform: Platform, desk: Desk) -> None:
    card = handed_over(desk, register(platform))
    card_id = card["card_id"]
    problem(desk.post(f"/{card_id}/renewal", {}), 409, "card_life.renewal_too_early")
    problem(
        desk.post(f"/{card_id}/face-update", {"identity_documents": ["passport"]}),
        409,
        "card_life.face_current",
    )
    r = desk.post(
        f"/{card_id}/pin-unlock",
        {"kind": "authentication", "new_pin": "5830", "identity_documents": ["passport"]},
    )
    assert r.status_code == 200 and "5830" not in r.text
    body = problem(
        desk.post(
            f"/{card_id}/pin-unlock",
            {"kind": "signature", "new_pin": "ABC123", "identity_documents": ["passport"]},
        ),
        422,
        "card.pin_guessable",
    )
    assert "ABC123" not in str(body)
    r = desk.post(f"/{card_id}/return", {"reason": "emigration"})
    assert r.status_code == 200 and r.json()["state"] == "returned"
    problem(
        desk.post(f"/{card_id}/return", {"reason": "emigration"}), 409, "card_life.not_returnable"
    )


def test_idempotent_replay(platform: Platform, desk: Desk) -> None:
    rc = register(platform)
    first = desk.post("", {"resident_code": rc, "channel": "paper"}, key="apply-1")
    again = desk.post("", {"resident_code": rc, "channel": "paper"}, key="apply-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    problem(desk.post("", {"resident_code": rc, "channel": "counter"}, key="apply-1"), 409,
            "idempotency.key_reused")  # fmt: skip
    r = desk.client.post(
        API,
        json={"resident_code": rc, "channel": "paper"},
        headers={"Authorization": f"Bearer {desk.counter}"},
    )
    problem(r, 400, "idempotency.key_required")


def test_pins_never_echoed_or_logged(
    platform: Platform, desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rc = register(platform)
    card_id = desk.post("", {"resident_code": rc, "channel": "paper"}).json()["card_id"]
    desk.post(f"/{card_id}/production")
    secret_sig = "QZ7XW4KR9T"
    for auth, sig in [("1234", secret_sig), ("98765", secret_sig), ("4827", "lower-case-pin")]:
        r = desk.post(
            f"/{card_id}/handover",
            {"identity_documents": ["passport"], "auth_pin": auth, "signature_pin": sig},
        )
        assert r.status_code == 422, r.text
        assert auth not in r.text and sig not in r.text
    r = desk.post(
        f"/{card_id}/handover",
        {"identity_documents": ["passport"], "auth_pin": "4827", "signature_pin": "X" * 40},
    )
    body = problem(r, 422, "request.invalid")
    assert "X" * 17 not in r.text and body["field"] == "signature_pin"
    r = desk.post(
        f"/{card_id}/handover",
        {"identity_documents": ["passport"], "auth_pin": "4827", "signature_pin": secret_sig},
    )
    assert r.status_code == 200 and secret_sig not in r.text
    assert secret_sig not in caplog.text and "4827" not in caplog.text


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("post", "", {"resident_code": "12345678903", "channel": "paper"}, 404,
         "card_life.resident_unknown"),
        ("post", "", {"resident_code": "1234", "channel": "paper"}, 422, "resident-code.length"),
        ("post", "", {"resident_code": "x", "channel": "fax"}, 422, "request.invalid"),
        ("post", "", {"resident_code": "x", "channel": "paper", "pin": "1"}, 422,
         "request.invalid"),
        ("post", "", [], 422, "request.invalid"),
        ("post", "", {"resident_code": "\x00", "channel": "paper"}, 422, "request.invalid"),
        ("post", "/NOSUCHCARD/production", {}, 404, "card_life.not_found"),
        ("post", "/" + "A" * 40 + "/production", {}, 422, "request.invalid"),
        ("post", "/0123456789ABCDEF/handover",
         {"identity_documents": ["passport"], "auth_pin": 1234, "signature_pin": []}, 422,
         "request.invalid"),
        ("post", "/0123456789ABCDEF/handover",
         {"identity_documents": ["x"] * 9, "auth_pin": "1", "signature_pin": "2"}, 422,
         "request.invalid"),
        ("post", "/0123456789ABCDEF/lift", {"identity_documents": ["library_card"]}, 422,
         "card_life.identity_document_unknown"),
        ("post", "/0123456789ABCDEF/lift", {"identity_documents": ["pension_book"]}, 422,
         "card_life.identity_documents"),
        ("post", "/0123456789ABCDEF/lift", {"identity_documents": ["passport"]}, 404,
         "card_life.not_found"),
        ("post", "/0123456789ABCDEF/reissue", {"reason": "boredom", "identity_documents": []},
         422, "request.invalid"),
        ("post", "/0123456789ABCDEF/pin-unlock",
         {"kind": "both", "new_pin": "5830", "identity_documents": ["passport"]}, 422,
         "request.invalid"),
        ("get", "/0123456789ABCDEF", None, 404, "card_life.not_found"),
        ("get", "?state=lost", None, 422, "request.invalid"),
        ("get", "?limit=0", None, 422, "request.invalid"),
        ("get", "?resident_code=123", None, 422, "resident-code.length"),
    ],
)  # fmt: skip
def test_hostile_input(
    desk: Desk, method: str, path: str, body: Any, status: int, code: str
) -> None:
    if method == "post":
        r = desk.post(path, body)
    else:
        r = desk.client.get(API + path, headers={"Authorization": f"Bearer {desk.counter}"})
    problem(r, status, code)


def test_scopes(platform: Platform, desk: Desk) -> None:
    rc = register(platform)
    problem(desk.post("", {"resident_code": rc, "channel": "paper"}, token=desk.other), 403,
            "auth.scope")  # fmt: skip
    problem(desk.post("", {"resident_code": rc, "channel": "paper"}, token=desk.line), 403,
            "auth.scope")  # fmt: skip
    r = desk.client.get(API)
    problem(r, 401, "auth.token")
    assert desk.get("").json() == []
