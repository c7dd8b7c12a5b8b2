"""Register events revoke certificates by themselves: J-LIS's identity mirror sees the change and
revokes in the same transaction (a move, a new name or sex → the signature certificate; death or a
move abroad → both), so OCSP answers "revoked" as soon as the register's request has returned."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from hypothesis import given
from hypothesis import strategies as st

import cardkit
from cardkit import fast_chips  # noqa: F401  (a fixture)
from conftest import MUNI
from mynumber.clock import FixedClock
from mynumber.jlis.ca import RevocationEvent
from mynumber.jlis.ocsp import OcspStatus
from mynumber.jlis.pki import revocations_for
from mynumber.municipality.domain import EventKind
from mynumber.platform import Platform
from test_pki_service import ITEMS, ask_ocsp, client_and_token, register

M = f"/api/municipality/municipalities/{MUNI}"

BASE: dict[str, Any] = {
    "family_name": "髙橋",
    "given_name": "一郎",
    "address": "東京都新宿区西新宿二丁目8番1号",
    "sex": 1,
    "status": "active",
}


def issue(p: Platform, rc: str, clock: FixedClock) -> tuple[x509.Certificate, x509.Certificate]:
    birth = dt.date(1985, 6, 15)
    today = clock.today()
    sig_key = ec.generate_private_key(ec.SECP256R1())
    auth_key = ec.generate_private_key(ec.SECP256R1())
    sig = p.pki.issue("signature", rc, sig_key.public_key(), ITEMS, birth, today)
    auth = p.pki.issue("authentication", rc, auth_key.public_key(), None, birth, today)
    return sig, auth


def statuses(p: Platform, *certs: x509.Certificate) -> list[str]:
    out = []
    for cert in certs:
        s = p.pki.status(cert.serial_number)
        if s.status is OcspStatus.GOOD:
            out.append("good")
        else:
            assert s.reason is not None
            out.append(s.reason.value)
    return out


# -- the rule --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "abroad", "expected"),
    [
        ({}, False, []),
        ({"address": "東京都新宿区大久保一丁目1番1号"}, False, [RevocationEvent.ADDRESS_CHANGE]),
        ({"family_name": "佐藤"}, False, [RevocationEvent.NAME_CHANGE]),
        ({"given_name": "次郎"}, False, [RevocationEvent.NAME_CHANGE]),
        ({"sex": 2}, False, [RevocationEvent.SEX_CHANGE]),
        ({"status": "deceased"}, False, [RevocationEvent.DEATH]),
        ({"status": "moved_out"}, False, [RevocationEvent.ADDRESS_CHANGE]),
        ({"status": "moved_out"}, True, [RevocationEvent.EMIGRATION]),
        (
            {"family_name": "佐藤", "address": "大阪府大阪市北区梅田一丁目1番1号"},
            False,
            [RevocationEvent.NAME_CHANGE, RevocationEvent.ADDRESS_CHANGE],
        ),
    ],
)
def test_what_each_change_revokes(
    change: dict[str, Any], abroad: bool, expected: list[RevocationEvent]
) -> None:
    assert revocations_for(BASE, {**BASE, **change}, abroad=abroad) == expected


@given(
    name=st.booleans(),
    address=st.booleans(),
    sex=st.booleans(),
    status=st.sampled_from(["active", "moved_out", "deceased"]),
    abroad=st.booleans(),
)
def test_any_change_of_a_basic_item_revokes_the_signature_certificate(
    name: bool, address: bool, sex: bool, status: str, abroad: bool
) -> None:
    after = dict(BASE, status=status)
    if name:
        after["family_name"] = "佐藤"
    if address:
        after["address"] = "北海道札幌市中央区北一条西二丁目1番地"
    if sex:
        after["sex"] = 2
    events = revocations_for(BASE, after, abroad=abroad)
    changed = name or address or sex or status != "active"
    # Something that changes a basic item (or ends the residence) always revokes something,
    # and every event named revokes the signature certificate; nothing changed, nothing revoked.
    assert bool(events) == changed
    both = {RevocationEvent.DEATH, RevocationEvent.EMIGRATION}
    assert (status == "deceased" or (status == "moved_out" and abroad)) == bool(both & set(events))


# -- through the register --------------------------------------------------------------------


def test_a_move_within_the_municipality_revokes_the_signature_certificate(
    platform: Platform, clock: FixedClock
) -> None:
    rc = register(platform)
    sig, auth = issue(platform, rc, clock)
    platform.municipality.record(
        MUNI, EventKind.MOVE_WITHIN, {"address": "東京都新宿区大久保一丁目1番1号"}, resident_code=rc
    )
    assert statuses(platform, sig, auth) == ["affiliationChanged", "good"]


def test_a_name_change_revokes_the_signature_certificate_a_kana_fix_does_not(
    platform: Platform, clock: FixedClock
) -> None:
    rc = register(platform)
    sig, auth = issue(platform, rc, clock)
    # Only the kana changes: the certificate does not carry it, so nothing is revoked.
    platform.municipality.record(
        MUNI,
        EventKind.NAME_CHANGE,
        {"family_name": "髙橋", "family_name_kana": "タカバシ"},
        resident_code=rc,
    )
    assert statuses(platform, sig, auth) == ["good", "good"]
    platform.municipality.record(
        MUNI,
        EventKind.NAME_CHANGE,
        {"family_name": "佐藤", "family_name_kana": "サトウ"},
        resident_code=rc,
    )
    assert statuses(platform, sig, auth) == ["affiliationChanged", "good"]


def test_death_revokes_both(platform: Platform, clock: FixedClock) -> None:
    rc = register(platform)
    sig, auth = issue(platform, rc, clock)
    platform.municipality.record(MUNI, EventKind.DEATH, {}, resident_code=rc)
    assert statuses(platform, sig, auth) == ["cessationOfOperation"] * 2


@pytest.mark.parametrize(("abroad", "expected"), [(False, "good"), (True, "cessationOfOperation")])
def test_a_move_out_revokes_the_signature_certificate_and_abroad_both(
    platform: Platform, clock: FixedClock, abroad: bool, expected: str
) -> None:
    rc = register(platform)
    sig, auth = issue(platform, rc, clock)
    platform.municipality.record(
        MUNI,
        EventKind.MOVE_OUT,
        {
            "resident_code": rc,
            "destination": "アメリカ合衆国" if abroad else "大阪府",
            "abroad": abroad,
        },
        resident_code=rc,
    )
    sig_reason = "cessationOfOperation" if abroad else "affiliationChanged"
    assert statuses(platform, sig, auth) == [sig_reason, expected]


def test_a_household_change_revokes_nothing(platform: Platform, clock: FixedClock) -> None:
    rc = register(platform)
    sig, auth = issue(platform, rc, clock)
    platform.municipality.record(
        MUNI,
        EventKind.HOUSEHOLD_CHANGE,
        {"household_id": "H-NEW", "relationship": "世帯主"},
        resident_code=rc,
    )
    assert statuses(platform, sig, auth) == ["good", "good"]


def test_a_deferred_sync_revokes_on_the_next_one(platform: Platform, clock: FixedClock) -> None:
    """Revocation rides on the mirror sync: if it was deferred, the next sync revokes, exactly
    once (the events are applied once)."""
    rc = register(platform)
    sig, auth = issue(platform, rc, clock)
    platform.auto_sync = False
    platform.municipality.record(MUNI, EventKind.DEATH, {}, resident_code=rc)
    assert statuses(platform, sig, auth) == ["good", "good"]
    assert platform.sync() == 1
    assert statuses(platform, sig, auth) == ["cessationOfOperation"] * 2
    assert platform.sync() == 0


def test_ocsp_says_revoked_as_soon_as_the_move_request_returns(
    platform: Platform, clock: FixedClock
) -> None:
    """Over the HTTP API: the OCSP request right after the move's response already sees it."""
    rc = register(platform)
    sig, auth = issue(platform, rc, clock)
    client, verifier = client_and_token(platform)
    from mynumber.api.auth import TokenStore

    clerk = TokenStore(platform.settings.data_dir / "tokens.json").create(
        "clerk", ["municipality:write"]
    )
    assert ask_ocsp(client, verifier, platform, sig).certificate_status is ocsp.OCSPCertStatus.GOOD
    r = client.post(
        f"{M}/residents/{rc}/moves",
        json={"address": "東京都新宿区大久保一丁目1番1号"},
        headers={"Authorization": f"Bearer {clerk}", "Idempotency-Key": "move-1"},
    )
    assert r.status_code == 200, r.text
    resp = ask_ocsp(client, verifier, platform, sig)
    assert resp.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert resp.revocation_reason is x509.ReasonFlags.affiliation_changed
    assert ask_ocsp(client, verifier, platform, auth).certificate_status is ocsp.OCSPCertStatus.GOOD


