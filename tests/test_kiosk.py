"""Kiosk issuance (issue 6, deliverables 3–4) over real HTTP, on SQLite and PostgreSQL: a kiosk
client and J-LIS's kiosk centre, the card's signed order, routing to the municipality, the
kiosk's own check before printing, fees — and every way a document could reach the wrong
person or print when it should not."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select

from cardkit import AUTH_PIN, active_card, fast_chips, register  # noqa: F401
from clikit import run_cli
from conftest import MUNI
from mynumber.api.auth import TokenStore
from mynumber.card.kinds import KeyKind
from mynumber.clock import JST, FixedClock
from mynumber.config import Settings
from mynumber.documents.content import DocumentKind
from mynumber.documents.verify import RecordStatus
from mynumber.errors import MynumberError
from mynumber.jlis import models as jm
from mynumber.kiosk.client import KioskClient
from mynumber.kiosk.protocol import KioskOrder, check_for_print, statement_digest
from mynumber.municipality import models as mm
from mynumber.platform import Platform
from sealkit import PNG

pytestmark = pytest.mark.usefixtures("fast_chips")

RESIDENCE = KioskOrder(DocumentKind.residence)
SEAL = KioskOrder(DocumentKind.seal)


def holder(p: Platform, clock: FixedClock, *, seal: bool = True, **items: str) -> tuple[str, Any]:
    """A resident with a card (and a seal), a day after moving in."""
    rc = register(p, **items)
    card = active_card(p, rc)
    if seal:
        p.seals.register(MUNI, rc, PNG, f"K{rc[-6:]}", "clerk")
    clock.advance(dt.timedelta(days=1))
    assert card.chip_id is not None
    return rc, p.cards.chips.load(card.chip_id, clock)


def client(p: Platform, base: str, token: str, clock: FixedClock, **kw: Any) -> KioskClient:
    return KioskClient(base, token, kw.pop("kiosk_id", "kiosk-T1"), p.lgpki.root, clock=clock, **kw)


def fees(p: Platform) -> int:
    with p.issuance.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(mm.fees)).scalar_one())


def outcomes(p: Platform) -> list[str]:
    with p.issuance.engine.connect() as conn:
        return sorted(conn.execute(select(mm.issuances.c.outcome)).scalars())


def code_of(call: Any) -> str:
    with pytest.raises(MynumberError) as e:
        call()
    return e.value.code


def test_a_card_holder_prints_both_documents(
    platform: Platform, clock: FixedClock, base_url: str, kiosk_token: str, tmp_path: Path
) -> None:
    _, chip = holder(platform, clock)
    with client(platform, base_url, kiosk_token, clock) as k:
        seen: list[Any] = []
        a = k.run(chip, AUTH_PIN, RESIDENCE, tmp_path / "juminhyo.pdf", confirm=seen.append)
        assert a is None  # the preview callback returned None: cancelled, nothing printed
        assert not (tmp_path / "juminhyo.pdf").exists() and fees(platform) == 0
        printed = k.run(chip, AUTH_PIN, RESIDENCE, tmp_path / "juminhyo.pdf")
        sealed = k.run(chip, AUTH_PIN, SEAL, tmp_path / "inkan.pdf")
    assert printed is not None and sealed is not None
    assert printed.fee == 300 and sealed.fee == 300 and fees(platform) == 2
    assert sealed.content.seal is not None and printed.content.channel == "kiosk"
    for doc in (printed, sealed):
        check = platform.verify_document(doc.path.read_bytes())
        assert check.ok and check.document_id == doc.document_id
    assert outcomes(platform) == ["aborted", "printed", "printed"]
    # the cancelled one is on record as never printed: a copy of it does not verify
    cancelled = seen[0]
    with platform.issuance.engine.connect() as conn:
        pdf = conn.execute(
            select(mm.issuances.c.pdf).where(mm.issuances.c.document_id == cancelled.document_id)
        ).scalar_one()
    assert platform.verify_document(bytes(pdf)).record is RecordStatus.not_printed
    # and what its QR code opens says so too (found in review)
    digest = platform.issuance.record(cancelled.document_id)
    assert digest is not None
    page = httpx.get(
        f"{base_url}/api/documents/{cancelled.document_id}",
        params={"digest": digest["content_digest"]},
    ).json()
    assert page["record"] == "not_printed"


def test_one_order_per_session_and_a_retry_gets_the_same_document(
    platform: Platform, clock: FixedClock, base_url: str, kiosk_token: str, tmp_path: Path
) -> None:
    _, chip = holder(platform, clock)
    _, intruder = holder(platform, clock)
    with client(platform, base_url, kiosk_token, clock) as k:
        session = k.open_session()
        first = k.run(chip, AUTH_PIN, RESIDENCE, tmp_path / "a.pdf", session=session)
        assert first is not None
        # the same signed order again (a kiosk retrying after a lost answer): same document
        sid, nonce = session["session_id"], session["nonce_bytes"]
        cert = chip.certificate(KeyKind.AUTHENTICATION)
        body = {
            "kiosk_id": "kiosk-T1",
            "order": RESIDENCE.to_json(),
            "certificate": base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode(),
            "signature": base64.b64encode(
                chip.authenticate(statement_digest(sid, "kiosk-T1", nonce, RESIDENCE), AUTH_PIN)
            ).decode(),
        }
        headers = {"Authorization": f"Bearer {kiosk_token}"}
        again = httpx.post(
            f"{base_url}/api/kiosk/sessions/{sid}/document", json=body, headers=headers
        )
        assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
        assert again.content == first.path.read_bytes()
        # the same statement signed by another card (found in review): another request in a
        # spent session, refused — not a retry, not a second document on the same nonce
        forged = {
            **body,
            "certificate": base64.b64encode(
                intruder.certificate(KeyKind.AUTHENTICATION).public_bytes(
                    serialization.Encoding.DER
                )
            ).decode(),
            "signature": base64.b64encode(
                intruder.authenticate(statement_digest(sid, "kiosk-T1", nonce, RESIDENCE), AUTH_PIN)
            ).decode(),
        }
        stolen = httpx.post(
            f"{base_url}/api/kiosk/sessions/{sid}/document", json=forged, headers=headers
        )
        assert stolen.status_code == 409 and stolen.json()["code"] == "kiosk.session_used"
        # a second, different order in the spent session is refused
        assert code_of(
            lambda: k.run(chip, AUTH_PIN, SEAL, tmp_path / "b.pdf", session=session)
        ) == ("kiosk.session_used")
        # a session of another kiosk cannot be used from this one
        other = client(platform, base_url, kiosk_token, clock, kiosk_id="kiosk-T2")
        assert (
            code_of(
                lambda: other.run(
                    chip, AUTH_PIN, SEAL, tmp_path / "c.pdf", session=k.open_session()
                )
            )
            == "kiosk.session_unknown"
        )
        other.close()
    assert fees(platform) == 1 and not (tmp_path / "b.pdf").exists()


def test_refusals_print_nothing(
    platform: Platform, clock: FixedClock, base_url: str, kiosk_token: str, tmp_path: Path
) -> None:
    rc, chip = holder(platform, clock, seal=False)
    with client(platform, base_url, kiosk_token, clock) as k:
        # no seal registered
        assert code_of(lambda: k.run(chip, AUTH_PIN, SEAL, tmp_path / "s.pdf")) == (
            "issuance.no_seal"
        )
        # a wrong PIN never reaches the centre
        assert code_of(lambda: k.run(chip, "0000", RESIDENCE, tmp_path / "r.pdf")).startswith(
            "card."
        )
        # the session's time runs out between insertion and order
        session = k.open_session()
        clock.advance(dt.timedelta(minutes=10))
        assert code_of(
            lambda: k.run(chip, AUTH_PIN, RESIDENCE, tmp_path / "r.pdf", session=session)
        ) == ("kiosk.session_expired")
        # support measure: only the counter
        platform.issuance.set_support_measure(MUNI, rc, "窓口1")
        assert code_of(lambda: k.run(chip, AUTH_PIN, RESIDENCE, tmp_path / "r.pdf")) == (
            "issuance.support_measure"
        )
    assert not list(tmp_path.glob("*.pdf")) and fees(platform) == 0
    assert outcomes(platform) == []


def test_a_suspended_card_is_refused(
    platform: Platform, clock: FixedClock, base_url: str, kiosk_token: str, tmp_path: Path
) -> None:
    rc = register(platform)
    card = active_card(platform, rc)
    clock.advance(dt.timedelta(days=1))
    assert card.chip_id is not None
    chip = platform.cards.chips.load(card.chip_id, clock)
    platform.cards.report_loss(card.card_id, operator="loss-line")
    with client(platform, base_url, kiosk_token, clock) as k:
        code = code_of(lambda: k.run(chip, AUTH_PIN, RESIDENCE, tmp_path / "r.pdf"))
    assert code.startswith(("pki.", "ocsp.", "relying.", "card.")), code
    assert outcomes(platform) == [] and not list(tmp_path.glob("*.pdf"))


class Tamper(httpx.BaseTransport):
    """A man in the middle between kiosk and centre: changes what it is told to change."""

    def __init__(self, change: Any) -> None:
        self.inner = httpx.HTTPTransport()
        self.change = change

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path.endswith("/document") and response.status_code == 201:
            response.read()
            return httpx.Response(
                201, headers=response.headers, content=self.change(response.content)
            )
        return response


def test_the_kiosk_prints_only_what_passes_its_check(
    platform: Platform, clock: FixedClock, base_url: str, kiosk_token: str, tmp_path: Path
) -> None:
    _, chip = holder(platform, clock)
    # someone else's earlier document (a real, validly signed one) handed to this kiosk
    _, other_chip = holder(platform, clock)
    with client(platform, base_url, kiosk_token, clock) as k:
        stale = k.run(other_chip, AUTH_PIN, RESIDENCE, tmp_path / "other.pdf")
    assert stale is not None
    stale_pdf = stale.path.read_bytes()
    cases = {
        "flipped": lambda pdf: pdf.replace(b"/Reason", b"/Reasox", 1),
        "someone else's": lambda _pdf: stale_pdf,
        "empty": lambda _pdf: b"",
    }
    for name, change in cases.items():
        out = tmp_path / f"{name}.pdf"
        k = client(platform, base_url, kiosk_token, clock, transport=Tamper(change))
        with k:
            assert code_of(lambda k=k, out=out: k.run(chip, AUTH_PIN, RESIDENCE, out)) == (
                "kiosk.not_printed"
            ), name
        assert not out.exists()
    # one fee (the stale document's own print); every tampered order was reported aborted
    assert fees(platform) == 1
    assert outcomes(platform) == ["aborted"] * 3 + ["printed"]


def test_the_kiosk_prints_only_what_was_chosen(
    platform: Platform, clock: FixedClock, base_url: str, kiosk_token: str, tmp_path: Path
) -> None:
    """本籍 printed when chosen; and a document showing anything the person did not choose
    (本籍, 続柄, the number, other people) is not printed even though validly signed."""
    _, chip = holder(
        platform, clock, domicile="京都府京都市上京区一条町1番地", domicile_head="髙橋 一郎"
    )
    chosen = KioskOrder(DocumentKind.residence, domicile=True, relationship=True)
    with client(platform, base_url, kiosk_token, clock) as k:
        printed = k.run(chip, AUTH_PIN, chosen, tmp_path / "a.pdf")
    assert printed is not None
    person = printed.content.people[0]
    assert (person.domicile, person.domicile_head) == ("京都府京都市上京区一条町1番地", "髙橋 一郎")
    assert person.relationship == "世帯主" and person.individual_number is None
    pdf = printed.path.read_bytes()
    crl = httpx.get(f"{base_url}/api/jlis/lgpki/crl").content

    def check(order: KioskOrder) -> Any:
        return check_for_print(
            pdf,
            nonce=base64.b64decode(printed.content.nonce or ""),
            card=chip.certificate(KeyKind.AUTHENTICATION),
            order=order,
            trust_roots=[platform.lgpki.root],
            crls=[crl],
            at=clock.now(),
        )

    assert check(chosen).document_id == printed.document_id
    for order in (
        KioskOrder(DocumentKind.residence, relationship=True),
        KioskOrder(DocumentKind.residence, domicile=True),
        KioskOrder(DocumentKind.residence_items, domicile=True, relationship=True),
    ):
        assert code_of(lambda order=order: check(order)) == "kiosk.not_printed", order


def test_a_kiosk_token_speaks_for_its_operators_kiosks_only(
    platform: Platform,
    clock: FixedClock,
    base_url: str,
    kiosk_token: str,
    settings: Settings,
    tmp_path: Path,
) -> None:
    """One shop's token cannot open, order or report in another kiosk's name (the token is
    bound to the operator "kiosk": ids kiosk and kiosk-*)."""
    _, chip = holder(platform, clock)
    with client(platform, base_url, kiosk_token, clock) as mine:
        session = mine.open_session()
        printed = mine.run(chip, AUTH_PIN, RESIDENCE, tmp_path / "a.pdf", session=session)
    assert printed is not None
    headers = {"Authorization": f"Bearer {kiosk_token}"}
    sid = session["session_id"]
    for path, body in (
        ("/api/kiosk/sessions", {"kiosk_id": "seven-0001"}),
        ("/api/kiosk/sessions", {"kiosk_id": "kiosks-1"}),  # a prefix, not the operator
        (
            f"/api/kiosk/sessions/{sid}/report",
            {"kiosk_id": "seven-0001", "document_id": printed.document_id, "printed": False},
        ),
    ):
        r = httpx.post(f"{base_url}{path}", json=body, headers=headers)
        assert r.status_code == 403 and r.json()["code"] == "kiosk.not_yours", (path, r.text)
        assert r.json()["messages"]["ja"]
    assert outcomes(platform) == ["printed"] and fees(platform) == 1
    # minting: a kiosk:issue token must name its operator; the binding needs the scope
    store = TokenStore(settings.data_dir / "tokens.json")
    for scopes, operator in (
        (["kiosk:issue"], None),
        (["municipality:read"], "seven"),
        (["kiosk:issue"], "seven-1"),
    ):
        with pytest.raises(ValueError):
            store.create("x", scopes, kiosk_operator=operator)
    seven = store.create("seven", ["kiosk:issue"], kiosk_operator="seven")
    with client(platform, base_url, seven, clock, kiosk_id="seven-0001") as k:
        assert k.open_session()["session_id"]


def test_old_sessions_are_purged(
    platform: Platform, clock: FixedClock, base_url: str, kiosk_token: str
) -> None:
    """A session's row is kept a day past its expiry (a late report is still answered), then
    deleted by the next session opened — at most once a minute per process."""
    t = jm.kiosk_sessions

    def sessions() -> set[str]:
        with platform.jlis.engine.connect() as conn:
            return set(conn.execute(select(t.c.session_id)).scalars())

    with client(platform, base_url, kiosk_token, clock) as k:
        old = k.open_session()["session_id"]
        clock.advance(dt.timedelta(hours=12))
        recent = k.open_session()["session_id"]
        assert {old, recent} <= sessions()
        clock.advance(dt.timedelta(hours=13))  # old: expired a day ago; recent: 13 hours
        new = k.open_session()["session_id"]
        assert old not in sessions() and {recent, new} <= sessions()
    assert platform.kiosk.purge_sessions() == 0


class Flaky(httpx.BaseTransport):
    """A network where the first try of every request fails: dropped before it reaches the
    centre, lost after the centre acted, or a proxy's bare 502 — in turn."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.seen: dict[tuple[str, str], int] = {}
        self.faults = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        key = (request.method, request.url.path)
        self.seen[key] = self.seen.get(key, 0) + 1
        if self.seen[key] > 1:
            return self.inner.handle_request(request)
        self.faults += 1
        fault = self.faults % 3
        if fault == 0:
            raise httpx.ConnectError("connection refused", request=request)
        if fault == 1:
            self.inner.handle_request(request).close()
            raise httpx.ReadError("connection reset after the centre acted", request=request)
        return httpx.Response(502, text="Bad Gateway")


