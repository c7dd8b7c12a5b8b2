"""Helpers for the relying-party, login and verifier tests: real chips with real certificates
from the platform's CA, a verifier's token, and the platform served over real HTTP."""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from cryptography import x509

from conftest import MUNI
from mynumber.api.app import create_app
from mynumber.api.auth import TokenStore
from mynumber.card import CardFace, Chip, KeyKind, PinKdf
from mynumber.clock import FixedClock
from mynumber.jlis.ca import FourItems
from mynumber.municipality.domain import EventKind
from mynumber.platform import Platform
from mynumber.relying import Trust

KDF = PinKdf(n=2**4, r=1, p=1)
AUTH_PIN, SIG_PIN = "3917", "K7QX9M"
BIRTH = dt.date(1985, 6, 15)


@dataclass
class Holder:
    resident_code: str
    chip: Chip
    items: FourItems

    @property
    def signature_cert(self) -> x509.Certificate:
        return self.chip.certificate(KeyKind.SIGNATURE)

    @property
    def auth_cert(self) -> x509.Certificate:
        return self.chip.certificate(KeyKind.AUTHENTICATION)

    def sign(self, data: bytes) -> bytes:
        return self.chip.sign(KeyKind.SIGNATURE, data, SIG_PIN)

    def authenticate(self, nonce: bytes) -> bytes:
        return self.chip.authenticate(nonce, AUTH_PIN)


def make_holder(
    p: Platform,
    clock: FixedClock,
    *,
    given: str = "一郎",
    address: str = "東京都新宿区西新宿二丁目8番1号",
    chip_id: str = "chip-a",
) -> Holder:
    """A resident with a card chip carrying both certificates, issued by the platform's CA."""
    payload: dict[str, Any] = {
        "family_name": "髙橋",
        "given_name": given,
        "family_name_kana": "タカハシ",
        "given_name_kana": "イチロウ",
        "birth_date": BIRTH.isoformat(),
        "sex": "1",
        "address": address,
    }
    rc: str = p.municipality.record(MUNI, EventKind.MOVE_IN, payload)[1]["resident_code"]
    items = FourItems(f"髙橋 {given}", address, BIRTH, 1)
    face = CardFace(items.name, address, BIRTH, 1, dt.date(2036, 6, 15))
    chip = Chip.create(
        chip_id, auth_pin=AUTH_PIN, signature_pin=SIG_PIN, clock=clock, face=face, kdf=KDF
    )
    today = clock.today()
    for kind, pki_kind, four in (
        (KeyKind.SIGNATURE, "signature", items),
        (KeyKind.AUTHENTICATION, "authentication", None),
    ):
        cert = p.pki.issue(
            pki_kind, rc, chip.certificate_request(kind), four, BIRTH, today, chip_id=chip_id
        )
        chip.install_certificate(kind, cert)
    return Holder(rc, chip, items)


def trust_of(p: Platform) -> Trust:
    return Trust.from_pem(p.pki.chain_pem(), root=p.pki.ca.root_cert)


def verifier_token(
    p: Platform, kinds: tuple[str, ...] = ("signature", "auth"), scopes: tuple[str, ...] = ()
) -> tuple[str, str]:
    """(verifier id, token) of a newly registered verifier with `scopes` (default: both)."""
    verifier = p.verifiers.register("テスト銀行", kinds)
    token = TokenStore(p.settings.data_dir / "tokens.json").create(
        "bank", list(scopes or ("jlis:verify", "jlis:four-items")), verifier=verifier.id
    )
    return verifier.id, token


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serve(p: Platform) -> Iterator[str]:
    """The platform's app on a real socket (uvicorn in a thread); yields the base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(p, sync_interval=None), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
