"""Challenge–response login with the user-authentication certificate: the SDK's verifier with
both challenge stores, one nonce raced by many threads, and the platform's login routes — on
SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from mynumber.api.app import create_app
from mynumber.clock import FixedClock
from mynumber.errors import MynumberError
from mynumber.jlis import models as m
from mynumber.jlis.ca import RevocationEvent
from mynumber.platform import Platform
from mynumber.relying import (
    LocalStatusSource,
    LoginVerifier,
    MemoryChallengeStore,
    SqlChallengeStore,
)
from mynumber.relying.login import ChallengeStore, Consumed
from relykit import Holder, make_holder, trust_of

DER = serialization.Encoding.DER


def verifier_for(p: Platform, clock: FixedClock, store: ChallengeStore) -> LoginVerifier:
    return LoginVerifier(
        store, trust=trust_of(p), status=LocalStatusSource(p.pki.status), clock=clock
    )


def refusal(verifier: LoginVerifier, holder: Holder, nonce: bytes, signature: bytes) -> str:
    with pytest.raises(MynumberError) as raised:
        verifier.verify(nonce, holder.auth_cert, signature)
    return raised.value.code


@pytest.mark.parametrize("store_kind", ["memory", "sql"])
def test_login_succeeds_once_and_refuses_replayed_stale_and_unknown_nonces(
    platform: Platform, clock: FixedClock, store_kind: str
) -> None:
    store: ChallengeStore = (
        MemoryChallengeStore()
        if store_kind == "memory"
        else SqlChallengeStore(platform.jlis.engine, m.login_challenges)
    )
    verifier = verifier_for(platform, clock, store)
    holder = make_holder(platform, clock)

    challenge = verifier.challenge()
    assert len(challenge.nonce) == 32
    assert challenge.expires_at == clock.now() + dt.timedelta(seconds=120)
    signature = holder.authenticate(challenge.nonce)
    result = verifier.verify(challenge.nonce, holder.auth_cert, signature)
    assert result.serial == holder.auth_cert.serial_number
    assert result.not_after == holder.auth_cert.not_valid_after_utc

    assert refusal(verifier, holder, challenge.nonce, signature) == "login.nonce_used"
    never_issued = b"\x01" * 32
    assert refusal(verifier, holder, never_issued, holder.authenticate(never_issued)) == (
        "login.nonce_unknown"
    )
    late = verifier.challenge()
    late_signature = holder.authenticate(late.nonce)
    clock.advance(dt.timedelta(seconds=120))
    assert refusal(verifier, holder, late.nonce, late_signature) == "login.nonce_expired"
    # An expired challenge stays spent: it is not "unknown" to a second try either.
    assert refusal(verifier, holder, late.nonce, late_signature) == "login.nonce_expired"

    # A signature over another nonce spends the nonce and fails.
    fresh = verifier.challenge()
    other = verifier.challenge()
    assert refusal(verifier, holder, fresh.nonce, holder.authenticate(other.nonce)) == (
        "relying.signature_invalid"
    )
    assert refusal(verifier, holder, fresh.nonce, holder.authenticate(fresh.nonce)) == (
        "login.nonce_used"
    )
    # The signature certificate is not for logins.
    wrong = verifier.challenge()
    with pytest.raises(MynumberError) as raised:
        verifier.verify(wrong.nonce, holder.signature_cert, holder.sign(wrong.nonce))
    assert raised.value.code == "pki.wrong_key_usage"
    # Purged an hour after expiry: a replay then reads as unknown, never as success.
    clock.advance(dt.timedelta(hours=2))
    verifier.challenge()
    assert refusal(verifier, holder, challenge.nonce, signature) == "login.nonce_unknown"


def test_a_revoked_authentication_certificate_cannot_log_in(
    platform: Platform, clock: FixedClock
) -> None:
    verifier = verifier_for(platform, clock, MemoryChallengeStore())
    holder = make_holder(platform, clock)
    challenge = verifier.challenge()
    signature = holder.authenticate(challenge.nonce)
    platform.pki.revoke_for_event(holder.resident_code, RevocationEvent.LOSS)
    assert refusal(verifier, holder, challenge.nonce, signature) == "pki.revoked"


def race(store: ChallengeStore, now: dt.datetime, threads: int = 16) -> list[Consumed]:
    store.add("a" * 64, now + dt.timedelta(seconds=120))
    gate = threading.Barrier(threads)

    def attempt(_: int) -> Consumed:
        gate.wait(timeout=30)
        return store.consume("a" * 64, now)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(attempt, range(threads)))


def test_one_nonce_raced_by_many_threads_is_consumed_exactly_once(
    platform: Platform, clock: FixedClock
) -> None:
    """SQL store on the platform's own engine (SQLite and PostgreSQL by the backend fixture)."""
    outcomes = race(SqlChallengeStore(platform.jlis.engine, m.login_challenges), clock.now())
    assert outcomes.count(Consumed.OK) == 1
    assert outcomes.count(Consumed.USED) == len(outcomes) - 1
    memory = race(MemoryChallengeStore(), clock.now())
    assert memory.count(Consumed.OK) == 1