def test_the_server_catches_up_a_deferred_sync_within_a_second(
    platform: Platform, clock: FixedClock
) -> None:
    """A change whose own sync was deferred (here: switched off while it is recorded) is brought
    into the mirror — and its certificates revoked — by the server's background loop."""
    import time

    from fastapi.testclient import TestClient

    from mynumber.api.app import create_app

    rc = register(platform)
    sig, auth = issue(platform, rc, clock)
    with TestClient(create_app(platform, sync_interval=0.2)):
        platform.auto_sync = False
        platform.municipality.record(MUNI, EventKind.DEATH, {}, resident_code=rc)
        platform.auto_sync = True
        deadline = time.monotonic() + 10  # a bound, not the claim: the loop runs every 0.2 s
        while statuses(platform, sig) == ["good"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert statuses(platform, sig, auth) == ["cessationOfOperation"] * 2


def test_ocsp_over_get_answers_like_post(platform: Platform, clock: FixedClock) -> None:
    """RFC 6960 A.1: the request base64- and URL-encoded in the path; garbage is malformed."""
    import base64
    from urllib.parse import quote

    from test_pki_service import ocsp_request

    rc = register(platform)
    sig, _ = issue(platform, rc, clock)
    platform.pki.revoke_for_event(rc, RevocationEvent.NAME_CHANGE)
    client, token = client_and_token(platform)
    auth = {"Authorization": f"Bearer {token}"}
    encoded = quote(base64.b64encode(ocsp_request(platform, sig)).decode(), safe="")
    r = client.get(f"/api/jlis/ocsp/{encoded}", headers=auth)
    assert r.status_code == 200
    resp = ocsp.load_der_ocsp_response(r.content)
    assert resp.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert resp.serial_number == sig.serial_number
    for garbage in ("not-base64!", "AAAA", quote("%%%"), "A" * 40_000):
        r = client.get(f"/api/jlis/ocsp/{garbage}", headers=auth)
        assert r.status_code == 200
        bad = ocsp.load_der_ocsp_response(r.content)
        assert bad.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert client.get(f"/api/jlis/ocsp/{encoded}").status_code == 401


@pytest.mark.usefixtures("fast_chips")
def test_a_death_closes_the_cards_too(platform: Platform) -> None:
    """The death recorded by the municipality revokes both certificates, returns the card in
    use — without anyone at a counter — and leaves everyone else's alone."""
    rc = cardkit.register(platform)
    card = cardkit.active_card(platform, rc)
    other = cardkit.register(platform, family="佐藤", given="花子")
    bystander = cardkit.active_card(platform, other)
    platform.municipality.record(MUNI, EventKind.DEATH, {}, resident_code=rc)
    closed = platform.cards.get(card.card_id)
    assert (closed.state, closed.reason) == ("returned", "death")
    assert {c.status for c in platform.pki.certificates(rc)} == {"revoked"}
    assert platform.cards.get(bystander.card_id).state == "active"
    assert {c.status for c in platform.pki.certificates(other)} == {"valid"}
