"""JPKI: OCSP responses and login verifications per second, in process, on the imported register.

Set-up (not timed): `holders` residents of the imported register get a signature and a
user-authentication certificate from the platform's CA, for RSA-2048 card keys (a pool of
`KEY_POOL` keys stands in for the chips: the responder and the verifier never look at whose key
it is); one holder in ten has moved (the mirror revoked their signature certificate) and one in
twenty has reported a loss (both on hold).

- **OCSP.** `platform.pki.ocsp(request)` for `requests` DER requests, each for a random holder's
  certificate with a fresh nonce: parse, look the serial up in the certificate table, sign the
  response (P-256, delegated signer). Every response is checked afterwards (signature, serial,
  nonce, and good / revoked / on hold as set up).
- **Login.** The challenge–response verification a portal or kiosk server runs for each login:
  a fresh challenge is consumed, the chain checked, the user-authentication certificate's status
  asked of OCSP (in process), the card's RSA signature over the challenge verified. Challenges
  are issued and signed by the cards before the clock starts.

Floor for both: **bare signature verifications** — RSA-2048 PKCS#1 v1.5 / SHA-256 verifications
of signatures made by the same keys (`cryptography`, one call each), best of three runs, in the
same run. It is the least a relying party must do per signature; the ratio says how many bare
verifications one OCSP answer or one login costs.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp

from mynumber.jlis.ca import FourItems, RevocationEvent
from mynumber.platform import Platform

from .backends import Backend
from .common import Result, err, progress

__all__ = ["PkiRun", "pki_results", "run_pki"]

KEY_POOL = 16
MOVED_EVERY = 10
LOST_EVERY = 20


@dataclass
class Holder:
    resident_code: str
    signature: x509.Certificate
    auth: x509.Certificate
    key: rsa.RSAPrivateKey
    expect_signature: str  # good | revoked | on_hold
    expect_auth: str


@dataclass
class PkiRun:
    backend: str
    holders: int
    requests: int
    bare_seconds: list[float] = field(default_factory=list)
    ocsp_seconds: float = 0.0
    login_seconds: float | None = None
    logins: int = 0
    wrong: list[str] = field(default_factory=list)

    @property
    def bare_best(self) -> float:
        return min(self.bare_seconds)

    def as_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "holders": self.holders,
            "requests": self.requests,
            "bare_verify_seconds_runs": self.bare_seconds,
            "ocsp_seconds": self.ocsp_seconds,
            "login_seconds": self.login_seconds,
            "logins": self.logins,
            "wrong": self.wrong,
        }


def _items(p: Platform, resident_code: str) -> tuple[FourItems, dt.date]:
    from sqlalchemy import select

    from mynumber.jlis import models as m

    t = m.identities.c
    with p.jlis.engine.connect() as conn:
        row = conn.execute(
            select(t.family_name, t.given_name, t.address, t.birth_date, t.sex).where(
                t.resident_code == resident_code
            )
        ).one()
    name = f"{row.family_name} {row.given_name}".strip()
    return FourItems(name, row.address, row.birth_date, row.sex), row.birth_date


def _set_up(p: Platform, resident_codes: Sequence[str], rng: random.Random) -> list[Holder]:
    with progress() as bar:
        task = bar.add_task(f"card keys (RSA-2048 × {KEY_POOL})", total=KEY_POOL)
        keys = []
        for _ in range(KEY_POOL):
            keys.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
            bar.advance(task)
        task = bar.add_task(f"certificates for {len(resident_codes):,} holders", total=None)
        today = p.clock.today()
        holders: list[Holder] = []
        for i, rc in enumerate(resident_codes):
            key = keys[i % KEY_POOL]
            items, birth = _items(p, rc)
            if dt.date(birth.year + 18, birth.month, min(birth.day, 28)) > today:
                continue  # certificates for adults only, to keep the set-up simple
            sig = p.pki.issue("signature", rc, key.public_key(), items, birth, today)
            auth = p.pki.issue("authentication", rc, key.public_key(), None, birth, today)
            expect_sig = expect_auth = "good"
            if i % LOST_EVERY == 0:
                p.pki.revoke_for_event(rc, RevocationEvent.SUSPENSION)
                expect_sig = expect_auth = "on_hold"
            elif i % MOVED_EVERY == 0:
                p.pki.revoke_for_event(rc, RevocationEvent.ADDRESS_CHANGE)
                expect_sig = "revoked"
            holders.append(Holder(rc, sig, auth, key, expect_sig, expect_auth))
            bar.update(task, completed=len(holders))
    rng.shuffle(holders)
    return holders


def _bare_verify(pairs: Sequence[tuple[rsa.RSAPublicKey, bytes, bytes]]) -> float:
    t0 = time.perf_counter()
    for public, signature, data in pairs:
        public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    return time.perf_counter() - t0


def _status_of(resp: ocsp.OCSPResponse) -> str:
    if resp.certificate_status is ocsp.OCSPCertStatus.GOOD:
        return "good"
    if resp.certificate_status is ocsp.OCSPCertStatus.REVOKED:
        hold = resp.revocation_reason is x509.ReasonFlags.certificate_hold
        return "on_hold" if hold else "revoked"
    return "unknown"


def _check_ocsp(
    run: PkiRun,
    issuer: x509.Certificate,
    asked: Sequence[tuple[x509.Certificate, str, bytes]],
    answers: Sequence[bytes],
) -> None:
    for (cert, expect, nonce), der in zip(asked, answers, strict=True):
        resp = ocsp.load_der_ocsp_response(der)
        if resp.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            run.wrong.append(f"OCSP {cert.serial_number:x}: {resp.response_status.name}")
            continue
        signer = resp.certificates[0]
        try:
            signer.verify_directly_issued_by(issuer)
            key = signer.public_key()
            assert isinstance(key, ec.EllipticCurvePublicKey)
            key.verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))
        except Exception as exc:  # a wrong answer, reported, not a crash of the benchmark
            run.wrong.append(f"OCSP {cert.serial_number:x}: bad signature ({type(exc).__name__})")
            continue
        got_nonce = resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        if resp.serial_number != cert.serial_number or got_nonce != nonce:
            run.wrong.append(f"OCSP {cert.serial_number:x}: answered another request")
        elif _status_of(resp) != expect:
            run.wrong.append(f"OCSP {cert.serial_number:x}: {_status_of(resp)}, expected {expect}")


LoginBench = Callable[
    [Platform, Sequence[tuple[x509.Certificate, rsa.RSAPrivateKey, str]]],
    tuple[float, int, list[str]],
]
"""(platform, [(auth certificate, card key, expected status)]) → (seconds, logins, wrong)."""


def run_pki(
    backend: Backend,
    resident_codes: Sequence[str],
    requests: int,
    seed: int,
    login: LoginBench | None = None,
) -> PkiRun:
    p = backend.platform
    rng = random.Random(seed)
    holders = _set_up(p, resident_codes, rng)
    run = PkiRun(backend.name, len(holders), requests)
    if not holders:
        run.wrong.append("no adult holder in the register: nothing measured")
        return run
    issuer = p.pki.ca.issuing_cert

    # Floor: bare RSA verifications of card signatures (best of three).
    pairs = []
    for i in range(requests):
        h = holders[i % len(holders)]
        data = secrets.token_bytes(32)
        pairs.append(
            (h.key.public_key(), h.key.sign(data, padding.PKCS1v15(), hashes.SHA256()), data)
        )
    for _ in range(3):
        run.bare_seconds.append(_bare_verify(pairs))

    # OCSP in process.
    asked: list[tuple[x509.Certificate, str, bytes]] = []
    ders: list[bytes] = []
    for _ in range(requests):
        h = rng.choice(holders)
        cert, expect = (
            (h.signature, h.expect_signature) if rng.random() < 0.5 else (h.auth, h.expect_auth)
        )
        nonce = secrets.token_bytes(16)
        req = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(cert, issuer, hashes.SHA256())
            .add_extension(x509.OCSPNonce(nonce), critical=False)
            .build()
        )
        asked.append((cert, expect, nonce))
        ders.append(req.public_bytes(serialization.Encoding.DER))
    for der in ders[:200]:  # warm-up: connections, statement caches, the signer certificate
        p.pki.ocsp(der)
    answers: list[bytes] = []
    with progress() as bar:
        task = bar.add_task(f"{backend.name}: OCSP × {requests:,}", total=requests)
        t0 = time.perf_counter()
        for i, der in enumerate(ders):
            answers.append(p.pki.ocsp(der))
            if i % 500 == 0:
                bar.update(task, completed=i)
        run.ocsp_seconds = time.perf_counter() - t0
        bar.update(task, completed=requests)
    _check_ocsp(run, issuer, asked, answers)

    if login is not None:
        chosen = [
            (h.auth, h.key, h.expect_auth) for h in (rng.choice(holders) for _ in range(requests))
        ]
        run.login_seconds, run.logins, wrong = login(p, chosen)
        run.wrong += wrong
    if run.wrong:
        err.print(f"[red]{backend.name}: {len(run.wrong)} wrong PKI answers")
    return run


def pki_results(run: PkiRun) -> list[Result]:
    bare_rate = run.requests / run.bare_best
    out = [
        Result(
            benchmark="OCSP responses (in process)",
            backend=run.backend,
            value=run.requests / run.ocsp_seconds if run.ocsp_seconds else 0.0,
            unit="/s",
            count=run.requests,
            seconds=run.ocsp_seconds,
            baseline="bare RSA-2048 signature verifications",
            baseline_value=bare_rate,
            baseline_seconds=run.bare_best,
            notes=[
                f"{run.holders:,} holders' certificates; 1 in {MOVED_EVERY} moved, 1 in {LOST_EVERY} on hold"
            ],
        )
    ]
    if run.login_seconds:
        out.append(
            Result(
                benchmark="login verifications (in process)",
                backend=run.backend,
                value=run.logins / run.login_seconds,
                unit="/s",
                count=run.logins,
                seconds=run.login_seconds,
                baseline="bare RSA-2048 signature verifications",
                baseline_value=bare_rate,
                baseline_seconds=run.bare_best,
            )
        )
    return out


def login_bench(
    p: Platform, chosen: Sequence[tuple[x509.Certificate, rsa.RSAPrivateKey, str]]
) -> tuple[float, int, list[str]]:
    """The platform's own card login (`platform.login`, as ``POST /api/login`` runs it):
    challenges in J-LIS's database, chain, OCSP status in process, the RSA signature, the
    serial mapped to the person, a session sealed. Challenges are issued and answered by the
    cards first; only the server's verification is timed."""
    from mynumber.errors import MynumberError

    answers: list[tuple[bytes, x509.Certificate, bytes, str]] = []
    with progress() as bar:
        task = bar.add_task("login challenges, answered by the cards", total=len(chosen))
        for cert, key, expect in chosen:
            nonce = p.login.challenge().nonce
            answers.append(
                (nonce, cert, key.sign(nonce, padding.PKCS1v15(), hashes.SHA256()), expect)
            )
            bar.advance(task)
    wrong: list[str] = []
    outcomes: list[str] = []
    with progress() as bar:
        task = bar.add_task(f"logins × {len(answers):,}", total=len(answers))
        t0 = time.perf_counter()
        for i, (nonce, cert, signature, _expect) in enumerate(answers):
            try:
                p.login.login(nonce, cert, signature)
                outcomes.append("good")
            except MynumberError as exc:
                outcomes.append(exc.code)
            if i % 500 == 0:
                bar.update(task, completed=i)
        seconds = time.perf_counter() - t0
        bar.update(task, completed=len(answers))
    for (_n, cert, _s, expect), got in zip(answers, outcomes, strict=True):
        if (expect == "good") != (got == "good"):
            wrong.append(f"login with {cert.serial_number:x}: {got}, expected {expect}")
    return seconds, len(answers), wrong
