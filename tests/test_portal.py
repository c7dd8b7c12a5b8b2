"""Public-funds accounts in the portal (公金受取口座): each registration authorised by the person's
card in that transaction (DESIGN I4), the holder's kana checked against the register, accounts
shared between people flagged with the family relationship — on SQLite and PostgreSQL, with real
chips, real certificates and real signatures."""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

import mynumber.card.chip as chip_module
from conftest import MUNI
from mynumber.api.app import create_app
from mynumber.api.auth import TokenStore
from mynumber.card import CardFace, Chip, KeyKind, PinKdf
from mynumber.clock import FixedClock
from mynumber.errors import MynumberError
from mynumber.jlis.ca import RevocationEvent
from mynumber.municipality.domain import EventKind
from mynumber.platform import Platform
from mynumber.portal import models as pm
from mynumber.portal.accounts import Account
from mynumber.portal.authorisation import AccountStatement
from mynumber.portal.service import PortalService
from relykit import serve

DER = serialization.Encoding.DER
KDF = PinKdf(n=2**4, r=1, p=1)
AUTH_PIN, SIG_PIN = "3917", "K7QX9M"
BIRTH = dt.date(1975, 6, 15)
_POOL: list[rsa.RSAPrivateKey] = []


@pytest.fixture(autouse=True)
def fast_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Twelve RSA keys made once per process, distinct within a test (six chips)."""
    if not _POOL:
        _POOL.extend(
            rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(12)
        )
    keys = iter(_POOL)
    monkeypatch.setattr(chip_module, "_generate_key", lambda: next(keys))
    yield


@dataclass
class Person:
    resident_code: str
    chip: Chip

    @property
    def auth_cert(self) -> x509.Certificate:
        return self.chip.certificate(KeyKind.AUTHENTICATION)

    def authenticate(self, data: bytes) -> bytes:
        return self.chip.authenticate(data, AUTH_PIN)


_chips = itertools.count()


def person(
    p: Platform,
    clock: FixedClock,
    family: str = "山田",
    given_name: str = "太郎",
    family_kana: str = "ヤマダ",
    given_kana: str = "タロウ",
    *,
    household: str | None = None,
    relationship: str | None = None,
    birth: dt.date = BIRTH,
) -> Person:
    """A resident (joining `household` when given) with a card carrying both certificates."""
    address = "東京都新宿区新宿三丁目1番1号"
    payload: dict[str, Any] = {
        "family_name": family,
        "given_name": given_name,
        "family_name_kana": family_kana,
        "given_name_kana": given_kana,
        "birth_date": birth.isoformat(),
        "sex": "1",
        "address": address,
    }
    if household is not None:
        payload |= {"household_id": household, "relationship": relationship}
    rc: str = p.municipality.record(MUNI, EventKind.MOVE_IN, payload)[1]["resident_code"]
    chip_id = f"chip-{next(_chips)}"
    from mynumber.jlis.ca import FourItems

    items = FourItems(f"{family} {given_name}", address, birth, 1)
    face = CardFace(items.name, address, birth, 1, dt.date(2036, 6, 15))
    chip = Chip.create(
        chip_id, auth_pin=AUTH_PIN, signature_pin=SIG_PIN, clock=clock, face=face, kdf=KDF
    )
    for kind, pki_kind, four in (
        (KeyKind.SIGNATURE, "signature", items),
        (KeyKind.AUTHENTICATION, "authentication", None),
    ):
        cert = p.pki.issue(
            pki_kind,
            rc,
            chip.certificate_request(kind),
            four,
            birth,
            clock.today(),
            chip_id=chip_id,
        )
        chip.install_certificate(kind, cert)
    return Person(rc, chip)


def household_of(p: Platform, who: Person) -> str:
    hid: str = p.municipality.get_resident(MUNI, who.resident_code)["household_id"]
    return hid


def log_in(p: Platform, who: Person) -> str:
    """A login session of `who`, made with their card (POST /api/login's service)."""
    challenge = p.login.challenge()
    return p.login.login(challenge.nonce, who.auth_cert, who.authenticate(challenge.nonce)).token


@dataclass
class Signed:
    statement: bytes
    signature: bytes
    certificate: bytes


def sign(
    p: Platform,
    session: str,
    card: Person,
    holder_kana: str,
    account: tuple[str, str, str] = ("0005", "123", "1234567"),
) -> Signed:
    """Ask for the statement under `session` and sign it with `card`."""
    challenge = p.portal.account_challenge(session, *account, holder_kana)
    return Signed(
        challenge.statement,
        card.authenticate(challenge.statement),
        card.auth_cert.public_bytes(DER),
    )


def register(
    p: Platform, session: str, signed: Signed, key: str | None = None
) -> tuple[int, dict[str, Any], bool]:
    return p.portal.register_account(
        session, signed.statement, signed.certificate, signed.signature, idempotency_key=key
    )


def refused(p: Platform, session: str, signed: Signed, key: str | None = None) -> str:
    with pytest.raises(MynumberError) as raised:
        register(p, session, signed, key)
    return raised.value.code


def written(p: Platform) -> dict[str, int]:
    """Rows in every portal table but the challenges."""
    with p.portal.engine.connect() as conn:
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (pm.accounts, pm.account_events, pm.account_reviews, pm.idempotency)
        }