def test_the_kiosk_gets_through_a_flaky_network(
    platform: Platform, clock: FixedClock, base_url: str, kiosk_token: str, tmp_path: Path
) -> None:
    """Every step's first try fails (the session, the order, the revocation list, the report):
    the kiosk retries each with the same request, and one document is printed and charged."""
    _, chip = holder(platform, clock)
    net = Flaky()
    with client(platform, base_url, kiosk_token, clock, transport=net) as k:
        printed = k.run(chip, AUTH_PIN, RESIDENCE, tmp_path / "a.pdf")
    assert printed is not None and printed.reported and printed.fee == 300
    steps = {path.rsplit("/", 1)[-1] for _m, path in net.seen}
    assert steps == {"sessions", "document", "crl", "report"}, steps
    assert all(n == 2 for n in net.seen.values()), net.seen
    assert fees(platform) == 1 and outcomes(platform) == ["printed"]
    assert platform.verify_document(printed.path.read_bytes()).ok
    # with no retries allowed, the same network stops the kiosk at its first step, nothing
    # printed, nothing charged
    with client(platform, base_url, kiosk_token, clock, transport=Flaky(), retries=0) as k:
        assert code_of(lambda: k.run(chip, AUTH_PIN, RESIDENCE, tmp_path / "b.pdf")) == (
            "kiosk.unreachable"
        )
    assert not (tmp_path / "b.pdf").exists() and fees(platform) == 1


