"""Registered verifiers and 基本4情報提供 over HTTP, and the eKYC flow from the command line —
on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cardkit import assert_hidden
from conftest import MUNI
from mynumber.api.app import create_app
from mynumber.api.auth import TokenStore
from mynumber.card import ChipStore
from mynumber.cli import app as cli_app
from mynumber.clock import FixedClock
from mynumber.config import Settings
from mynumber.jlis.ca import RevocationEvent
from mynumber.municipality.domain import EventKind
from mynumber.platform import Platform
from mynumber.relying import FourItemsConsent
from relykit import SIG_PIN, Holder, make_holder, serve, verifier_token

DER = serialization.Encoding.DER
NEW_ADDRESS = "東京都新宿区大久保一丁目1番1号"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def consent_body(
    holder: Holder,
    verifier_id: str,
    at: dt.datetime,
    *,
    signer: Holder | None = None,
    serial: int | None = None,
) -> dict[str, Any]:
    """What the verifier posts: the holder (or `signer`) consents with the auth key and PIN."""
    signer = signer or holder
    old_serial = holder.signature_cert.serial_number if serial is None else serial
    statement = FourItemsConsent.new(verifier_id, old_serial, at).to_bytes()
    return {
        "signature_serial": f"{holder.signature_cert.serial_number:X}",
        "consent": b64(statement),
        "certificate": b64(signer.auth_cert.public_bytes(DER)),
        "signature": b64(signer.authenticate(statement)),
    }


@pytest.fixture
def client(platform: Platform) -> TestClient:
    return TestClient(create_app(platform, sync_interval=None))


def post(client: TestClient, token: str, body: dict[str, Any], **headers: str) -> Any:
    return client.post(
        "/api/jlis/four-items",
        json=body,
        headers={"Authorization": f"Bearer {token}", **headers},
    )


def test_a_signature_verifier_gets_the_latest_four_items_once_with_consent(
    platform: Platform, clock: FixedClock, client: TestClient
) -> None:
    holder = make_holder(platform, clock)
    vid, token = verifier_token(platform)
    # The holder moves: the signature certificate is revoked, the items are out of date.
    platform.municipality.record(
        MUNI, EventKind.MOVE_WITHIN, {"address": NEW_ADDRESS}, resident_code=holder.resident_code
    )
    platform.sync()
    clock.advance(dt.timedelta(minutes=1))
    body = consent_body(holder, vid, clock.now())
    r = post(client, token, body)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "name": holder.items.name,
        "address": NEW_ADDRESS,
        "birth_date": holder.items.birth_date.isoformat(),
        "sex": 1,
        "resident_status": "active",
        "changed": True,
        "signature_certificate_status": "revoked",
    }
    assert holder.resident_code not in r.text
    replay = post(client, token, body)
    assert (replay.status_code, replay.json()["code"]) == (409, "four_items.consent_replayed")
    # An idempotent retry of a new consent returns the first answer, not a replay refusal.
    again = consent_body(holder, vid, clock.now())
    first = post(client, token, again, **{"Idempotency-Key": "k-1"})
    second = post(client, token, again, **{"Idempotency-Key": "k-1"})
    assert first.status_code == second.status_code == 200
    assert second.headers["Idempotent-Replayed"] == "true" and second.json() == first.json()


def test_unregistered_tokens_get_neither_ocsp_nor_four_items(
    platform: Platform, clock: FixedClock, client: TestClient
) -> None:
    holder = make_holder(platform, clock)
    vid, token = verifier_token(platform)
    store = TokenStore(platform.settings.data_dir / "tokens.json")
    scoped_only = store.create("no-registration", ["jlis:verify", "jlis:four-items"])
    no_scope = store.create("clerk", ["jlis:query"])
    body = consent_body(holder, vid, clock.now())
    for bearer, expected in ((scoped_only, "verifier.not_registered"), (no_scope, "auth.scope")):
        r = post(client, bearer, body)
        assert (r.status_code, r.json()["code"]) == (403, expected)
        r = client.post(
            "/api/jlis/ocsp", content=b"x", headers={"Authorization": f"Bearer {bearer}"}
        )
        assert (r.status_code, r.json()["code"]) == (403, expected)
    assert post(client, "mnt_unknown", body).status_code == 401
    # A user-authentication verifier may ask OCSP, but 基本4情報提供 is for signature verifiers.
    auth_vid, auth_token = verifier_token(platform, ("auth",), ("jlis:verify", "jlis:four-items"))
    r = post(client, auth_token, consent_body(holder, auth_vid, clock.now()))
    assert (r.status_code, r.json()["code"]) == (403, "verifier.kind")
    # A withdrawn registration stops its tokens at once.
    assert platform.verifiers.deactivate(vid)
    r = post(client, token, body)
    assert (r.status_code, r.json()["code"]) == (403, "verifier.not_registered")
    assert not platform.verifiers.deactivate("vf_nobody")


def test_consents_that_do_not_authorise_this_provision_are_refused(
    platform: Platform, clock: FixedClock, client: TestClient
) -> None:
    holder = make_holder(platform, clock)
    other = make_holder(platform, clock, given="二郎", chip_id="chip-b")
    vid, token = verifier_token(platform)
    other_vid, _ = verifier_token(platform)
    now = clock.now()

    def refused(body: dict[str, Any]) -> tuple[int, str]:
        r = post(client, token, body, **{"Accept-Language": "en"})
        assert r.headers["content-type"] == "application/problem+json", r.text
        problem = r.json()
        assert problem["messages"]["ja"] and problem["messages"]["en"]
        return r.status_code, problem["code"]

    assert refused(consent_body(holder, vid, now, signer=other)) == (
        403,
        "four_items.other_person",
    )
    assert refused(consent_body(holder, other_vid, now)) == (403, "four_items.other_verifier")
    stale = consent_body(holder, vid, now - dt.timedelta(minutes=11))
    assert refused(stale) == (422, "four_items.consent_expired")
    mismatch = consent_body(holder, vid, now, serial=other.signature_cert.serial_number)
    assert refused(mismatch) == (422, "four_items.consent_mismatch")
    body = consent_body(holder, vid, now)
    statement = base64.b64decode(body["consent"])
    loose = statement.replace(b",", b", ", 1)  # the same consent, not in canonical form
    assert refused({**body, "consent": b64(loose)}) == (422, "four_items.consent_malformed")
    forged = {**body, "signature": consent_body(holder, vid, now)["signature"]}
    assert refused(forged) == (422, "relying.signature_invalid")
    sig_as_auth = {**body, "certificate": b64(holder.signature_cert.public_bytes(DER))}
    assert refused(sig_as_auth) == (422, "pki.wrong_key_usage")
    # An auth serial in place of the signature certificate's: not a signature certificate.
    auth_serial = holder.auth_cert.serial_number
    as_auth = consent_body(holder, vid, now, serial=auth_serial)
    assert refused({**as_auth, "signature_serial": f"{auth_serial:X}"}) == (
        404,
        "four_items.unknown_certificate",
    )
    for bad in ({**body, "consent": "***"}, {**body, "signature_serial": "xyz"}, {}):
        r = post(client, token, bad)
        assert r.status_code == 422 and r.json()["code"] == "request.invalid", r.text
    # Nothing was provided: the good consent still works once.
    assert post(client, token, body).status_code == 200


def cli_args(settings: Settings) -> list[str]:
    args = ["--data-dir", str(settings.data_dir)]
    if settings.database_url:
        args += ["--database-url", settings.database_url]
    return args


def test_bank_ekyc_from_the_command_line(
    platform: Platform, clock: FixedClock, settings: Settings, tmp_path: Path
) -> None:
    holder = make_holder(platform, clock)
    ChipStore(settings.data_dir / "cards", platform.keystore).add(holder.chip)
    runner = CliRunner()
    where = cli_args(settings)

    registered = runner.invoke(
        cli_app, ["verifier", "register", "みらい銀行", "--kind", "signature", *where]
    )
    assert registered.exit_code == 0, registered.output
    token = registered.stdout.strip().splitlines()[-1]
    assert token.startswith("mnt_")
    staff = TokenStore(settings.data_dir / "tokens.json").check(token)
    assert staff is not None and staff.verifier is not None
    assert staff.scopes == {"jlis:verify", "jlis:four-items"}
    assert platform.verifiers.require_active(staff.verifier, "signature").name == "みらい銀行"

    application = tmp_path / "application.txt"
    application.write_text("口座開設申込書 No. 0001\n", encoding="utf-8")
    sig = tmp_path / "application.sig"
    signed = runner.invoke(
        cli_app,
        ["sign", str(application), "--chip", "chip-a", "--out", str(sig), *where[:2]],
        env={"MYNUMBER_SIGNATURE_PIN": SIG_PIN},
    )
    assert signed.exit_code == 0, signed.output
    assert_hidden(signed.output, SIG_PIN)
    cert = tmp_path / "application.sig.cert.pem"
    assert cert.read_bytes() == holder.signature_cert.public_bytes(serialization.Encoding.PEM)

    verify = ["verify-signature", str(application), "--signature", str(sig)]
    ok = runner.invoke(cli_app, [*verify, "--certificate", str(cert), *where])
    assert ok.exit_code == 0, ok.output
    assert "valid / 有効" in ok.stdout and holder.items.address in ok.stdout
    application.write_text("口座開設申込書 No. 0002\n", encoding="utf-8")
    bad = runner.invoke(cli_app, [*verify, "--certificate", str(cert), *where])
    assert bad.exit_code == 1
    assert "relying.signature_invalid" in bad.output
    wrong_pin = runner.invoke(
        cli_app,
        ["sign", str(application), "--chip", "chip-a", "--out", str(sig), *where[:2]],
        env={"MYNUMBER_SIGNATURE_PIN": "WRONG1PIN"},
    )
    assert wrong_pin.exit_code == 1 and "card.pin_wrong" in wrong_pin.output
    assert "WRONG1PIN" not in wrong_pin.output


def test_verify_signature_over_http_ocsp_from_the_command_line(
    platform: Platform, clock: FixedClock, settings: Settings, tmp_path: Path
) -> None:
    """As a bank outside the platform: the chain file, the responder URL and its token only.
    The command reads the wall clock, so the platform's clock is set to it."""
    clock.set(dt.datetime.now(dt.UTC))
    holder = make_holder(platform, clock)
    _, token = verifier_token(platform, ("signature",), ("jlis:verify",))
    data = tmp_path / "contract.txt"
    data.write_bytes("契約書".encode())
    (tmp_path / "contract.sig").write_bytes(holder.sign(data.read_bytes()))
    (tmp_path / "cert.pem").write_bytes(
        holder.signature_cert.public_bytes(serialization.Encoding.PEM)
    )
    (tmp_path / "chain.pem").write_bytes(platform.pki.chain_pem())
    runner = CliRunner()
    with serve(platform) as url:
        args = [
            "verify-signature",
            str(data),
            "--signature",
            str(tmp_path / "contract.sig"),
            "--certificate",
            str(tmp_path / "cert.pem"),
            "--chain",
            str(tmp_path / "chain.pem"),
            "--ocsp-url",
            f"{url}/api/jlis/ocsp",
        ]
        ok = runner.invoke(cli_app, [*args, "--token", token])
        assert ok.exit_code == 0, ok.output
        assert holder.items.name in ok.stdout
        refused = runner.invoke(cli_app, [*args, "--token", "mnt_not-a-verifier"])
        assert refused.exit_code == 1 and "ocsp.unauthorised" in refused.output
        platform.pki.revoke_for_event(holder.resident_code, RevocationEvent.HOLDER_REQUEST)
        revoked = runner.invoke(cli_app, [*args, "--token", token])
        assert revoked.exit_code == 1 and "pki.revoked" in revoked.output


