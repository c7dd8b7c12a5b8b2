"""Bank eKYC with the JPKI signature certificate (犯収法施行規則 6条1項1号ワ), end to end.

    .venv/bin/python examples/bank_ekyc.py            # its own server, in a temporary directory
    .venv/bin/python examples/bank_ekyc.py --keep     # … and keep that directory afterwards

What happens, each step over the real HTTP API of a real `mynumber serve` (or the CLI):

1. A synthetic municipality is seeded with one card holder (`serve --seed-cards 1`): the card was
   applied for, produced and handed over at the counter; its chip file holds the two key pairs.
2. The bank registers with J-LIS as a signature verifier (`mynumber verifier register`).
3. The customer signs an account-opening application with the card's signature key (signature
   PIN); the bank verifies it with the relying-party SDK — chain to the JPKI root, validity,
   revocation over OCSP — and records the four items (name, address, birth date, sex) the
   certificate carries, in the bank's own database.
4. The customer moves (転居, recorded by the municipality): J-LIS revokes the signature
   certificate by itself.
5. The bank's periodic check asks OCSP about the certificate it relied on, learns it was revoked
   (affiliationChanged), and asks for the latest four items with the customer's consent
   (基本4情報提供): the customer signs the consent with the user-authentication key (4-digit PIN),
   J-LIS answers with the new address, and the bank updates its record.
6. At the counter the card face is updated (追記) and a new signature certificate issued; the
   customer signs an international-wire application with it and the bank accepts it, with the
   four items it now holds. The first application's signature no longer verifies (revoked).

The customer's side uses the chip file directly (the card role): a bank never sees a PIN or a
private key, only signatures and certificates. Everything is synthetic. Exit status 0 when every
step did what it should.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509

from mynumber.card.kinds import KeyKind
from mynumber.card.store import ChipStore
from mynumber.clock import SystemClock
from mynumber.jlis.ca import FourItems
from mynumber.keystore import FileKeystore
from mynumber.relying import FourItemsConsent, OcspClient, Trust, verify_signature

MUNI = "131041"  # the municipality `serve --seed-residents` creates (東京都新宿区)
NEW_ADDRESS = "東京都新宿区大久保三丁目4番1号"


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"FAILED: {what}")
    print(f"   ok: {what}", flush=True)


# -- the platform: a real server on a free port ---------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYNUMBER_")}
    env["MYNUMBER_BASE_URL"] = f"http://127.0.0.1:{port}"  # the URLs certificates carry
    cmd = [
        sys.executable, "-m", "mynumber.cli", "serve",
        "--data-dir", str(data_dir), "--port", str(port),
        "--seed-residents", "200", "--seed-cards", "1",
    ]  # fmt: skip
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server stopped:\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2, trust_env=False).is_success:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_server(proc)
    raise SystemExit("the server did not start within 180 s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYNUMBER_")}
    return subprocess.run(
        [sys.executable, "-m", "mynumber.cli", *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, env=env, check=True, timeout=120,
    )  # fmt: skip


# -- the customer (card role): the chip file, the PINs only they know ------------------------


@dataclass
class Customer:
    data_dir: Path
    chip_id: str
    resident_code: str
    auth_pin: str
    signature_pin: str

    def _chip(self) -> Any:
        # Loaded afresh for each use: the counter (the server) rewrites the chip at 追記.
        store = ChipStore(self.data_dir / "cards", FileKeystore(self.data_dir / "keys"))
        return store.load(self.chip_id, SystemClock())

    def sign(self, document: bytes) -> tuple[bytes, x509.Certificate]:
        chip = self._chip()
        return chip.sign(KeyKind.SIGNATURE, document, self.signature_pin), chip.certificate(
            KeyKind.SIGNATURE
        )

    def consent(self, statement: bytes) -> tuple[bytes, x509.Certificate]:
        chip = self._chip()
        return chip.authenticate(statement, self.auth_pin), chip.certificate(KeyKind.AUTHENTICATION)


def the_customer(data_dir: Path) -> Customer:
    with (data_dir / "cards" / "DEMO-PINS.csv").open(newline="", encoding="utf-8") as fh:
        row = next(csv.DictReader(fh))
    return Customer(
        data_dir,
        row["chip_id"],
        row["resident_code"],
        row["auth_pin"],
        row["signature_pin"],
    )


# -- the bank: its own database, the SDK, its verifier token -----------------------------------


class Bank:
    def __init__(self, base_url: str, token: str, verifier_id: str, db: Path) -> None:
        self.base_url = base_url
        self.verifier_id = verifier_id
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30,
            trust_env=False,
        )  # fmt: skip
        self.ocsp = OcspClient(token)
        self.trust = Trust.from_pem(self.http.get("/api/jlis/ca").raise_for_status().content)
        self.db = sqlite3.connect(db)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS customers (account TEXT PRIMARY KEY, name TEXT,"
            " address TEXT, birth_date TEXT, sex INTEGER, certificate_serial TEXT,"
            " verified_at TEXT, method TEXT)"
        )

    def verify(self, document: bytes, signature: bytes, cert: x509.Certificate) -> Any:
        return verify_signature(
            document, signature, cert, trust=self.trust, status=self.ocsp,
            at=dt.datetime.now(dt.UTC),
        )  # fmt: skip

    def open_account(
        self, account: str, document: bytes, signature: bytes, cert: x509.Certificate
    ) -> FourItems:
        verdict = self.verify(document, signature, cert)
        verdict.raise_for_status()
        items: FourItems = verdict.four_items
        self.db.execute(
            "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?, 'JPKI署名用電子証明書 (ワ)')",
            (account, items.name, items.address, items.birth_date.isoformat(), items.sex,
             f"{verdict.serial:X}", dt.datetime.now(dt.UTC).isoformat()),
        )  # fmt: skip
        self.db.commit()
        return items

    def record(self, account: str) -> tuple[str, str, int]:
        row = self.db.execute(
            "SELECT address, certificate_serial, sex FROM customers WHERE account = ?", (account,)
        ).fetchone()
        return str(row[0]), str(row[1]), int(row[2])

    def still_valid(self, cert: x509.Certificate) -> Any:
        return self.ocsp.check(cert, self.trust.issuing, dt.datetime.now(dt.UTC))

    def latest_items(
        self, serial: str, consent: bytes, signature: bytes, auth_cert: x509.Certificate
    ) -> dict[str, Any]:
        import base64

        from cryptography.hazmat.primitives import serialization

        r = self.http.post(
            "/api/jlis/four-items",
            json={
                "signature_serial": serial,
                "consent": base64.b64encode(consent).decode(),
                "certificate": base64.b64encode(auth_cert.public_bytes(serialization.Encoding.DER)).decode(),
                "signature": base64.b64encode(signature).decode(),
            },
        )  # fmt: skip
        if r.status_code != 200:
            raise SystemExit(f"four items refused: {r.status_code} {r.text}")
        answer: dict[str, Any] = r.json()
        return answer

    def update(self, account: str, answer: dict[str, Any]) -> None:
        self.db.execute(
            "UPDATE customers SET name = ?, address = ?, verified_at = ?,"
            " method = '基本4情報提供' WHERE account = ?",
            (answer["name"], answer["address"], dt.datetime.now(dt.UTC).isoformat(), account),
        )
        self.db.commit()


def run(data_dir: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    step(f"1. a synthetic municipality with one card holder: mynumber serve on {base}")
    server = start_server(data_dir, port, data_dir.parent / "server.log")
    try:
        staff = (data_dir / "demo-token").read_text().strip()
        customer = the_customer(data_dir)
        check(
            (data_dir / "cards" / f"{customer.chip_id}.chip").exists(),
            "the holder's chip file exists",
        )

        step("2. the bank registers as a signature verifier (mynumber verifier register)")
        done = cli(data_dir, "verifier", "register", "みらい銀行", "--kind", "signature")
        token = done.stdout.strip().splitlines()[-1]
        found = re.search(r"verifier (\S+) ", done.stderr)
        check(bool(token) and found is not None, "J-LIS registered the bank and gave it a token")
        assert found is not None
        bank = Bank(base, token, found.group(1), data_dir.parent / "bank.sqlite3")

        step("3. account opening, signed with the card's signature certificate")
        application = json.dumps(
            {"type": "口座開設申込", "branch": "新宿支店", "account": "普通", "at": dt.datetime.now(dt.UTC).isoformat()},
            ensure_ascii=False,
        ).encode()  # fmt: skip
        signature, sig_cert = customer.sign(application)
        items = bank.open_account("0001234", application, signature, sig_cert)
        check(
            bank.record("0001234")[0] == items.address,
            "the bank verified the signature (chain, validity, OCSP) and recorded the four items",
        )
        tampered = bank.verify(application + b" ", signature, sig_cert)
        check(not tampered.valid, f"a changed application is refused ({tampered.code})")

        step("4. the customer moves; the municipality records it")
        r = httpx.post(
            f"{base}/api/municipality/municipalities/{MUNI}/residents/{customer.resident_code}/moves",
            json={"address": NEW_ADDRESS},
            headers={"Authorization": f"Bearer {staff}", "Idempotency-Key": "ekyc-move-1"},
            timeout=30, trust_env=False,
        )  # fmt: skip
        check(r.status_code == 200, "転居 recorded")

        step("5. the bank's periodic check: OCSP, then 基本4情報提供 with the customer's consent")
        status = bank.still_valid(sig_cert)
        check(
            status.status.name == "REVOKED",
            f"OCSP says the certificate was revoked ({status.reason})",
        )
        address, serial, _ = bank.record("0001234")
        consent = FourItemsConsent.new(
            bank.verifier_id, int(serial, 16), dt.datetime.now(dt.UTC)
        ).to_bytes()
        consent_sig, auth_cert = customer.consent(consent)
        answer = bank.latest_items(serial, consent, consent_sig, auth_cert)
        check(
            answer["changed"] and answer["address"] != address,
            "J-LIS gave the latest four items: the address changed",
        )
        bank.update("0001234", answer)
        check(
            bank.record("0001234")[0] == answer["address"],
            "the bank's record now holds the new address",
        )

        step("6. 追記 at the counter, a new signature certificate, an international wire")
        cards = httpx.get(
            f"{base}/api/jlis/cards", params={"resident_code": customer.resident_code},
            headers={"Authorization": f"Bearer {staff}"}, timeout=30, trust_env=False,
        ).raise_for_status().json()  # fmt: skip
        card = next(c for c in cards if c["state"] == "active")
        r = httpx.post(
            f"{base}/api/jlis/cards/{card['card_id']}/face-update",
            json={"identity_documents": ["driving_licence"]},
            headers={"Authorization": f"Bearer {staff}", "Idempotency-Key": "ekyc-face-1"},
            timeout=60, trust_env=False,
        )  # fmt: skip
        check(r.status_code == 200, "card face updated and a new signature certificate issued")
        wire = json.dumps(
            {"type": "外国送金依頼", "amount_jpy": 250000, "to": "SG"}, ensure_ascii=False
        ).encode()
        signature2, sig_cert2 = customer.sign(wire)
        verdict = bank.verify(wire, signature2, sig_cert2)
        check(
            verdict.valid and verdict.four_items.address == bank.record("0001234")[0],
            "the wire application verifies and names the address the bank holds",
        )
        again = bank.verify(application, signature, sig_cert)
        check(
            again.code == "pki.revoked",
            "the first application's certificate is refused now (pki.revoked)",
        )
        print("\nbank eKYC: every step as expected", flush=True)
    finally:
        stop_server(server)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mynumber-ekyc-"))
    try:
        run(root / "data")
    finally:
        if args.keep:
            print(f"kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