NOTHING = {"accounts": 0, "account_events": 0, "account_reviews": 0, "idempotency_keys": 0}


def portal_tables_text(p: Platform) -> str:
    """Every row of every portal table, as text (to search for what must not be there)."""
    with p.portal.engine.connect() as conn:
        return "\n".join(
            repr(tuple(row)) for t in pm.metadata.sorted_tables for row in conn.execute(select(t))
        )


# -- the statement the card signs -------------------------------------------------------------

KANA = st.text(
    alphabet="ｱｲｳｴｵｶｷｸｹｺﾀﾁﾂﾃﾄﾔﾏﾀﾞﾛ ぁあいうアイウ　ーABC山田",
    min_size=1,
    max_size=60,
).filter(lambda s: s.strip() != "")


@given(
    st.binary(min_size=32, max_size=32),
    st.from_regex(r"[0-9]{4}", fullmatch=True),
    st.from_regex(r"[0-9]{3}", fullmatch=True),
    st.from_regex(r"[0-9]{7}", fullmatch=True),
    KANA,
)
def test_a_statement_reads_back_exactly_and_fits_a_card(
    nonce: bytes, bank: str, branch: str, number: str, kana: str
) -> None:
    stmt = AccountStatement(nonce, Account(bank, branch, number), kana.strip())
    raw = stmt.to_bytes()
    assert 16 <= len(raw) <= 1024 and raw.isascii()
    assert AccountStatement.parse(raw) == stmt
    # any other encoding of the same content is refused: one registration, one statement
    data = json.loads(raw)
    for other in (
        json.dumps(data, ensure_ascii=False).encode(),
        json.dumps(data, sort_keys=True).encode(),
        raw + b" ",
        json.dumps({**data, "extra": "x"}, sort_keys=True, separators=(",", ":")).encode(),
        json.dumps({**data, "purpose": "login"}, sort_keys=True, separators=(",", ":")).encode(),
    ):
        with pytest.raises(ValueError):
            AccountStatement.parse(other)


def test_account_codes_are_ascii_digits() -> None:
    from mynumber.portal.accounts import parse_account

    for bad in (("٠٠٠٥", "123", "1"), ("0005", "１２３", "1"), ("0005", "123", "٤٢")):
        with pytest.raises(ValueError):
            parse_account(*bad)


@given(st.binary(max_size=1100))
def test_anything_else_is_not_a_statement(data: bytes) -> None:
    with pytest.raises(ValueError):
        AccountStatement.parse(data)


@given(
    st.dictionaries(
        st.sampled_from(["bank", "branch", "number", "holder_kana", "nonce", "purpose"]),
        st.text(max_size=50) | st.integers(),
    )
)
def test_a_statement_with_wrong_members_is_refused_with_value_error_only(
    members: dict[str, Any],
) -> None:
    raw = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(ValueError):
        AccountStatement.parse(raw)


# -- registration: the holder's kana ----------------------------------------------------------