def test_a_busy_database_is_a_503_the_kiosk_retries(
    platform: Platform,
    clock: FixedClock,
    base_url: str,
    kiosk_token: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PostgreSQL out of connections (found under load: "too many clients") is 503
    server.busy with Retry-After, in both languages, never a 500; the kiosk tries again."""
    from sqlalchemy.exc import OperationalError

    real = platform.kiosk.open_session
    failures = [2]

    def busy(kiosk_id: str) -> Any:
        if failures[0]:
            failures[0] -= 1
            raise OperationalError("connect", {}, Exception("sorry, too many clients already"))
        return real(kiosk_id)

    monkeypatch.setattr(platform.kiosk, "open_session", busy)
    r = httpx.post(
        f"{base_url}/api/kiosk/sessions",
        json={"kiosk_id": "kiosk-T1"},
        headers={"Authorization": f"Bearer {kiosk_token}", "Accept-Language": "en"},
    )
    assert r.status_code == 503 and r.headers["Retry-After"] == "1", r.text
    assert r.json()["code"] == "server.busy" and "nothing was changed" in r.json()["detail"]
    _, chip = holder(platform, clock)
    with client(platform, base_url, kiosk_token, clock) as k:
        printed = k.run(chip, AUTH_PIN, RESIDENCE, tmp_path / "a.pdf")
    assert printed is not None and failures == [0] and fees(platform) == 1


def test_the_kiosk_cli_prints(
    platform: Platform, clock: FixedClock, base_url: str, kiosk_token: str, tmp_path: Path
) -> None:
    # The CLI runs on the real clock: put the server's a day back, so after the day holder()
    # waits (no kiosk issuance on the day of a move-in) the two agree.
    clock.set(dt.datetime.now(JST) - dt.timedelta(days=1))
    _, chip = holder(platform, clock)
    out = tmp_path / "cli.pdf"
    r = run_cli(
        platform, "kiosk", "--chip", chip.chip_id, "--out", str(out), "--kind", "inkan",
        "--yes", "--url", base_url, "--token", kiosk_token,
        env={"MYNUMBER_AUTH_PIN": AUTH_PIN}, database=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert out.read_bytes().startswith(b"%PDF-") and "¥300" in r.stdout
    assert platform.verify_document(out.read_bytes()).ok
    # a wrong PIN: a clear refusal, no traceback, nothing printed
    bad = run_cli(
        platform, "kiosk", "--chip", chip.chip_id, "--out", str(tmp_path / "no.pdf"),
        "--kind", "juminhyo", "--yes", "--url", base_url, "--token", kiosk_token,
        env={"MYNUMBER_AUTH_PIN": "0000"}, database=False,
    )  # fmt: skip
    assert bad.returncode == 1 and "card." in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "no.pdf").exists()
    # the "printer" cannot write (--out is a directory): a clear refusal, reported aborted
    jammed = run_cli(
        platform, "kiosk", "--chip", chip.chip_id, "--out", str(tmp_path),
        "--kind", "juminhyo", "--yes", "--url", base_url, "--token", kiosk_token,
        env={"MYNUMBER_AUTH_PIN": AUTH_PIN}, database=False,
    )  # fmt: skip
    assert jammed.returncode == 1 and "file.unwritable" in jammed.stderr
    assert "Traceback" not in jammed.stderr and outcomes(platform) == ["aborted", "printed"]