def test_each_kind_of_verifier_asks_only_about_its_own_kind_of_certificate(
    platform: Platform, clock: FixedClock, client: TestClient
) -> None:
    """署名検証者 learn the status of signature certificates, 利用者証明検証者 of authentication
    certificates (公的個人認証法 17・36条); the other kind is answered `unauthorized`, which the
    SDK reports as ocsp.unauthorised."""
    from cryptography import x509
    from cryptography.x509 import ocsp

    from mynumber.card import KeyKind
    from mynumber.errors import MynumberError
    from mynumber.relying import OcspClient

    holder = make_holder(platform, clock)
    issuer = platform.pki.ca.issuing_cert
    sig = holder.chip.certificate(KeyKind.SIGNATURE)
    auth = holder.chip.certificate(KeyKind.AUTHENTICATION)

    def ask(token: str, cert: x509.Certificate) -> ocsp.OCSPResponse:
        der = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(cert, issuer, hashes.SHA256())
            .build()
            .public_bytes(serialization.Encoding.DER)
        )
        r = client.post(
            "/api/jlis/ocsp",
            content=der,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/ocsp-request",
            },
        )
        assert r.status_code == 200
        return ocsp.load_der_ocsp_response(r.content)

    _, sig_only = verifier_token(platform, ("signature",), ("jlis:verify",))
    _, auth_only = verifier_token(platform, ("auth",), ("jlis:verify",))
    _, both = verifier_token(platform, ("signature", "auth"), ("jlis:verify",))
    refused = ocsp.OCSPResponseStatus.UNAUTHORIZED
    assert ask(sig_only, sig).certificate_status is ocsp.OCSPCertStatus.GOOD
    assert ask(sig_only, auth).response_status is refused
    assert ask(auth_only, auth).certificate_status is ocsp.OCSPCertStatus.GOOD
    assert ask(auth_only, sig).response_status is refused
    for cert in (sig, auth):
        assert ask(both, cert).certificate_status is ocsp.OCSPCertStatus.GOOD
    # Over a real socket, the SDK turns the refusal into its own code.
    with serve(platform) as base:
        with pytest.raises(MynumberError) as caught:
            OcspClient(sig_only, url=f"{base}/api/jlis/ocsp").check(auth, issuer, clock.now())
        assert caught.value.code == "ocsp.unauthorised"
        good = OcspClient(sig_only, url=f"{base}/api/jlis/ocsp").check(sig, issuer, clock.now())
        assert good.status.name == "GOOD"