def test_an_account_in_the_persons_name_as_banks_write_it_is_registered(
    platform: Platform, clock: FixedClock
) -> None:
    taro = person(platform, clock)
    number = platform.jlis.assign_number(taro.resident_code)
    session = log_in(platform, taro)
    status, body, replayed = register(platform, session, sign(platform, session, taro, "ﾔﾏﾀﾞ ﾀﾛｳ"))
    assert (status, replayed) == (201, False)
    assert body["state"] == "active" and body["notes"] == []
    assert (body["bank"], body["branch"], body["number"]) == ("0005", "123", "1234567")
    assert body["certificate_serial"] == f"{taro.auth_cert.serial_number:X}"
    mine = platform.portal.my_account(session)
    assert mine["holder_kana"] == "ﾔﾏﾀﾞ ﾀﾛｳ" and [h["kind"] for h in mine["history"]] == [
        "registered"
    ]
    # a second account replaces the first, with its own card signature
    again = sign(platform, session, taro, "ﾔﾏﾀﾞ ﾀﾛｳ", ("0009", "001", "7654321"))
    assert register(platform, session, again)[1]["bank"] == "0009"
    history = platform.portal.my_account(session)["history"]
    assert [h["kind"] for h in history] == ["registered", "replaced"]
    assert history[1]["detail"]["previous"]["bank"] == "0005"
    # I5: the portal never stores the individual number (rows are keyed by resident code)
    assert number not in json.dumps(platform.portal.my_account(session), ensure_ascii=False)
    assert number not in portal_tables_text(platform)


def test_another_name_is_refused_and_nothing_is_written(
    platform: Platform, clock: FixedClock
) -> None:
    taro = person(platform, clock)
    session = log_in(platform, taro)
    signed = sign(platform, session, taro, "ﾔﾏﾀﾞ ﾊﾅｺ")
    assert refused(platform, session, signed, "k1") == "portal.holder_mismatch"
    assert written(platform) == NOTHING
    with pytest.raises(MynumberError) as raised:
        platform.portal.my_account(session)
    assert raised.value.code == "portal.no_account"


def test_an_account_in_a_maiden_name_is_accepted_with_a_note(
    platform: Platform, clock: FixedClock
) -> None:
    hanako = person(platform, clock, "佐藤", "花子", "サトウ", "ハナコ")
    platform.municipality.record(
        MUNI,
        EventKind.NAME_CHANGE,
        {"family_name": "山田", "family_name_kana": "ヤマダ"},
        resident_code=hanako.resident_code,
    )
    # the name change revoked the signature certificate; the user-authentication one stays
    session = log_in(platform, hanako)
    _, body, _ = register(platform, session, sign(platform, session, hanako, "ｻﾄｳ ﾊﾅｺ"))
    assert body["state"] == "active" and body["notes"] == ["holder_earlier_name"]
    signed = sign(platform, session, hanako, "ｽｽﾞｷ ﾊﾅｺ", ("0001", "001", "1"))
    assert refused(platform, session, signed) == "portal.holder_mismatch"


# -- accounts shared between people -----------------------------------------------------------


