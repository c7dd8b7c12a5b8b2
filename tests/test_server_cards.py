"""Issue 3's guarantees over real HTTP: `mynumber serve --workers 2` on SQLite and PostgreSQL.

The server is test_server's fixture (200 residents, 2 seeded card holders whose chip files and
PINs are in the data directory). The tests act as the other parties would: a registered
verifier asking OCSP with the relying SDK's :class:`OcspClient`, card holders signing login
challenges with their chip file, counter staff and the 24-hour loss line racing each other, and
a worker SIGKILLed in the middle of a burst of handovers. Every request goes to 127.0.0.1 only,
every wait is bounded, and the fixture always stops the server.

Sections (each a function; a server start costs 10–20 s, so each test runs two of them on one
server, on each backend):

1. a move, a name change, a death and a loss report are in the FIRST OCSP answer after the
   event's response, asked at once on several fresh connections (either worker may answer);
   a suspended holder who moves keeps the signature certificate revoked after the lift;
2. 40 concurrent card logins all succeed; their replays all fail (login.nonce_used); one answer
   sent twice at once wins once; stale, unknown and wrongly signed challenges are refused;
3. 20 concurrent suspensions / lifts / reissues / returns of one card: the state, the event
   chain, the accepted answers, their replays and OCSP agree; one card in hand at most;
4. a worker SIGKILLed during apply → produce → handover bursts: never a half-handed card, and
   every request retried with its key completes or replays its first answer;
5. hostile input to the new routes: 4xx problem+json or OCSP malformedRequest, never a 500,
   never a PIN echoed or logged, never a traceback;
6. a face update (追記) racing the holder's next move: no good signature certificate carries an
   address the register has left.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import datetime as dt
import hashlib
import itertools
import os
import random
import secrets
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp as x509_ocsp
from sqlalchemy import create_engine, update

from mynumber.card.chip import Chip
from mynumber.card.kinds import KeyKind
from mynumber.card.store import ChipStore
from mynumber.clock import SystemClock
from mynumber.jlis import models as jlis_models
from mynumber.jlis.ca import four_items_of
from mynumber.jlis.card_seed import random_auth_pin, random_signature_pin
from mynumber.jlis.ocsp import CertStatus, OcspStatus
from mynumber.keystore import FileKeystore
from mynumber.relying import OcspClient, Trust
from mynumber.relying.ocsp_client import build_request
from test_server import REQUEST_TIMEOUT, M, Server, _wait_for, assert_clean_log, server

__all__ = ["server"]  # the fixture, imported from test_server (not copied)

pytestmark = pytest.mark.slow

CARDS = "/api/jlis/cards"
DOCS = ["driving_licence"]
PROBLEM = "application/problem+json"


# -- helpers --------------------------------------------------------------------------------------


@dataclass
class Holder:
    """A seeded card holder, as the card role knows them: chip file and PINs."""

    chip_id: str
    resident_code: str
    auth_pin: str = field(repr=False)  # PINs stay out of failure messages too
    signature_pin: str = field(repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def seeded(srv: Server) -> list[Holder]:
    with (srv.data_dir / "cards" / "DEMO-PINS.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2, f"two seeded holders expected, not {len(rows)}"
    return [
        Holder(r["chip_id"], r["resident_code"], r["auth_pin"], r["signature_pin"]) for r in rows
    ]


def backend_of(srv: Server) -> str:
    return "postgres" if srv.database_url else "sqlite"


def chip_store(srv: Server) -> ChipStore:
    return ChipStore(srv.data_dir / "cards", FileKeystore(srv.data_dir / "keys"))


def load_chip(srv: Server, chip_id: str) -> Chip:
    return chip_store(srv).load(chip_id, SystemClock())


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def fresh_client(srv: Server) -> httpx.Client:
    """A client that opens a new connection for every request, so that either worker may
    answer any of them."""
    return httpx.Client(
        base_url=srv.base_url,
        headers={"Authorization": f"Bearer {srv.token}"},
        timeout=REQUEST_TIMEOUT,
        trust_env=False,
        limits=httpx.Limits(max_keepalive_connections=0),
    )


def trust_of(srv: Server) -> Trust:
    with srv.client() as c:
        r = c.get("/api/jlis/ca")
    assert r.status_code == 200, r.text
    return Trust.from_pem(r.content)


class Ocsp:
    """The registered verifier "demo" (the demo token), asking through the relying SDK."""

    def __init__(self, srv: Server) -> None:
        self.trust = trust_of(srv)
        self.http = fresh_client(srv)
        # The certificates name the default base URL (port 8000): ask this server's responder.
        self.client = OcspClient(
            srv.token,
            f"{srv.base_url}/api/jlis/ocsp",
            client=self.http,
            timeout=httpx.Timeout(REQUEST_TIMEOUT, connect=10.0),  # a loaded CI box, not 5 s
        )

    def check(self, cert: x509.Certificate) -> CertStatus:
        return self.client.check(cert, self.trust.issuing, dt.datetime.now(dt.UTC))

    def close(self) -> None:
        self.http.close()


@contextlib.contextmanager
def ocsp_for(srv: Server) -> Iterator[Ocsp]:
    o = Ocsp(srv)
    try:
        yield o
    finally:
        o.close()


def is_good(s: CertStatus) -> bool:
    return s.status is OcspStatus.GOOD


def is_revoked(s: CertStatus, reason: x509.ReasonFlags | None = None) -> bool:
    return s.status is OcspStatus.REVOKED and (reason is None or s.reason is reason)


def post(c: httpx.Client, path: str, body: Any = None, key: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": key or f"t-{uuid.uuid4()}"}
    return c.post(path, json=body if body is not None else {}, headers=headers)


def resident_card(srv: Server, rc: str) -> list[dict[str, Any]]:
    with srv.client() as c:
        r = c.get(CARDS, params={"resident_code": rc})
    assert r.status_code == 200, r.text
    cards: list[dict[str, Any]] = r.json()
    return cards


def events_of(srv: Server, card_id: str) -> list[dict[str, Any]]:
    with srv.client() as c:
        r = c.get(f"{CARDS}/{card_id}/events")
    assert r.status_code == 200, r.text
    events: list[dict[str, Any]] = r.json()
    return events


def active_card(srv: Server, rc: str) -> dict[str, Any]:
    held = [c for c in resident_card(srv, rc) if c["state"] == "active"]
    assert len(held) == 1, held
    return held[0]


def pins_of(*holders: Any) -> list[str]:
    """Every PIN the holders used: what the server log must never contain."""
    return [pin for h in holders for pin in (h.auth_pin, h.signature_pin)]


def newcomer(kana: str, i: int) -> dict[str, str]:
    born = dt.date(1961, 3, 1) + dt.timedelta(days=211 * i)
    return {
        "family_name": "交付",
        "given_name": "花子",
        "family_name_kana": kana,
        "given_name_kana": "ハナコ",
        "birth_date": born.isoformat(),
        "sex": "2",
        "address": f"東京都新宿区高田馬場一丁目{i + 1}番2号",
    }


def move_in(srv: Server, body: dict[str, str]) -> str:
    with srv.client() as c:
        r = post(c, f"{M}/move-ins", body)
    assert r.status_code == 201, r.text
    rc: str = r.json()["resident_code"]
    return rc


# -- 1. revocation reaches OCSP at once -----------------------------------------------------------

PARALLEL_OCSP = 6  # fresh connections asking at once right after the event's response


def first_answers(
    o: Ocsp, certs: list[x509.Certificate], t0: float
) -> list[tuple[x509.Certificate, CertStatus, float]]:
    """Each certificate asked PARALLEL_OCSP times at once, each on its own connection; the
    time of each answer is measured from `t0` (the event's response)."""

    def ask(cert: x509.Certificate) -> tuple[x509.Certificate, CertStatus, float]:
        status = o.check(cert)
        return cert, status, time.perf_counter() - t0

    with ThreadPoolExecutor(max_workers=PARALLEL_OCSP * len(certs)) as pool:
        futures = [pool.submit(ask, c) for c in certs for _ in range(PARALLEL_OCSP)]
        return [f.result(timeout=REQUEST_TIMEOUT) for f in futures]


def revocation_in_the_first_ocsp_answer(server: Server) -> None:
    a, b = seeded(server)
    backend = backend_of(server)
    timings: dict[str, list[float]] = {}

    def event(name: str, path: str, body: dict[str, Any] | None = None) -> float:
        """POST the event on a connection of its own; the moment its response arrived."""
        with fresh_client(server) as c:
            r = post(c, path, body)
        t0 = time.perf_counter()
        assert r.status_code == 200, (name, r.status_code, r.text)
        return t0

    def record(name: str, answers: list[tuple[x509.Certificate, CertStatus, float]]) -> None:
        timings.setdefault(name, []).extend(t for _, _, t in answers)

    def face_update(rc: str) -> x509.Certificate:
        card = active_card(server, rc)
        with server.client() as c:
            r = post(c, f"{CARDS}/{card['card_id']}/face-update", {"identity_documents": DOCS})
        assert r.status_code == 200, r.text
        return load_chip(server, card["chip_id"]).certificate(KeyKind.SIGNATURE)

    with server.client() as c:
        who = c.get(f"{M}/residents/{a.resident_code}").json()
    chip_a = load_chip(server, a.chip_id)
    auth_a = chip_a.certificate(KeyKind.AUTHENTICATION)
    sig_a = chip_a.certificate(KeyKind.SIGNATURE)
    chip_b = load_chip(server, b.chip_id)
    certs_b = [chip_b.certificate(KeyKind.AUTHENTICATION), chip_b.certificate(KeyKind.SIGNATURE)]
    resident_a = f"{M}/residents/{a.resident_code}"

    with ocsp_for(server) as o:
        if not is_good(o.check(sig_a)):  # the card face is behind the register (section 6)
            sig_a = face_update(a.resident_code)
        before = first_answers(o, [auth_a, sig_a, *certs_b], time.perf_counter())
        assert all(is_good(s) for _, s, _ in before), [s for _, s, _ in before]

        # Moves (転居), twice: the signature certificate in force is revoked each time.
        for n in range(2):
            address = f"東京都新宿区大久保三丁目{n + 4}番1号"
            t0 = event("move", f"{resident_a}/moves", {"address": address})
            answers = first_answers(o, [sig_a, auth_a], t0)
            record("move", [x for x in answers if x[0] is sig_a])
            for cert, status, _ in answers:
                if cert is sig_a:
                    assert is_revoked(status, x509.ReasonFlags.affiliation_changed), status
                else:
                    assert is_good(status), ("a move revoked the auth certificate", status)
            sig_a = face_update(a.resident_code)
            assert is_good(o.check(sig_a))

        # A change of name (氏名変更).
        renamed = {
            "family_name": "改姓",
            "given_name": who["given_name"],
            "family_name_kana": "カイセイ",
            "given_name_kana": who["given_name_kana"],
        }
        t0 = event("name change", f"{resident_a}/name-changes", renamed)
        answers = first_answers(o, [sig_a], t0)
        record("name change", answers)
        assert all(is_revoked(s, x509.ReasonFlags.affiliation_changed) for _, s, _ in answers), (
            answers
        )
        sig_a = face_update(a.resident_code)
        assert is_good(o.check(sig_a)) and is_good(o.check(auth_a))

        # The 24-hour loss line (一時停止): both certificates on hold; lifted; and again.
        card_b = active_card(server, b.resident_code)["card_id"]
        for _ in range(2):
            t0 = event("loss report", f"{CARDS}/{card_b}/suspension")
            answers = first_answers(o, certs_b, t0)
            record("loss report", answers)
            assert all(is_revoked(s, x509.ReasonFlags.certificate_hold) for _, s, _ in answers), (
                answers
            )
            http, code = try_login(server, b)  # the platform's own login sees it too
            assert 400 <= http < 500 and code == "pki.revoked", (http, code)
            t0 = event("lift", f"{CARDS}/{card_b}/lift", {"identity_documents": DOCS})
            answers = first_answers(o, certs_b, t0)
            record("lift", answers)
            assert all(is_good(s) for _, s, _ in answers), answers
            assert try_login(server, b) == (200, None)

        # A suspended holder moves: the held signature certificate is revoked for good, and
        # lifting the suspension releases only the authentication certificate.
        auth_b, sig_b = certs_b
        assert event("loss report", f"{CARDS}/{card_b}/suspension")
        t0 = event(
            "move",
            f"{M}/residents/{b.resident_code}/moves",
            {"address": "東京都新宿区百人町一丁目7番3号"},
        )
        answers = first_answers(o, [sig_b], t0)
        record("move", answers)
        assert all(is_revoked(s, x509.ReasonFlags.affiliation_changed) for _, s, _ in answers), (
            answers
        )
        assert is_revoked(o.check(auth_b), x509.ReasonFlags.certificate_hold)
        t0 = event("lift", f"{CARDS}/{card_b}/lift", {"identity_documents": DOCS})
        answers = first_answers(o, [sig_b, auth_b], t0)
        for cert, status, _ in answers:
            if cert is sig_b:
                assert is_revoked(status, x509.ReasonFlags.affiliation_changed), status
            else:
                assert is_good(status), status

        # Death (死亡): both certificates revoked for good.
        t0 = event("death", f"{resident_a}/deaths", {})
        answers = first_answers(o, [sig_a, auth_a], t0)
        record("death", answers)
        assert all(is_revoked(s) for _, s, _ in answers), answers
        assert all(s.reason is not x509.ReasonFlags.certificate_hold for _, s, _ in answers)
        http, code = try_login(server, a)
        assert 400 <= http < 500 and code == "pki.revoked", (http, code)

    for name, ts in timings.items():
        print(
            f"[{backend}] {name}: event response → OCSP answer "
            f"{min(ts) * 1000:.1f}–{max(ts) * 1000:.1f} ms "
            f"(median {sorted(ts)[len(ts) // 2] * 1000:.1f}) over {len(ts)} first answers"
        )
    assert_clean_log(server, pins_of(a, b))


# -- 2. concurrent card logins --------------------------------------------------------------------

LOGINS = 40


def sign_challenge(srv: Server, holder: Holder, chip: Chip, nonce: bytes) -> dict[str, str]:
    with holder.lock:  # one chip object, used by one thread at a time (like a real card)
        signature = chip.authenticate(nonce, holder.auth_pin)
    cert = chip.certificate(KeyKind.AUTHENTICATION)
    return {"certificate": b64(der(cert)), "signature": b64(signature)}


def try_login(srv: Server, holder: Holder) -> tuple[int, str | None]:
    """A whole card login with the holder's chip file loaded afresh (the counter may have
    rewritten it); (HTTP status, problem code or None)."""
    chip = load_chip(srv, holder.chip_id)
    with fresh_client(srv) as c:
        nonce = challenge(c)
        body = {"nonce": nonce, **sign_challenge(srv, holder, chip, unb64url(nonce))}
        r = c.post("/api/login", json=body)
    return r.status_code, None if r.status_code == 200 else r.json()["code"]


def challenge(c: httpx.Client) -> str:
    r = c.post("/api/login/challenge")
    assert r.status_code == 200, r.text
    nonce: str = r.json()["nonce"]
    return nonce


def jlis_engine(srv: Server) -> Any:
    if srv.database_url is None:
        return create_engine(f"sqlite:///{srv.data_dir / 'jlis.sqlite3'}")
    url = srv.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    return create_engine(url, connect_args={"options": "-csearch_path=jlis"})


def concurrent_logins_and_replays(server: Server) -> None:
    holders = seeded(server)
    chips = [load_chip(server, h.chip_id) for h in holders]
    serials = [f"{c.certificate(KeyKind.AUTHENTICATION).serial_number:X}" for c in chips]
    gate = threading.Barrier(LOGINS)

    def log_in(i: int) -> tuple[int, dict[str, Any], dict[str, str]]:
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait(timeout=30)
        with fresh_client(server) as c:
            nonce = challenge(c)
            body = {"nonce": nonce, **sign_challenge(server, holders[i % 2], chips[i % 2],
                                                      unb64url(nonce))}  # fmt: skip
            r = c.post("/api/login", json=body)
        return r.status_code, r.json(), body

    with ThreadPoolExecutor(max_workers=LOGINS) as pool:
        results = list(pool.map(log_in, range(LOGINS), timeout=REQUEST_TIMEOUT * 3))
    assert all(status == 200 for status, _, _ in results), [
        (s, b) for s, b, _ in results if s != 200
    ][:3]
    for i, (_, answer, _) in enumerate(results):
        assert (
            answer["session"].startswith("mns_") and answer["certificate_serial"] == serials[i % 2]
        )
        assert set(answer) == {
            "session",
            "expires_at",
            "certificate_serial",
            "certificate_not_after",
        }
    assert len({a["session"] for _, a, _ in results}) == LOGINS
    assert len({b["nonce"] for _, _, b in results}) == LOGINS

    # Every (nonce, signature) replayed at once: none may log in again.
    gate = threading.Barrier(LOGINS)

    def replay(body: dict[str, str]) -> tuple[int, Any]:
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait(timeout=30)
        with fresh_client(server) as c:
            r = c.post("/api/login", json=body)
        return r.status_code, r.json()

    with ThreadPoolExecutor(max_workers=LOGINS) as pool:
        replays = list(pool.map(replay, [b for _, _, b in results], timeout=REQUEST_TIMEOUT * 3))
    assert all(s == 401 and a["code"] == "login.nonce_used" for s, a in replays), replays[:3]

    # Fresh challenges, each answer sent twice at the same moment: exactly one of each pair wins.
    with fresh_client(server) as c:
        pairs = []
        for i in range(12):
            nonce = challenge(c)
            body = {"nonce": nonce, **sign_challenge(server, holders[i % 2], chips[i % 2],
                                                      unb64url(nonce))}  # fmt: skip
            pairs.append(body)
    gate = threading.Barrier(24)
    with ThreadPoolExecutor(max_workers=24) as pool:
        raced = list(pool.map(replay, pairs + pairs, timeout=REQUEST_TIMEOUT * 3))
    for i in range(12):
        got = sorted([raced[i][0], raced[i + 12][0]])
        assert got == [200, 401], (i, raced[i], raced[i + 12])
        loser = raced[i] if raced[i][0] == 401 else raced[i + 12]
        assert loser[1]["code"] == "login.nonce_used", loser

    with fresh_client(server) as c:
        # A stale challenge: its 120 s are made to have passed (the row's expiry moved back).
        nonce = challenge(c)
        body = {"nonce": nonce, **sign_challenge(server, holders[0], chips[0], unb64url(nonce))}
        engine = jlis_engine(server)
        try:
            t = jlis_models.login_challenges
            with engine.begin() as conn:
                moved = conn.execute(
                    update(t)
                    .where(t.c.nonce_digest == hashlib.sha256(unb64url(nonce)).hexdigest())
                    .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
                ).rowcount
        finally:
            engine.dispose()
        assert moved == 1
        r = c.post("/api/login", json=body)
        assert r.status_code == 401 and r.json()["code"] == "login.nonce_expired", r.text
        r = c.post("/api/login", json=body)
        assert r.status_code == 401 and r.json()["code"] in (
            "login.nonce_expired",
            "login.nonce_used",
        ), r.text
        # A nonce never issued, and a challenge answered with another card's key.
        unknown = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        forged = {"nonce": unknown, **sign_challenge(server, holders[0], chips[0],
                                                     unb64url(unknown))}  # fmt: skip
        r = c.post("/api/login", json=forged)
        assert r.status_code == 401 and r.json()["code"] == "login.nonce_unknown", r.text
        nonce = challenge(c)
        theirs = sign_challenge(server, holders[1], chips[1], unb64url(nonce))
        mine = sign_challenge(server, holders[0], chips[0], unb64url(nonce))
        r = c.post(
            "/api/login",
            json={
                "nonce": nonce,
                "certificate": mine["certificate"],
                "signature": theirs["signature"],
            },
        )
        assert r.status_code == 422 and r.json()["code"] == "relying.signature_invalid", r.text
        r = c.post("/api/login", json={"nonce": nonce, **mine})  # the nonce was spent
        assert r.status_code == 401 and r.json()["code"] == "login.nonce_used", r.text
        # The signature certificate (and its key, with the signature PIN) cannot log in.
        nonce = challenge(c)
        with holders[0].lock:
            signed = chips[0].sign(KeyKind.SIGNATURE, unb64url(nonce), holders[0].signature_pin)
        sig_cert = chips[0].certificate(KeyKind.SIGNATURE)
        r = c.post(
            "/api/login",
            json={"nonce": nonce, "certificate": b64(der(sig_cert)), "signature": b64(signed)},
        )
        assert 400 <= r.status_code < 500 and r.json()["code"] == "pki.wrong_key_usage", r.text
    assert_clean_log(server, pins_of(*holders))


# -- 3. concurrent lifecycle on one card ----------------------------------------------------------

HOLDING = {"active", "suspended"}
ON_ITS_WAY = {"applied", "produced"}


def lifecycle_request(kind: str, card_id: str, i: int) -> tuple[str, dict[str, Any]]:
    if kind == "suspend":
        return f"{CARDS}/{card_id}/suspension", {}
    if kind == "lift":
        return f"{CARDS}/{card_id}/lift", {"identity_documents": DOCS}
    if kind == "reissue":
        reason = ("loss", "damage", "theft", "chip_fault")[i % 4]
        return f"{CARDS}/{card_id}/reissue", {"reason": reason, "identity_documents": DOCS}
    return f"{CARDS}/{card_id}/return", {"reason": "holder_request"}


def race_lifecycle(srv: Server, holder: Holder, kinds: list[str]) -> None:
    card = active_card(srv, holder.resident_code)
    card_id = card["card_id"]
    chip = load_chip(srv, holder.chip_id)
    certs = [chip.certificate(KeyKind.AUTHENTICATION), chip.certificate(KeyKind.SIGNATURE)]
    events_before = len(events_of(srv, card_id))
    gate = threading.Barrier(len(kinds))

    keys = [f"race-{i}-{uuid.uuid4()}" for i in range(len(kinds))]
    replays: dict[int, bool] = {}

    def send(i: int) -> tuple[str, int | None, Any]:
        path, body = lifecycle_request(kinds[i], card_id, i)
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait(timeout=30)
        try:
            with fresh_client(srv) as c:
                r = post(c, path, body, key=keys[i])
        except httpx.TransportError as e:
            return kinds[i], None, repr(e)
        replays[i] = r.headers.get("Idempotent-Replayed") == "true"
        return kinds[i], r.status_code, r.json()

    with ThreadPoolExecutor(max_workers=len(kinds)) as pool:
        outcomes = list(pool.map(send, range(len(kinds)), timeout=REQUEST_TIMEOUT * 3))
    assert not any(replays.values()), replays
    assert all(s is not None and s < 500 for _, s, _ in outcomes), outcomes
    won = [(k, body) for k, s, body in outcomes if s in (200, 201)]
    lost = [(k, s, body) for k, s, body in outcomes if s not in (200, 201)]
    assert all(
        s is not None and 400 <= s < 500 and body["code"].startswith("card_life.")
        for _, s, body in lost
    ), lost

    with srv.client() as c:
        now = c.get(f"{CARDS}/{card_id}").json()
    events = events_of(srv, card_id)
    # The history is one chain of transitions, and it ends in the card's state.
    assert [e["seq"] for e in events] == sorted({e["seq"] for e in events})
    assert events[0]["from_state"] is None
    for prev, nxt in itertools.pairwise(events):
        assert nxt["from_state"] == prev["to_state"], (prev, nxt)
    assert events[-1]["to_state"] == now["state"], (events[-1], now)
    # Exactly the accepted requests became events, kind for kind.
    new = events[events_before:]
    assert sorted(e["kind"] for e in new) == sorted(k for k, _ in won), (new, won)
    # Each accepted answer showed the state its own event led to.
    for k, body in won:
        if k in ("suspend", "lift", "return"):
            assert body["card_id"] == card_id and body["state"] in {e["to_state"] for e in new}
        else:  # a reissue answers with the new card, applied for, replacing this one
            assert body["replaces"] == card_id and body["state"] == "applied", body
    # Every accepted request sent again with its key, all at once: the first answer, replayed,
    # and nothing happens again.
    accepted = [i for i, (_, st, _) in enumerate(outcomes) if st in (200, 201)]
    gate = threading.Barrier(len(accepted))
    replays.clear()
    with ThreadPoolExecutor(max_workers=len(accepted)) as pool:
        again = list(pool.map(send, accepted, timeout=REQUEST_TIMEOUT * 3))
    assert [(k, st, body) for k, st, body in again] == [outcomes[i] for i in accepted], again
    assert all(replays.values()) and len(replays) == len(accepted), replays
    assert len(events_of(srv, card_id)) == len(events)

    # At most one card in the holder's hands and one on its way.
    cards = resident_card(srv, holder.resident_code)
    assert sum(c["state"] in HOLDING for c in cards) <= 1, cards
    assert sum(c["state"] in ON_ITS_WAY for c in cards) <= 1, cards
    assert sum(k == "reissue" for k, _ in won) <= 1 and sum(k == "return" for k, _ in won) <= 1
    # No certificate of a card that is not active answers good.
    with ocsp_for(srv) as o:
        statuses = [o.check(cert) for cert in certs]
    if now["state"] == "active":
        assert all(is_good(s) for s in statuses), statuses
    elif now["state"] == "suspended":
        assert all(is_revoked(s, x509.ReasonFlags.certificate_hold) for s in statuses), statuses
    else:
        assert now["state"] in ("reissued", "returned"), now
        assert all(
            is_revoked(s) and s.reason is not x509.ReasonFlags.certificate_hold for s in statuses
        ), statuses
    print(
        f"[{backend_of(srv)}] {len(kinds)} racing requests: "
        f"{len(won)} accepted ({', '.join(k for k, _ in won)}), final state {now['state']}"
    )


def concurrent_lifecycle_on_one_card(server: Server) -> None:
    a, b = seeded(server)
    rng = random.Random(3)
    # Card B: suspensions and lifts only, so that it flips many times.
    flips = ["suspend"] * 10 + ["lift"] * 10
    rng.shuffle(flips)
    race_lifecycle(server, b, flips)
    # Card A: the four procedures at once.
    mixed = ["suspend", "lift", "reissue", "return"] * 5
    rng.shuffle(mixed)
    race_lifecycle(server, a, mixed)
    assert_clean_log(server, pins_of(a, b))


# -- 4. a worker killed mid-burst of handovers ----------------------------------------------------

HANDOVERS = 12


@dataclass
class Job:
    resident_code: str
    birth: dt.date
    auth_pin: str = field(repr=False)
    signature_pin: str = field(repr=False)
    keys: dict[str, str] = field(default_factory=dict)
    card_id: str | None = None
    answers: dict[str, tuple[int, dict[str, Any], bool]] = field(default_factory=dict)
    error: str | None = None


def run_job(srv: Server, job: Job) -> None:
    """apply → produce → hand over, each with its own idempotency key; stops at a lost
    connection (job.error). Answers are kept per step."""
    steps: list[tuple[str, Callable[[], tuple[str, dict[str, Any]]]]] = [
        ("apply", lambda: (CARDS, {"resident_code": job.resident_code, "channel": "counter"})),
        ("produce", lambda: (f"{CARDS}/{job.card_id}/production", {})),
        (
            "handover",
            lambda: (
                f"{CARDS}/{job.card_id}/handover",
                {
                    "identity_documents": DOCS,
                    "auth_pin": job.auth_pin,
                    "signature_pin": job.signature_pin,
                },
            ),
        ),
    ]
    job.error = None
    try:
        with fresh_client(srv) as c:
            for step, request in steps:
                path, body = request()
                r = post(c, path, body, key=job.keys[step])
                answer = r.json()
                replayed = r.headers.get("Idempotent-Replayed") == "true"
                assert r.status_code in (200, 201), (step, r.status_code, answer)
                if step in job.answers:  # answered before: a retry replays that answer
                    first = job.answers[step]
                    assert replayed and (r.status_code, answer) == first[:2], (step, answer)
                else:
                    job.answers[step] = (r.status_code, answer, replayed)
                if step == "apply":
                    assert job.card_id in (None, answer["card_id"]), (job.card_id, answer)
                    job.card_id = answer["card_id"]
    except httpx.TransportError as e:
        job.error = f"{type(e).__name__}: {e}"


def check_never_half(
    srv: Server, o: Ocsp, jobs: list[Job], *, settled: bool
) -> tuple[set[str], dict[str, int]]:
    """Each card is active with its chip file and two good certificates, or (not settled yet)
    applied or produced with no chip. Returns the chip ids in use and the count per state."""
    in_use: set[str] = set()
    states: dict[str, int] = {}
    for job in jobs:
        cards = resident_card(srv, job.resident_code)
        assert len(cards) <= 1, cards
        state = cards[0]["state"] if cards else "none"
        states[state] = states.get(state, 0) + 1
        if not cards:
            assert not settled and "apply" not in job.answers, job
            continue
        card = cards[0]
        if job.card_id is not None:
            assert card["card_id"] == job.card_id
        kinds = [e["kind"] for e in events_of(srv, card["card_id"])]
        if card["state"] == "active":
            assert kinds == ["apply", "produce", "hand_over"], kinds
            chip_id = card["chip_id"]
            assert chip_id and chip_store(srv).exists(chip_id), card
            if "handover" in job.answers:  # the answer named the chip the card holds
                assert job.answers["handover"][1]["chip_id"] == chip_id, (job.answers, card)
            chip = load_chip(srv, chip_id)
            for kind in (KeyKind.AUTHENTICATION, KeyKind.SIGNATURE):
                assert chip.has_certificate(kind), (chip_id, kind)
                assert is_good(o.check(chip.certificate(kind))), (chip_id, kind)
            in_use.add(chip_id)
        else:
            assert not settled, card
            assert card["state"] in ON_ITS_WAY and card["chip_id"] is None, card
            assert "handover" not in job.answers, (job.answers, card)
    return in_use, states


def a_worker_killed_mid_handovers(server: Server) -> None:
    kana = "コウフ"
    people = [newcomer(kana, i) for i in range(HANDOVERS)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(lambda p: move_in(server, p), people, timeout=REQUEST_TIMEOUT * 3))
    jobs = []
    for rc, p in zip(codes, people, strict=True):
        birth = dt.date.fromisoformat(p["birth_date"])
        keys = {s: f"{s}-{uuid.uuid4()}" for s in ("apply", "produce", "handover")}
        jobs.append(Job(rc, birth, random_auth_pin(birth), random_signature_pin(birth), keys))
    pins = pins_of(*jobs)
    seeded_chips = {h.chip_id for h in seeded(server)}

    victim = server.workers()[0]
    lock = threading.Lock()
    handed = 0

    def run(job: Job) -> None:
        nonlocal handed
        run_job(server, job)
        with lock:
            handed += "handover" in job.answers

    with ThreadPoolExecutor(max_workers=HANDOVERS) as pool:
        futures = [pool.submit(run, j) for j in jobs]
        _wait_for(lambda: handed >= 2, 120, "the first handovers")
        os.kill(victim, signal.SIGKILL)
        handed_at_kill = handed
        for f in futures:
            f.result(timeout=REQUEST_TIMEOUT * 3)
    _wait_for(lambda: victim not in server.workers(), 10, "the killed worker to be gone")
    lost = [j for j in jobs if j.error is not None]
    print(
        f"[{backend_of(server)}] {len(lost)} of {HANDOVERS} "
        f"jobs lost their connection when worker {victim} was killed "
        f"({handed_at_kill} handovers answered before)"
    )
    _wait_for(lambda: len(server.workers()) == 2, 60, "the worker to be replaced")

    with ocsp_for(server) as o:
        # At the crash point: never half.
        _, states = check_never_half(server, o, jobs, settled=False)
        print(f"[{backend_of(server)}] cards at the crash point: {states}")
        # Every job again with its own keys: answered ones replay, the others complete.
        deadline = time.monotonic() + 120
        pending = list(jobs)
        while pending:
            assert time.monotonic() < deadline, [j.error for j in pending]
            for job in list(pending):
                run_job(server, job)
                if job.error is None:
                    pending.remove(job)
            if pending:
                time.sleep(0.5)
        in_use, states = check_never_half(server, o, jobs, settled=True)
        assert states == {"active": HANDOVERS}, states
        assert len(in_use) == HANDOVERS
        # A chip file no card names (a handover that died before its commit) has no
        # certificate anyone can rely on.
        store = chip_store(server)
        orphans = set(store.chip_ids()) - in_use - seeded_chips
        for chip_id in orphans:
            chip = load_chip(server, chip_id)
            for kind in (KeyKind.AUTHENTICATION, KeyKind.SIGNATURE):
                if chip.has_certificate(kind):
                    status = o.check(chip.certificate(kind))
                    assert not is_good(status), (chip_id, kind, status)
        if orphans:
            print(f"{len(orphans)} orphan chip file(s), none with a good certificate")

        # Two counters at once: 6 applications for one person, then 6 handovers of the card,
        # each with its own key: one wins each time, and the losers leave no chip behind.
        person = newcomer(kana, HANDOVERS)
        rc = move_in(server, person)
        birth = dt.date.fromisoformat(person["birth_date"])
        race = [random_auth_pin(birth), random_signature_pin(birth)]
        pins += race
        applied = race_posts(server, [(CARDS, {"resident_code": rc, "channel": "counter"})] * 6)
        assert sorted(st for st, _ in applied) == [201] + [409] * 5, applied
        assert {b["code"] for st, b in applied if st == 409} == {"card_life.application_pending"}
        card_id = next(b["card_id"] for st, b in applied if st == 201)
        with server.client() as c:
            assert post(c, f"{CARDS}/{card_id}/production").status_code == 200
        chips_before = set(store.chip_ids())
        body = {"identity_documents": DOCS, "auth_pin": race[0], "signature_pin": race[1]}
        counters = race_posts(server, [(f"{CARDS}/{card_id}/handover", body)] * 6)
        assert sorted(st for st, _ in counters) == [200] + [409] * 5, counters
        winner = next(b for st, b in counters if st == 200)
        assert set(store.chip_ids()) - chips_before == {winner["chip_id"]}
        chip = load_chip(server, winner["chip_id"])
        assert all(is_good(o.check(chip.certificate(k))) for k in list(KeyKind))
        assert [e["kind"] for e in events_of(server, card_id)] == ["apply", "produce", "hand_over"]
    assert_clean_log(server, pins)


def race_posts(srv: Server, requests: list[tuple[str, dict[str, Any]]]) -> list[tuple[int, Any]]:
    """POST all at once, each on its own connection with its own idempotency key."""
    gate = threading.Barrier(len(requests))

    def send(request: tuple[str, dict[str, Any]]) -> tuple[int, Any]:
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait(timeout=30)
        with fresh_client(srv) as c:
            r = post(c, *request)
        return r.status_code, r.json()

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(send, requests, timeout=REQUEST_TIMEOUT * 3))


