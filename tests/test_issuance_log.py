"""Every certificate issued is on the record (DESIGN I6), crash-safe (I8), on SQLite and
PostgreSQL: at the counter and at a kiosk, an issuance adds exactly one access record about the
person to the transparency log, which they see with a proof that verifies; a replay adds none;
the log holds no name, resident code or number; a failure between the issuance's commit and the
log's loses nothing and logs nothing twice."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cardkit import AUTH_PIN, active_card, fast_chips, register  # noqa: F401
from conftest import MUNI
from mynumber.clock import FixedClock
from mynumber.documents.content import DocumentKind
from mynumber.documents.issue import IssueRequest
from mynumber.kiosk.client import KioskClient
from mynumber.kiosk.protocol import KioskOrder
from mynumber.ledger.bundle import check_bundle
from mynumber.municipality import models as mm
from mynumber.network.records import AccessRecord
from mynumber.platform import Platform
from sealkit import PNG


def request(rc: str, kind: DocumentKind = DocumentKind.residence, **kw: Any) -> IssueRequest:
    return IssueRequest(
        kind=kind, municipality_code=MUNI, resident_code=rc, requester="窓口1", **kw
    )


def dataclass_replace(req: IssueRequest, channel: str, requester: str) -> IssueRequest:
    return dataclasses.replace(req, channel=channel, requester=requester)


def size(p: Platform) -> int:
    head = p.ledger.head()
    return 0 if head is None else head.tree_size


def records(p: Platform, rc: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = p.network.records_of(rc)["records"]
    return got


def logged_at(p: Platform, document_id: str) -> Any:
    t = mm.issuances.c
    with p.issuance.engine.connect() as conn:
        return conn.execute(select(t.logged_at).where(t.document_id == document_id)).scalar_one()


def secrets_of(p: Platform, rc: str) -> list[str]:
    """What must never be in the log about the person: codes, names, the number."""
    r = mm.residents.c
    with p.municipality.engine.connect() as conn:
        row = conn.execute(select(mm.residents).where(r.resident_code == rc)).one()
    number = p.municipality.vault.open(row.number_enc) if row.number_enc else None
    out = [rc, row.family_name, row.given_name, row.family_name_kana, row.given_name_kana]
    out += [row.address, row.birth_date.isoformat()]
    return out + ([number] if number else [])


def assert_clean_log(p: Platform, rcs: list[str]) -> None:
    for i in range(size(p)):
        data = p.ledger.payload(i) or b""
        text = data.decode("utf-8")
        for secret in (s for rc in rcs for s in secrets_of(p, rc)):
            assert secret not in text, (i, secret)


def the_record(p: Platform, rc: str, document_id: str) -> dict[str, Any]:
    """The person's one record of this document, its proof checked."""
    mine = p.network.records_of(rc)
    found = [r for r in mine["records"] if r["record"]["request_id"] == document_id]
    assert len(found) == 1, mine["records"]
    rec = found[0]
    report = check_bundle(json.dumps(rec["proof"]))
    assert report.ok, report.findings
    assert report.record == rec["record"]
    assert rec["proof"]["subject_key"] == p.network.person_key(rc).hex()
    data = p.ledger.payload(rec["leaf_index"])
    assert data is not None and AccessRecord.from_bytes(data).to_bytes() == data
    return dict(rec["record"])