def test_a_shared_account_is_flagged_with_the_family_relationship(
    platform: Platform, clock: FixedClock
) -> None:
    father = person(platform, clock)
    hid = household_of(platform, father)
    # father and son with the same name and reading: the kana check cannot tell them apart
    son = person(platform, clock, birth=dt.date(2000, 1, 2), household=hid, relationship="子")
    stranger = person(platform, clock, birth=dt.date(1990, 3, 3))
    s_father, s_son, s_stranger = (log_in(platform, x) for x in (father, son, stranger))
    assert (
        register(platform, s_father, sign(platform, s_father, father, "ﾔﾏﾀﾞ ﾀﾛｳ"))[1]["state"]
        == "active"
    )

    _, body, _ = register(platform, s_son, sign(platform, s_son, son, "ﾔﾏﾀﾞ ﾀﾛｳ"))
    assert body["state"] == "review" and body["notes"] == ["account_shared_family"]
    assert father.resident_code not in json.dumps(body)  # the citizen is not told who
    _, body, _ = register(platform, s_stranger, sign(platform, s_stranger, stranger, "ﾔﾏﾀﾞﾀﾛｳ"))
    assert body["state"] == "review" and body["notes"] == ["account_shared"]

    queue = platform.portal.reviews()
    assert queue["total"] == 2
    family, other = queue["items"]
    assert family["resident_code"] == son.resident_code
    assert family["reasons"] == ["account_shared_family"]
    assert family["shared_with"] == [
        {
            "resident_code": father.resident_code,
            "relationship": "世帯主",
            "registrant_relationship": "子",
        }
    ]
    assert other["resident_code"] == stranger.resident_code
    assert other["reasons"] == ["account_shared"]
    assert {x["resident_code"] for x in other["shared_with"]} == {
        father.resident_code,
        son.resident_code,
    }
    assert all(x["relationship"] is None for x in other["shared_with"])

    # a clerk decides each once; the account follows the decision
    status, decided, replayed = platform.portal.decide_review(
        family["review_id"],
        "confirm",
        "clerk-1",
        "親が子の手当を受け取る口座",
        idempotency_key="d1",
    )
    assert (status, decided["state"], decided["decided_by"], replayed) == (
        200,
        "confirmed",
        "clerk-1",
        False,
    )
    assert platform.portal.decide_review(
        family["review_id"],
        "confirm",
        "clerk-1",
        "親が子の手当を受け取る口座",
        idempotency_key="d1",
    ) == (200, decided, True)
    with pytest.raises(MynumberError) as raised:
        platform.portal.decide_review(family["review_id"], "reject", "clerk-2", "x")
    assert raised.value.code == "portal.review_decided"
    assert platform.portal.my_account(s_son)["state"] == "active"
    platform.portal.decide_review(other["review_id"], "reject", "clerk-1", "本人名義でない")
    assert platform.portal.my_account(s_stranger)["state"] == "rejected"
    assert platform.portal.reviews()["total"] == 0
    assert platform.portal.reviews("rejected")["items"][0]["review_id"] == other["review_id"]
    with pytest.raises(MynumberError) as raised:
        platform.portal.decide_review(999, "confirm", "clerk-1", "x")
    assert raised.value.code == "portal.review_not_found"
    # I5: reviews name the others by resident code, never by number
    stored = portal_tables_text(platform)
    for who in (father, son, stranger):
        assert platform.jlis.assign_number(who.resident_code) not in stored


# -- I4: that person's card, in that transaction ----------------------------------------------


def test_a_session_left_open_cannot_register_for_the_next_person(
    platform: Platform, clock: FixedClock
) -> None:
    """The support-desk failure: A is still logged in when B sits down and uses B's card."""
    a = person(platform, clock)
    b = person(platform, clock, "鈴木", "一郎", "スズキ", "イチロウ", birth=dt.date(1980, 2, 2))
    session_a = log_in(platform, a)
    signed_by_b = sign(platform, session_a, b, "ｽｽﾞｷ ｲﾁﾛｳ")
    assert refused(platform, session_a, signed_by_b) == "portal.card_other_person"
    # A's challenge signed by A cannot be used under B's session either
    signed_by_a = sign(platform, session_a, a, "ﾔﾏﾀﾞ ﾀﾛｳ")
    session_b = log_in(platform, b)
    assert refused(platform, session_b, signed_by_a) == "portal.challenge_other_person"
    # B's statement, signed by B, under A's session: refused too
    signed_b = sign(platform, session_b, b, "ｽｽﾞｷ ｲﾁﾛｳ")
    assert refused(platform, session_a, signed_b) == "portal.challenge_other_person"
    assert written(platform) == NOTHING
    # each with their own session and card: fine
    assert register(platform, session_a, signed_by_a)[0] == 201
    assert register(platform, session_b, signed_b)[0] == 201


def test_a_signature_authorises_one_registration_only(
    platform: Platform, clock: FixedClock
) -> None:
    taro = person(platform, clock)
    session = log_in(platform, taro)
    signed = sign(platform, session, taro, "ﾔﾏﾀﾞ ﾀﾛｳ")
    first = register(platform, session, signed, "key-1")
    # a retry with the same key gets the same answer and writes nothing more
    before = written(platform)
    assert register(platform, session, signed, "key-1") == (first[0], first[1], True)
    assert written(platform) == before
    # the same signature under another key (or none) is a replay: refused
    assert refused(platform, session, signed, "key-2") == "portal.challenge_used"
    assert refused(platform, session, signed) == "portal.challenge_used"
    # the same key for another registration is refused
    other = sign(platform, session, taro, "ﾔﾏﾀﾞ ﾀﾛｳ", ("0001", "001", "1"))
    assert refused(platform, session, other, "key-1") == "idempotency.key_reused"
    assert written(platform) == before