# -- 5. hostile input -----------------------------------------------------------------------------

MB = 1024 * 1024


def assert_problem(r: httpx.Response, what: str) -> None:
    assert 400 <= r.status_code < 500, (what, r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith(PROBLEM), (what, r.headers, r.text[:200])
    body = r.json()
    assert body["code"] and body["status"] == r.status_code, (what, body)


def assert_malformed(r: httpx.Response, what: str) -> None:
    if r.status_code != 200:
        assert_problem(r, what)
        return
    assert r.headers["content-type"] == "application/ocsp-response", (what, r.headers)
    parsed = x509_ocsp.load_der_ocsp_response(r.content)
    assert parsed.response_status is x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST, what


def hostile_input_on_the_new_routes(server: Server) -> None:
    holders = seeded(server)
    chip = load_chip(server, holders[0].chip_id)
    cert = chip.certificate(KeyKind.AUTHENTICATION)
    trust = trust_of(server)
    rc = move_in(server, newcomer("テキイ", 3))
    birth = dt.date.fromisoformat(newcomer("テキイ", 3)["birth_date"])
    good_auth, good_sig = random_auth_pin(birth), random_signature_pin(birth)
    bad_pins = {  # wrong format, guessable, too long, not a string
        "12345": "ZQ7K3M9P",
        "8317": "abcdef1234",
        "4823": "ZQ7K3M9P2X8R4T6W5Y",
        "4C93": "ZQ7K3M9P",
        birth.strftime("%m%d"): "ZQ7K3M9P",
        "7391": "PASSWORD1",
    }
    used = [good_auth, good_sig, "ZQ7K3M9P", "ZQ7K3M9P2X8R4T6W5Y", "abcdef1234"]
    used += [p for h in holders for p in (h.auth_pin, h.signature_pin)]
    junk = os.urandom(MB)

    with fresh_client(server) as c:
        r = post(c, CARDS, {"resident_code": rc, "channel": "counter"})
        assert r.status_code == 201, r.text
        card_id = r.json()["card_id"]
        assert post(c, f"{CARDS}/{card_id}/production").status_code == 200

        # The card routes: PINs refused are never echoed; 1 MB bodies; junk ids.
        for auth, sig in bad_pins.items():
            r = post(
                c,
                f"{CARDS}/{card_id}/handover",
                {"identity_documents": DOCS, "auth_pin": auth, "signature_pin": sig},
            )
            assert_problem(r, f"handover with PINs {auth!r}")
            assert auth not in r.text and sig not in r.text, r.text
        r = post(
            c,
            f"{CARDS}/{card_id}/handover",
            {"identity_documents": DOCS, "auth_pin": 4823, "signature_pin": ["ZQ7K3M9P"]},
        )
        assert_problem(r, "PINs of the wrong type")
        assert "4823" not in r.text and "ZQ7K3M9P" not in r.text, r.text
        for path in (
            CARDS,
            f"{CARDS}/{card_id}/handover",
            f"{CARDS}/{card_id}/lift",
            f"{CARDS}/{card_id}/suspension",
            "/api/login",
            "/api/jlis/four-items",
        ):
            r = c.post(path, content=junk, headers={"Idempotency-Key": f"j-{uuid.uuid4()}"})
            assert_problem(r, f"1 MB of junk to {path}")
            r = c.post(
                path,
                json={"auth_pin": "7" * MB, "nonce": "A" * MB, "identity_documents": ["x" * MB]},
                headers={"Idempotency-Key": f"j-{uuid.uuid4()}"},
            )
            assert_problem(r, f"1 MB JSON to {path}")
        for bad_id in ("zz", "0" * 16, "../../etc/passwd", "%00", "x" * 200):
            r = post(c, f"{CARDS}/{bad_id}/suspension")
            assert_problem(r, f"suspension of {bad_id!r}")
            r = c.get(f"{CARDS}/{bad_id}/events")
            assert_problem(r, f"events of {bad_id!r}")

        # Card login: invalid base64, wrong shapes, huge values.
        nonce = challenge(c)
        signature = b64(chip.authenticate(unb64url(nonce), holders[0].auth_pin))
        certificate = b64(der(cert))
        bodies: list[Any] = [
            {"nonce": "!!!!", "certificate": certificate, "signature": signature},
            {"nonce": "A", "certificate": certificate, "signature": signature},
            {"nonce": "====", "certificate": certificate, "signature": signature},
            {"nonce": nonce, "certificate": "@@@@", "signature": signature},
            {"nonce": nonce, "certificate": certificate, "signature": "a b c"},
            {"nonce": nonce, "certificate": "A" * 12000, "signature": signature},
            {"nonce": nonce, "certificate": "\u00e9" * 10, "signature": signature},
            {"nonce": nonce, "certificate": certificate},
            {"nonce": nonce, "certificate": certificate, "signature": signature, "pin": "1"},
            {"nonce": [nonce], "certificate": certificate, "signature": signature},
            {"nonce": nonce, "certificate": b64(os.urandom(600)), "signature": signature},
            [nonce, certificate, signature],
            None,
            "just a string",
        ]
        for body in bodies:
            r = c.post("/api/login", json=body)
            assert_problem(r, f"login with {str(body)[:80]}")
        for raw in (b"", b"{", b"\x00\xff" * 100, b'{"nonce": "' + b"A" * MB + b'"}'):
            r = c.post("/api/login", content=raw, headers={"Content-Type": "application/json"})
            assert_problem(r, f"login with raw {raw[:20]!r}")
        r = c.post(
            "/api/jlis/four-items",
            json={"signature_serial": "ZZ", "consent": "@@", "certificate": "A", "signature": "="},
        )
        assert_problem(r, "four-items with junk")
        for serial in ("0" * 40, "F" * 40, f"{cert.serial_number:X}"):
            r = c.post(
                "/api/jlis/four-items",
                json={
                    "signature_serial": serial,
                    "consent": b64(os.urandom(300)),
                    "certificate": b64(os.urandom(900)),
                    "signature": b64(os.urandom(256)),
                },
            )
            assert_problem(r, f"four-items with random bytes for {serial}")

        # OCSP: POST junk and 1 MB, GET with garbage; without a token, 401.
        request_der = build_request(cert, trust.issuing, None)
        for raw in (b"", b"\x30\x03\x02\x01\x01", os.urandom(300), junk, request_der[:-3]):
            r = c.post(
                "/api/jlis/ocsp", content=raw, headers={"Content-Type": "application/ocsp-request"}
            )
            assert_malformed(r, f"OCSP POST of {raw[:10]!r}")
        r = c.post("/api/jlis/ocsp", json={"a": 1})
        assert_malformed(r, "OCSP POST of JSON")
        garbage = [
            "%%%",
            "AAAA",
            "!!!!",
            "a/b/c",
            "%00",
            "%2525%2541",
            "..%2F..%2Fetc%2Fpasswd",
            "x" * 12000,
            base64.b64encode(os.urandom(200)).decode(),
            base64.b64encode(request_der[:-3]).decode(),
            base64.urlsafe_b64encode(b"\xff" * 90).decode(),
        ]
        for g in garbage:
            r = c.get(f"/api/jlis/ocsp/{g}")
            assert_malformed(r, f"OCSP GET {g[:30]!r}")
        with httpx.Client(
            base_url=server.base_url, timeout=REQUEST_TIMEOUT, trust_env=False
        ) as anon:
            r = anon.post("/api/jlis/ocsp", content=request_der)
            assert_problem(r, "OCSP without a token")
            assert r.status_code == 401
            r = anon.get(f"/api/jlis/ocsp/{base64.b64encode(request_der).decode()}")
            assert_problem(r, "OCSP GET without a token")

        # Still serving: the real request by GET and POST, then the valid handover.
        encoded = base64.b64encode(request_der).decode().replace("/", "%2F").replace("+", "%2B")
        r = c.get(f"/api/jlis/ocsp/{encoded}")
        assert r.status_code == 200
        answer = x509_ocsp.load_der_ocsp_response(r.content)
        assert answer.response_status is x509_ocsp.OCSPResponseStatus.SUCCESSFUL
        assert answer.certificate_status is x509_ocsp.OCSPCertStatus.GOOD
        r = post(
            c,
            f"{CARDS}/{card_id}/handover",
            {"identity_documents": DOCS, "auth_pin": good_auth, "signature_pin": good_sig},
        )
        assert r.status_code == 200 and r.json()["state"] == "active", r.text
        assert good_sig not in r.text and f'"{good_auth}"' not in r.text, r.text
    assert_clean_log(server, used)


# -- 6. a face update racing a move ---------------------------------------------------------------


DELAYS = (0.0, 0.05, 0.1, 0.2)  # how long after the face update the move is sent


def face_update_racing_a_move(server: Server) -> None:
    """追記 at the counter while the holder's next move is recorded: whichever commits first,
    no signature certificate that OCSP calls good may carry an address the register has left."""
    a, _ = seeded(server)
    resident = f"{M}/residents/{a.resident_code}"
    card = active_card(server, a.resident_code)
    seen: list[x509.Certificate] = [load_chip(server, a.chip_id).certificate(KeyKind.SIGNATURE)]
    stale: list[tuple[int, str, str]] = []

    def move(c: httpx.Client, address: str) -> httpx.Response:
        return post(c, f"{resident}/moves", {"address": address})

    with ocsp_for(server) as o:
        for n in range(len(DELAYS)):
            with server.client() as c:  # the face is now out of date
                assert move(c, f"東京都新宿区北新宿一丁目{n + 1}番1号").status_code == 200
            gate = threading.Barrier(2)

            def face(gate: threading.Barrier = gate) -> httpx.Response:
                gate.wait(timeout=30)
                with fresh_client(server) as c:
                    return post(
                        c, f"{CARDS}/{card['card_id']}/face-update", {"identity_documents": DOCS}
                    )

            def next_move(n: int = n, gate: threading.Barrier = gate) -> httpx.Response:
                gate.wait(timeout=30)
                time.sleep(DELAYS[n % len(DELAYS)])  # let the face update start first
                with fresh_client(server) as c:
                    return move(c, f"東京都新宿区北新宿二丁目{n + 1}番2号")

            with ThreadPoolExecutor(max_workers=2) as pool:
                f_face, f_move = pool.submit(face), pool.submit(next_move)
                r_face, r_move = f_face.result(timeout=120), f_move.result(timeout=120)
            assert r_move.status_code == 200, r_move.text
            assert r_face.status_code == 200 or r_face.json()["code"].startswith("card_life."), (
                r_face.status_code,
                r_face.text,
            )
            time.sleep(1.2)  # a deferred sync would have caught up by now (0.5 s loop)
            with server.client() as c:
                registered = c.get(resident).json()["address"]
            seen.append(load_chip(server, a.chip_id).certificate(KeyKind.SIGNATURE))
            for cert in {c.serial_number: c for c in seen}.values():
                items = four_items_of(cert)
                assert items is not None
                if is_good(o.check(cert)) and items.address != registered:
                    stale.append((n, items.address, registered))
    assert not stale, f"a good signature certificate with an address the register has left: {stale}"
    assert_clean_log(server, pins_of(a))


# -- the tests: one server start (~15 s) serves two sections --------------------------------------


def test_revocation_reaches_ocsp_at_once(server: Server) -> None:
    """Sections 6 and 1, on holder A (then B)."""
    face_update_racing_a_move(server)
    revocation_in_the_first_ocsp_answer(server)


def test_concurrent_logins_and_lifecycle(server: Server) -> None:
    """Sections 2 and 3: logins with both seeded chips, then their cards raced."""
    concurrent_logins_and_replays(server)
    concurrent_lifecycle_on_one_card(server)


def test_killed_worker_then_hostile_input(server: Server) -> None:
    """Sections 4 and 5: handovers through a SIGKILL, then hostile input to the survivors."""
    a_worker_killed_mid_handovers(server)
    hostile_input_on_the_new_routes(server)