@pytest.mark.parametrize(
    ("channel", "kind"),
    [("counter", DocumentKind.residence), ("kiosk", DocumentKind.seal)],
)
def test_an_issuance_is_one_record_about_the_person(
    platform: Platform, clock: FixedClock, channel: str, kind: DocumentKind
) -> None:
    rc, other = register(platform), register(platform, given="二郎")
    if kind is DocumentKind.seal:
        platform.seals.register(MUNI, rc, PNG, "K000001", "clerk")
    clock.advance(dt.timedelta(days=1))  # a kiosk does not certify a record changed today
    requester = "kiosk-T1" if channel == "kiosk" else "窓口1"
    before = size(platform)
    issued = platform.issuance.issue(
        dataclass_replace(request(rc, kind, request_key="k-1"), channel, requester)
    )
    assert size(platform) == before + 1
    assert logged_at(platform, issued.document_id) is not None
    record = the_record(platform, rc, issued.document_id)
    assert {k: record[k] for k in ("type", "requester", "provider", "item", "task", "outcome")} == {
        "type": "issuance",
        "requester": requester if channel == "kiosk" else MUNI,
        "provider": MUNI,
        "item": str(kind),
        "task": "certificate_issuance",
        "outcome": "provided",
    }
    assert record["basis"] == ("seal_ordinance" if kind is DocumentKind.seal else "juki_act_12")
    assert records(platform, other) == []
    # a replay of the same request: the same document, no second record
    again = platform.issuance.issue(
        dataclass_replace(request(rc, kind, request_key="k-1"), channel, requester)
    )
    assert again.replay and again.document_id == issued.document_id
    assert size(platform) == before + 1 and len(records(platform, rc)) == 1
    # a second document is a second record
    second = platform.issuance.issue(dataclass_replace(request(rc, kind), channel, requester))
    assert size(platform) == before + 2
    assert {r["record"]["request_id"] for r in records(platform, rc)} == {
        issued.document_id,
        second.document_id,
    }
    assert platform.issuance.reconcile_log() == 0 and platform.network.reconcile() == 0
    assert_clean_log(platform, [rc, other])
    assert platform.ledger.audit() == []
    # issuances are not agency exchanges: not in the stats nor the anomaly report's input
    assert platform.network.counts()["total"] == 0


def test_a_household_document_is_a_record_for_everyone_it_shows(platform: Platform) -> None:
    """A household's 住民票 provides every member's data: each of them has a record of it
    (the subject's under the document id, the n-th other's under ``ID-n``), and the log names
    none of them."""
    rc = register(platform)
    hid = platform.municipality.get_resident(MUNI, rc)["household_id"]
    child = register(platform, given="花子", household_id=hid, relationship="子")
    baby = register(platform, given="三郎", household_id=hid, relationship="子")
    outsider = register(platform, given="四郎")
    issued = platform.issuance.issue(
        request(rc, whole_household=True, relationship=True, individual_number=True)
    )
    assert size(platform) == 3
    assert the_record(platform, rc, issued.document_id)["item"] == "juminhyo"
    ids = {f"{issued.document_id}-1", f"{issued.document_id}-2"}
    seen = set()
    for member in (child, baby):
        (rec,) = records(platform, member)
        seen.add(rec["record"]["request_id"])
        the_record(platform, member, rec["record"]["request_id"])
    assert seen == ids and records(platform, outsider) == []
    # only the members asked for: the subject and the one chosen
    chosen = platform.issuance.issue(request(rc, members=(baby,)))
    assert size(platform) == 5 and len(records(platform, child)) == 1
    assert the_record(platform, baby, f"{chosen.document_id}-1")["requester"] == MUNI
    # a resend of all of it (as after a crash) adds nothing
    t = mm.issuances
    with platform.issuance.engine.begin() as conn:
        conn.execute(t.update().values(logged_at=None))
    assert platform.issuance.reconcile_log() == 2 and size(platform) == 5
    assert_clean_log(platform, [rc, child, baby])


class Flaky:
    """The network's record_issuance failing `times` times: before it recorded anything
    (`after` False) or after it did (`after` True: the municipality never heard back)."""

    def __init__(self, p: Platform, times: int, *, after: bool) -> None:
        self.real = p.network.record_issuance
        self.left, self.after = times, after
        self.calls = 0

    def __call__(self, **kw: Any) -> Any:
        self.calls += 1
        if self.left:
            self.left -= 1
            if self.after:
                self.real(**kw)
            raise ConnectionError("the network went away")
        return self.real(**kw)