def test_only_a_fresh_card_signature_over_the_issued_statement_authorises(
    platform: Platform, clock: FixedClock
) -> None:
    taro = person(platform, clock)
    session = log_in(platform, taro)
    issued = platform.portal.account_challenge(session, "0005", "123", "1234567", "ﾔﾏﾀﾞ ﾀﾛｳ")
    cert = taro.auth_cert.public_bytes(DER)
    stmt = AccountStatement.parse(issued.statement)

    def attempt(statement: bytes, signature: bytes, certificate: bytes = cert) -> str:
        return refused(platform, session, Signed(statement, signature, certificate))

    # a login session and no signature over this statement: a login's signature does not do
    login_nonce = platform.login.challenge().nonce
    assert attempt(issued.statement, taro.authenticate(login_nonce)) == (
        "relying.signature_invalid"
    )
    # the account changed after the challenge, even if the card signs the change
    altered = AccountStatement(stmt.nonce, Account("0005", "123", "7777777"), stmt.holder_kana)
    assert attempt(altered.to_bytes(), taro.authenticate(altered.to_bytes())) == (
        "portal.statement_mismatch"
    )
    # a statement the portal never issued
    made_up = AccountStatement(b"\x07" * 32, stmt.account, stmt.holder_kana).to_bytes()
    assert attempt(made_up, taro.authenticate(made_up)) == "portal.challenge_unknown"
    # not a statement at all
    assert attempt(b"please register", taro.authenticate(b"please register!")) == (
        "portal.statement_malformed"
    )
    # the signature certificate is not for authentication
    sig_cert = taro.chip.certificate(KeyKind.SIGNATURE).public_bytes(DER)
    signed_with_sig_key = taro.chip.sign(KeyKind.SIGNATURE, issued.statement, SIG_PIN)
    assert attempt(issued.statement, signed_with_sig_key, sig_cert) == "pki.wrong_key_usage"
    assert written(platform) == NOTHING
    # the refusals above spent nothing: the person's own signature still goes through …
    good = Signed(issued.statement, taro.authenticate(issued.statement), cert)
    # … but not after the challenge's 120 seconds
    clock.advance(dt.timedelta(seconds=121))
    assert refused(platform, session, good) == "portal.challenge_expired"
    clock.advance(dt.timedelta(seconds=-121))
    assert register(platform, session, good)[0] == 201


def test_a_crash_after_the_writes_leaves_nothing_and_the_signature_unspent(
    platform: Platform, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """I8: the account, its event and its review item are written wholly or not at all."""
    father = person(platform, clock)
    son = person(
        platform,
        clock,
        birth=dt.date(2000, 1, 2),
        household=household_of(platform, father),
        relationship="子",
    )
    s_father, s_son = log_in(platform, father), log_in(platform, son)
    register(platform, s_father, sign(platform, s_father, father, "ﾔﾏﾀﾞ ﾀﾛｳ"), "f")
    before = written(platform)
    # the son's registration writes an account, an event and a review item, then fails
    view = PortalService._account_view
    crashes = iter([True])

    def crash_once(row: Any) -> dict[str, Any]:
        if next(crashes, False):
            raise RuntimeError("power cut")
        return view(row)

    monkeypatch.setattr(PortalService, "_account_view", staticmethod(crash_once))
    signed = sign(platform, s_son, son, "ﾔﾏﾀﾞ ﾀﾛｳ")
    with pytest.raises(RuntimeError):
        register(platform, s_son, signed, "s")
    assert written(platform) == before
    # the retry with the same key and signature goes through, once
    status, body, replayed = register(platform, s_son, signed, "s")
    assert (status, body["state"], replayed) == (201, "review", False)
    assert written(platform) == {
        "accounts": before["accounts"] + 1,
        "account_events": before["account_events"] + 1,
        "account_reviews": 1,
        "idempotency_keys": before["idempotency_keys"] + 1,
    }


def test_one_signature_raced_by_many_requests_registers_once(
    platform: Platform, clock: FixedClock
) -> None:
    """Sixteen requests with the same signed statement and different keys, at once."""
    taro = person(platform, clock)
    session = log_in(platform, taro)
    signed = sign(platform, session, taro, "ﾔﾏﾀﾞ ﾀﾛｳ")
    gate = threading.Barrier(16)

    def attempt(i: int) -> str:
        gate.wait(timeout=30)
        try:
            return str(register(platform, session, signed, f"race-{i}")[0])
        except MynumberError as exc:
            return exc.code

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(attempt, range(16)))
    assert outcomes.count("201") == 1, outcomes
    assert outcomes.count("portal.challenge_used") == 15, outcomes
    assert written(platform) == {
        **NOTHING,
        "accounts": 1,
        "account_events": 1,
        "idempotency_keys": 1,
    }