def test_a_relying_party_keeps_challenges_in_a_database_of_its_own(
    tmp_path: Path, clock: FixedClock
) -> None:
    engine = create_engine(
        f"sqlite:///{tmp_path / 'bank.sqlite3'}",
        connect_args={"timeout": 30, "check_same_thread": False},
    )
    try:
        store = SqlChallengeStore.create(engine, "bank_login_challenges")
        SqlChallengeStore.create(engine, "bank_login_challenges")  # idempotent
        outcomes = race(store, clock.now(), threads=8)
        assert outcomes.count(Consumed.OK) == 1
        assert store.purge(clock.now() + dt.timedelta(days=1)) == 1
    finally:
        engine.dispose()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_login_over_http_returns_a_session_and_never_the_resident(
    platform: Platform, clock: FixedClock
) -> None:
    holder = make_holder(platform, clock)
    client = TestClient(create_app(platform, sync_interval=None))
    r = client.post("/api/login/challenge")
    assert r.status_code == 200, r.text
    nonce_text = r.json()["nonce"]
    nonce = base64.urlsafe_b64decode(nonce_text + "=" * (-len(nonce_text) % 4))
    body = {
        "nonce": nonce_text,
        "certificate": b64(holder.auth_cert.public_bytes(DER)),
        "signature": b64(holder.authenticate(nonce)),
    }
    r = client.post("/api/login", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["certificate_serial"] == f"{holder.auth_cert.serial_number:X}"
    assert holder.resident_code not in r.text
    session = platform.login.open(answer["session"])
    assert session.resident_code == holder.resident_code
    assert session.serial == holder.auth_cert.serial_number
    assert holder.resident_code not in repr(session)

    replay = client.post("/api/login", json=body, headers={"Accept-Language": "en"})
    assert replay.status_code == 401
    assert replay.headers["content-type"] == "application/problem+json"
    problem = replay.json()
    assert problem["code"] == "login.nonce_used"
    assert problem["messages"]["ja"] and problem["messages"]["en"] == problem["detail"]

    for bad in ({**body, "nonce": "!!"}, {**body, "certificate": "QUJD"}, {"nonce": "x"}):
        r = client.post("/api/login", json=bad)
        assert 400 <= r.status_code < 500, r.text
    fresh = client.post("/api/login/challenge").json()["nonce"]
    r = client.post("/api/login", json={**body, "nonce": fresh, "certificate": "QUJD"})
    assert (r.status_code, r.json()["code"]) == (422, "pki.malformed")

    clock.advance(dt.timedelta(minutes=16))
    with pytest.raises(MynumberError) as expired:
        platform.login.open(answer["session"])
    assert expired.value.code == "login.session_invalid"
    for forged in ("mns_AAAA", "garbage", answer["session"][:-2] + "AA"):
        with pytest.raises(MynumberError) as raised:
            platform.login.open(forged)
        assert raised.value.code == "login.session_invalid"