@pytest.mark.parametrize("after", [False, True])
@pytest.mark.parametrize("heal", ["reconcile", "read", "replay", "restart"])
def test_a_crash_between_the_commits_loses_nothing_and_logs_once(
    platform: Platform,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
    after: bool,
    heal: str,
) -> None:
    rc = register(platform)
    before = size(platform)
    flaky = Flaky(platform, 1, after=after)
    monkeypatch.setattr(platform.network, "record_issuance", flaky)
    issued = platform.issuance.issue(request(rc, request_key="k-crash"))
    # the document is issued and on the municipality's record, not yet noted as logged
    assert platform.issuance.record(issued.document_id) is not None
    assert logged_at(platform, issued.document_id) is None
    assert size(platform) == before + (1 if after else 0)
    if heal == "reconcile":
        assert platform.issuance.reconcile_log() == 1
    elif heal == "read":
        assert len(records(platform, rc)) == 1
    elif heal == "replay":
        again = platform.issuance.issue(request(rc, request_key="k-crash"))
        assert again.replay and again.document_id == issued.document_id
    else:
        Platform(platform.settings, clock).close()  # reconciles as it starts
    assert logged_at(platform, issued.document_id) is not None, heal
    assert size(platform) == before + 1, heal
    assert platform.issuance.reconcile_log() == 0
    the_record(platform, rc, issued.document_id)
    assert size(platform) == before + 1
    assert platform.ledger.audit() == []


def test_a_log_that_stays_down_keeps_every_issuance_for_later(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    rc = register(platform)
    flaky = Flaky(platform, 10, after=False)
    monkeypatch.setattr(platform.network, "record_issuance", flaky)
    ids = [platform.issuance.issue(request(rc)).document_id for _ in range(3)]
    with pytest.raises(ConnectionError):  # the reconcile says so; what is left stays
        platform.issuance.reconcile_log()
    monkeypatch.setattr(platform.network, "record_issuance", flaky.real)
    assert platform.issuance.reconcile_log() == 3
    assert sorted(r["record"]["request_id"] for r in records(platform, rc)) == sorted(ids)
    assert size(platform) == 3


def test_issuances_before_the_log_are_recorded_by_the_first_reconcile(
    platform: Platform,
) -> None:
    """Rows from before migration 0005 have no logged_at: the first reconcile logs them."""
    rc = register(platform)
    issued = platform.issuance.issue(request(rc))
    t = mm.issuances
    with platform.issuance.engine.begin() as conn:
        conn.execute(t.update().values(logged_at=None))
    assert platform.issuance.reconcile_log() == 1
    assert size(platform) == 1  # the same bytes: no second leaf
    the_record(platform, rc, issued.document_id)


# -- a real kiosk, over HTTP ------------------------------------------------------------------


@pytest.mark.usefixtures("fast_chips")
def test_a_kiosk_print_is_one_record_the_holder_sees(
    platform: Platform, clock: FixedClock, base_url: str, kiosk_token: str, tmp_path: Path
) -> None:
    rc = register(platform)
    card = active_card(platform, rc)
    platform.seals.register(MUNI, rc, PNG, "K000002", "clerk")
    clock.advance(dt.timedelta(days=1))
    assert card.chip_id is not None
    chip = platform.cards.chips.load(card.chip_id, clock)
    before = size(platform)
    with KioskClient(base_url, kiosk_token, "kiosk-T1", platform.lgpki.root, clock=clock) as k:
        printed = k.run(chip, AUTH_PIN, KioskOrder(DocumentKind.seal), tmp_path / "inkan.pdf")
    assert printed is not None
    assert size(platform) == before + 1
    record = the_record(platform, rc, printed.document_id)
    assert (record["type"], record["requester"], record["item"]) == (
        "issuance",
        "kiosk-T1",
        "inkan",
    )
    assert_clean_log(platform, [rc])