def test_a_revoked_card_cannot_register(platform: Platform, clock: FixedClock) -> None:
    taro = person(platform, clock)
    session = log_in(platform, taro)
    signed = sign(platform, session, taro, "ﾔﾏﾀﾞ ﾀﾛｳ")
    platform.pki.revoke_for_event(taro.resident_code, RevocationEvent.LOSS)
    # the session was opened before the loss; the write still needs a card that is valid now
    assert refused(platform, session, signed) == "pki.revoked"
    assert written(platform) == NOTHING


def test_without_a_valid_session_nothing_is_issued_or_written(
    platform: Platform, clock: FixedClock
) -> None:
    taro = person(platform, clock)
    session = log_in(platform, taro)
    signed = sign(platform, session, taro, "ﾔﾏﾀﾞ ﾀﾛｳ")
    for bad in ("", "garbage", "mns_AAAA", session[:-3] + "AAA"):
        with pytest.raises(MynumberError) as raised:
            platform.portal.account_challenge(bad, "0005", "123", "1", "ﾔﾏﾀﾞ ﾀﾛｳ")
        assert raised.value.code == "login.session_invalid"
        assert refused(platform, bad, signed) == "login.session_invalid"
    for account, code in (
        (("5", "123", "1", "ﾔﾏﾀﾞ ﾀﾛｳ"), "portal.account_invalid"),
        (("0005", "12", "1", "ﾔﾏﾀﾞ ﾀﾛｳ"), "portal.account_invalid"),
        (("0005", "123", "１", "ﾔﾏﾀﾞ ﾀﾛｳ"), "portal.account_invalid"),
        (("0005", "123", "1", "  "), "portal.holder_kana_invalid"),
        (("0005", "123", "1", "ﾔ" * 61), "portal.holder_kana_invalid"),
    ):
        with pytest.raises(MynumberError) as raised:
            platform.portal.account_challenge(session, *account)
        assert raised.value.code == code
    assert written(platform) == NOTHING


# -- over HTTP ---------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def http_login(client: Any, who: Person) -> str:
    nonce_text = client.post("/api/login/challenge").json()["nonce"]
    nonce = base64.urlsafe_b64decode(nonce_text + "=" * (-len(nonce_text) % 4))
    r = client.post(
        "/api/login",
        json={
            "nonce": nonce_text,
            "certificate": b64(who.auth_cert.public_bytes(DER)),
            "signature": b64(who.authenticate(nonce)),
        },
    )
    assert r.status_code == 200, r.text
    token: str = r.json()["session"]
    return token


def problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert body["code"] == code and body["messages"]["ja"] and body["messages"]["en"]
    return body


@pytest.fixture(params=["in-process", "socket"])
def client(request: pytest.FixtureRequest, platform: Platform) -> Iterator[Any]:
    """The app in process (TestClient), or served by uvicorn on a real socket."""
    if request.param == "in-process":
        yield TestClient(create_app(platform, sync_interval=None))
        return
    with serve(platform) as url, httpx.Client(base_url=url, timeout=60) as c:
        yield c


def test_registration_over_http(platform: Platform, clock: FixedClock, client: Any) -> None:
    father = person(platform, clock)
    son = person(
        platform,
        clock,
        birth=dt.date(2000, 1, 2),
        household=household_of(platform, father),
        relationship="子",
    )
    staff = TokenStore(platform.settings.data_dir / "tokens.json").create(
        "clerk", ["municipality:read", "municipality:write"]
    )
    account = {"bank": "0005", "branch": "123", "number": "42", "holder_kana": "ﾔﾏﾀﾞ ﾀﾛｳ"}

    def challenge(session: str, body: dict[str, str] = account) -> bytes:
        r = client.post(
            "/api/portal/accounts/challenge",
            json=body,
            headers={"Authorization": f"Bearer {session}"},
        )
        assert r.status_code == 200, r.text
        return base64.b64decode(r.json()["statement"])

    def post(session: str | None, body: dict[str, Any], key: str | None = "k") -> Any:
        headers = {"Accept-Language": "en"}
        if session:
            headers["Authorization"] = f"Bearer {session}"
        if key:
            headers["Idempotency-Key"] = key
        return client.post("/api/portal/accounts", json=body, headers=headers)

    def signed(card: Person, statement: bytes) -> dict[str, str]:
        return {
            "statement": b64(statement),
            "certificate": b64(card.auth_cert.public_bytes(DER)),
            "signature": b64(card.authenticate(statement)),
        }

    s_father = http_login(client, father)
    statement = challenge(s_father)
    assert json.loads(statement)["number"] == "0000042"
    # a login session alone: the body needs the card's signature
    problem(post(s_father, {"statement": b64(statement)}), 422, "request.invalid")
    # no session, a staff token instead of a session, no key
    body = signed(father, statement)
    problem(post(None, body), 401, "login.session_invalid")
    problem(post(staff, body), 401, "login.session_invalid")
    problem(post(s_father, body, key=None), 400, "idempotency.key_required")
    # the son's card under the father's session (the support desk)
    problem(post(s_father, signed(son, statement)), 403, "portal.card_other_person")

    r = post(s_father, body, key="reg-1")
    assert r.status_code == 201, r.text
    assert "Idempotent-Replayed" not in r.headers
    again = post(s_father, body, key="reg-1")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == r.json()
    problem(post(s_father, body, key="reg-2"), 409, "portal.challenge_used")

    s_son = http_login(client, son)
    r = post(s_son, signed(son, challenge(s_son)), key="reg-son")
    assert r.status_code == 201 and r.json()["state"] == "review", r.text
    r = client.get("/api/portal/me/account", headers={"Authorization": f"Bearer {s_son}"})
    assert r.status_code == 200 and r.json()["notes"] == ["account_shared_family"]
    assert father.resident_code not in r.text
    problem(client.get("/api/portal/me/account"), 401, "login.session_invalid")

    # a mismatching name: 422 problem+json in both languages
    other = {**account, "holder_kana": "ﾔﾏﾀﾞ ﾊﾅｺ"}
    problem(
        post(s_son, signed(son, challenge(s_son, other)), key="x"), 422, "portal.holder_mismatch"
    )
    bad = client.post(
        "/api/portal/accounts/challenge",
        json={**account, "bank": "12"},
        headers={"Authorization": f"Bearer {s_son}"},
    )
    problem(bad, 422, "portal.account_invalid")

    # the clerk's queue
    auth = {"Authorization": f"Bearer {staff}"}
    r = client.get("/api/portal/reviews", headers=auth)
    assert r.status_code == 200, r.text
    [item] = r.json()["items"]
    assert item["shared_with"][0]["relationship"] == "世帯主"
    problem(client.get("/api/portal/reviews"), 401, "auth.token")
    decision = {"decision": "confirm", "operator": "clerk-1", "justification": "確認済み"}
    url = f"/api/portal/reviews/{item['review_id']}/decision"
    r = client.post(url, json=decision, headers={**auth, "Idempotency-Key": "d"})
    assert r.status_code == 200 and r.json()["state"] == "confirmed", r.text
    r = client.post(url, json=decision, headers={**auth, "Idempotency-Key": "d2"})
    problem(r, 409, "portal.review_decided")
    read_only = TokenStore(platform.settings.data_dir / "tokens.json").create(
        "reader", ["municipality:read"]
    )
    r = client.post(
        url, json=decision, headers={"Authorization": f"Bearer {read_only}", "Idempotency-Key": "e"}
    )
    problem(r, 403, "auth.scope")
