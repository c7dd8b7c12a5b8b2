"""The information-provision network at service level, on SQLite and PostgreSQL: tests that try
to break it.

What must hold (DESIGN.md I5, I6, I8): agencies name people only by their own codes, which only
the network translates, and neither the individual number nor the resident record code is ever
stored or logged by it; every exchange an authenticated agency asks for — provided, not held or
refused — is in the network's table and in the transparency log exactly once, whatever the
retries, threads, processes or crashes; an unauthenticated request is answered and written
nowhere; a person sees every record about them with a proof that verifies offline, and tampering
with the store is found.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import func, inspect, select, text, update
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from mynumber.agency.seed import DEMO_AGENCIES, demo_records, seed_agencies
from mynumber.cli import app
from mynumber.clock import FixedClock
from mynumber.db import writing
from mynumber.errors import AuthError, ConflictError, MynumberError, NotFoundError, ValidationError
from mynumber.ledger import models as lm
from mynumber.ledger.bundle import check_bundle
from mynumber.ledger.heads import is_fork, sign_head
from mynumber.ledger.merkle import leaf_hash
from mynumber.ledger.service import LedgerIntegrityError, LedgerService
from mynumber.municipality.bulk import export_residents, import_residents
from mynumber.network import models as nm
from mynumber.network.anomaly import REFUSAL_BURST
from mynumber.network.codes import is_code, subject_commitment
from mynumber.network.records import (
    OUTCOMES,
    SIGNING_CONTEXT,
    AccessRecord,
    ExchangeRequest,
    Provision,
    RecordError,
)
from mynumber.network.service import ExchangeResult
from mynumber.platform import Platform
from mynumber.synth import generate_residents

TAX, KODOMO, KENPO, NENKIN, JLIS = (
    "shinjuku-tax",
    "shinjuku-kodomo",
    "kenpo-mirai",
    "nenkin",
    "jlis",
)
KIND = {a.agency_id: a.kind for a in DEMO_AGENCIES}

# (requester, task, provider, item) the legal-basis table allows / does not allow
BRACKET = (KENPO, "high_cost_medical", TAX, "income_bracket")
INCOME_NO_BASIS = (KENPO, "high_cost_medical", TAX, "income")
ADDRESS = (NENKIN, "pension_benefit", JLIS, "current_address")
PENSION = (TAX, "tax_assessment", NENKIN, "pension_receipt")


# -- a small world ----------------------------------------------------------------------------


def add_residents(p: Platform, n: int = 30, seed: int = 7) -> dict[str, str]:
    """Import `n` synthetic residents; resident record code → individual number."""
    rows = list(generate_residents(n, seed=seed))
    p.auto_sync = False
    report = import_residents(p.municipality, [(i + 2, r) for i, r in enumerate(rows)])
    assert report.committed and report.imported == n, report.errors[:3]
    p.sync()
    p.auto_sync = True
    return {r["resident_code"]: r["individual_number"] for r in export_residents(p.municipality)}


@dataclass
class World:
    p: Platform
    numbers: dict[str, str]  # resident code → individual number
    records: dict[str, dict[str, dict[str, Any]]]  # agency → internal id → item → value
    owner: dict[tuple[str, str], str]  # (agency, internal id) → resident code
    codes: dict[tuple[str, str], str]  # (agency, internal id) → agency code

    def iid(self, agency: str, rc: str) -> str | None:
        for (a, iid), owner in self.owner.items():
            if a == agency and owner == rc:
                return iid
        return None

    def people(self, *agencies: str, without: Sequence[str] = ()) -> list[str]:
        """Resident codes of the people every one of `agencies` holds and none of `without`."""
        held = [{rc for (a, _), rc in self.owner.items() if a == agency} for agency in agencies]
        out = set.intersection(*held)
        for agency in without:
            out -= {rc for (a, _), rc in self.owner.items() if a == agency}
        return sorted(out)

    def sign(self, exchange: tuple[str, str, str, str], rc: str) -> tuple[bytes, bytes]:
        requester, task, provider, item = exchange
        iid = self.iid(requester, rc)
        assert iid is not None, f"{requester} holds no record of {rc}"
        return self.p.agencies.sign_request(requester, iid, task, provider, item)

    def ask(self, exchange: tuple[str, str, str, str], rc: str) -> ExchangeResult:
        return self.p.network.exchange(*self.sign(exchange, rc))

    def value(self, agency: str, rc: str, item: str) -> Any:
        iid = self.iid(agency, rc)
        assert iid is not None
        return self.records[agency][iid][item]


def add_agencies(p: Platform, numbers: dict[str, str]) -> World:
    """The five demo agencies with their records, codes and copies, but no traffic."""
    residents = list(export_residents(p.municipality))
    demo = demo_records(residents, p.clock.today())
    by_number = {num: rc for rc, num in numbers.items()}
    w = World(p, numbers, {}, {}, {})
    for a in DEMO_AGENCIES:
        p.network.register_agency(
            a.agency_id, a.kind, a.name_ja, a.name_en, p.agencies.public_key(a.agency_id)
        )
        mine = demo.get(a.agency_id, {})
        p.agencies.put_records(a.agency_id, {iid: data for iid, (_, data) in mine.items()})
        codes, inactive = p.acquire_codes(a.agency_id, {iid: num for iid, (num, _) in mine.items()})
        assert inactive == []
        p.agencies.refresh_copy(a.agency_id, a.kind)
        w.records[a.agency_id] = {iid: data for iid, (_, data) in mine.items()}
        for iid, (num, _) in mine.items():
            w.owner[(a.agency_id, iid)] = by_number[num]
            w.codes[(a.agency_id, iid)] = codes[iid]
    return w


def world(p: Platform, n: int = 30) -> World:
    return add_agencies(p, add_residents(p, n))


def agency_key(p: Platform, agency_id: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(p.keystore.secret(f"agency-{agency_id}-sign"))


def signed(
    p: Platform, req: ExchangeRequest, signer: str | None = None, context: bytes = SIGNING_CONTEXT
) -> tuple[bytes, bytes]:
    data = req.to_bytes()
    return data, agency_key(p, signer or req.requester).sign(context + data)


def request(w: World, exchange: tuple[str, str, str, str], rc: str, **over: Any) -> ExchangeRequest:
    """The request `w.sign` would make, as a value to alter before signing."""
    return replace(ExchangeRequest.from_bytes(w.sign(exchange, rc)[0]), **over)


def leaves(p: Platform) -> int:
    with p.ledger.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(lm.leaves)).scalar_one())


def rows(p: Platform) -> list[Any]:
    with p.network.engine.connect() as conn:
        return list(conn.execute(select(nm.requests).order_by(nm.requests.c.leaf_index)).all())


def row_of(p: Platform, request_id: str) -> Any:
    with p.network.engine.connect() as conn:
        return conn.execute(select(nm.requests).where(nm.requests.c.request_id == request_id)).one()


def written(p: Platform) -> tuple[int, int, int | None]:
    """(leaves, network rows, newest head size): what an exchange may have written."""
    head = p.ledger.head()
    return leaves(p), len(rows(p)), None if head is None else head.tree_size


def logged(p: Platform, result: ExchangeResult) -> dict[str, Any]:
    """The record the log holds for `result`, checked against the network's row."""
    payload = p.ledger.payload(result.leaf_index)
    assert payload is not None
    row = row_of(p, result.request_id)
    assert row.leaf_index == result.leaf_index
    assert bytes(row.record) == payload and bytes(row.leaf_hash) == leaf_hash(payload)
    assert p.ledger.leaf_hash(result.leaf_index) == leaf_hash(payload)
    doc: dict[str, Any] = json.loads(payload)
    return doc


def dump(engine: Engine) -> list[tuple[str, str, Any]]:
    """Every cell of every table the engine's role owns: (table, column, value)."""
    out = []
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            result = conn.execute(text(f'SELECT * FROM "{table}"'))
            for row in result:
                for column, value in zip(result.keys(), row, strict=True):
                    out.append((table, column, value))
    return out


def leaks(cells: Iterable[tuple[str, str, Any]], secrets: Iterable[str]) -> list[str]:
    needles = [(s, s.encode()) for s in secrets]
    found = []
    for table, column, value in cells:
        if value is None:
            continue
        for s, b in needles:
            if (isinstance(value, bytes | memoryview) and b in bytes(value)) or (
                not isinstance(value, bytes | memoryview) and s in str(value)
            ):
                found.append(f"{table}.{column} holds {s}")
    return found


# -- 1. codes ---------------------------------------------------------------------------------


def test_codes_are_per_agency_and_stable(platform: Platform) -> None:
    w = world(platform)
    by_person: dict[str, list[str]] = {}
    for (agency, iid), code in w.codes.items():
        assert is_code(code)
        by_person.setdefault(w.owner[(agency, iid)], []).append(code)
    assert max(len(c) for c in by_person.values()) == len(DEMO_AGENCIES)
    for codes in by_person.values():
        assert len(set(codes)) == len(codes)  # no two agencies share a person's code
    assert len(set(w.codes.values())) == len(w.codes)  # nor anyone else's
    with platform.network.engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(nm.codes)).scalar_one()
    # Issued again — directly and through J-LIS — the same codes, and nothing new stored.
    for (agency, iid), code in list(w.codes.items())[::7]:
        rc = w.owner[(agency, iid)]
        assert platform.network.issue_codes(agency, [rc, rc]) == {rc: code}
    again, _ = platform.acquire_codes(
        TAX, {iid: w.numbers[w.owner[(TAX, iid)]] for iid in w.records[TAX]}
    )
    assert again == {iid: w.codes[(TAX, iid)] for iid in w.records[TAX]}
    with platform.network.engine.connect() as conn:
        after = conn.execute(select(func.count()).select_from(nm.codes)).scalar_one()
    assert after == before == len(w.codes)
    with pytest.raises(NotFoundError) as e:
        platform.network.issue_codes("nobody", list(w.numbers)[:1])
    assert e.value.code == "network.unknown_agency"


def test_no_number_or_resident_code_reaches_the_network_or_the_log(platform: Platform) -> None:
    """I5: dump every cell the network and the ledger roles store, and every request sent."""
    w = world(platform)
    ran = seed_agencies(platform)  # the demo traffic on top: allowed exchanges and refusals
    assert ran > 50
    assert seed_agencies(platform) == 0  # seeding again adds nothing
    sent = []
    for rc in w.people(KENPO, TAX)[:5]:
        for exchange in (BRACKET, INCOME_NO_BASIS):
            message, signature = w.sign(exchange, rc)
            sent.append(message)
            platform.network.exchange(message, signature)
    secrets = set(w.numbers) | set(w.numbers.values())
    assert len(secrets) == 2 * len(w.numbers) == 60
    network = dump(platform.network.engine)
    assert {t for t, _, _ in network} >= {"agencies", "codes", "requests"}
    assert len(rows(platform)) == ran + len(sent)
    assert leaks(network, secrets) == []
    assert leaks(dump(platform.ledger.engine), secrets) == []
    assert leaks((("request", "bytes", m) for m in sent), secrets) == []
    payloads = [platform.ledger.payload(i) for i in range(leaves(platform))]
    assert len(payloads) == ran + len(sent) and all(payloads)
    assert leaks((("payload", "body", b) for b in payloads), secrets) == []
    # The check finds what it looks for.
    assert leaks([("t", "c", f"x{next(iter(w.numbers.values()))}x".encode())], secrets)


def test_an_agency_cannot_name_a_person_by_another_agencys_code(platform: Platform) -> None:
    w = world(platform)
    rc = w.people(KENPO, TAX)[0]
    tax_code = w.codes[(TAX, w.iid(TAX, rc) or "")]
    before = written(platform)
    for code in (tax_code, "0" * 26):
        req = request(w, BRACKET, rc, subject_code=code)
        result = platform.network.exchange(*signed(platform, req))
        assert (result.outcome, result.reason, result.value) == (
            "refused",
            "network.unknown_code",
            None,
        )
        assert result.basis is None and not result.replayed
        doc = logged(platform, result)
        assert doc["outcome"] == "refused" and doc["reason"] == "network.unknown_code"
        assert doc["subject"] is None  # the network does not know whom it was about
        assert row_of(platform, req.request_id).person is None
    assert written(platform)[:2] == (before[0] + 2, before[1] + 2)
    # The requester's own code for the same person is answered.
    assert w.ask(BRACKET, rc).outcome == "provided"


# -- 2. legal basis ---------------------------------------------------------------------------


def test_an_exchange_without_legal_basis_is_refused_and_recorded(platform: Platform) -> None:
    w = world(platform)
    rc = w.people(KENPO, TAX)[0]
    person = platform.network.person_key(rc)
    for exchange in (INCOME_NO_BASIS, (KENPO, "child_allowance", TAX, "income")):
        result = w.ask(exchange, rc)
        assert (result.outcome, result.reason, result.basis, result.value) == (
            "refused",
            "network.no_legal_basis",
            None,
            None,
        )
        assert "value" not in result.to_json()
        doc = logged(platform, result)
        assert doc["basis"] is None and doc["reason"] == "network.no_legal_basis"
        assert doc["subject"] == subject_commitment(person, result.request_id).hex()
        row = row_of(platform, result.request_id)
        assert (row.outcome, row.basis, bytes(row.person)) == ("refused", None, person)
    # An unknown provider and a provider whose server fails are refused and recorded too.
    result = platform.network.exchange(
        *signed(platform, request(w, BRACKET, rc, provider="nobody"))
    )
    assert (result.outcome, result.reason) == ("refused", "network.unknown_provider")

    class Down:
        def provide(self, agency_id: str, code: str, item: str) -> Provision:
            raise ConnectionError("intermediate server down")

    platform.network.connect_holder(TAX, Down())
    result = w.ask(BRACKET, rc)
    assert (result.outcome, result.reason, result.basis) == (
        "refused",
        "network.provider_unavailable",
        "high_cost_medical.income_bracket",
    )
    assert logged(platform, result)["basis"] == "high_cost_medical.income_bracket"
    assert leaves(platform) == len(rows(platform)) == 4


def test_an_allowed_exchange_is_answered_from_the_providers_copy(platform: Platform) -> None:
    w = world(platform)
    rc = w.people(KENPO, TAX)[0]
    old = w.value(TAX, rc, "income_bracket")
    result = w.ask(BRACKET, rc)
    assert (result.outcome, result.reason, result.basis, result.value) == (
        "provided",
        None,
        "high_cost_medical.income_bracket",
        old,
    )
    assert result.to_json()["value"] == old
    doc = logged(platform, result)
    assert (doc["outcome"], doc["basis"]) == ("provided", "high_cost_medical.income_bracket")
    assert "value" not in doc and json.dumps(old, ensure_ascii=False) not in json.dumps(doc)

    # The business record changes; the copy is what the network reads until it is refreshed.
    iid = w.iid(TAX, rc) or ""
    new = {"year": 2025, "bracket": "ア*"}
    platform.agencies.put_records(TAX, {iid: {**w.records[TAX][iid], "income_bracket": new}})
    assert (platform.agencies.record(TAX, iid) or {})["income_bracket"] == new
    assert w.ask(BRACKET, rc).value == old
    platform.agencies.refresh_copy(TAX, KIND[TAX])
    assert w.ask(BRACKET, rc).value == new

    # A person the provider holds nothing about: not held, with the basis, recorded.
    child = w.people(KENPO, without=[TAX])[0]
    result = w.ask(BRACKET, child)
    assert (result.outcome, result.reason, result.basis, result.value) == (
        "not_held",
        None,
        "high_cost_medical.income_bracket",
        None,
    )
    assert logged(platform, result)["outcome"] == "not_held"
    assert leaves(platform) == len(rows(platform)) == 4


# -- 3. authentication ------------------------------------------------------------------------


def test_unauthenticated_requests_are_refused_and_write_nothing(platform: Platform) -> None:
    w = world(platform)
    rc = w.people(KENPO, TAX)[0]
    w.ask(BRACKET, rc)  # the log is not empty: a head exists to compare with
    before = written(platform)
    good = request(w, BRACKET, rc)
    message, signature = signed(platform, good)
    bad = bytes([signature[0] ^ 1]) + signature[1:]
    stranger = replace(good, requester="nobody")
    cases: list[tuple[bytes, bytes, type[MynumberError], str]] = [
        (message, bad, AuthError, "network.bad_signature"),
        (message, signature[:-1], AuthError, "network.bad_signature"),
        (message, b"", AuthError, "network.bad_signature"),
        (*signed(platform, good, signer=TAX), AuthError, "network.bad_signature"),
        (*signed(platform, good, context=b""), AuthError, "network.bad_signature"),
        (
            *signed(platform, good, context=b"mynumber exchange request v2\x00"),
            AuthError,
            "network.bad_signature",
        ),
        (message + b" ", signature, AuthError, "network.bad_signature"),
        (*signed(platform, stranger, signer=KENPO), AuthError, "network.unknown_agency"),
        (b"not json", signature, ValidationError, "network.malformed"),
        (b"\xff\xfe", signature, ValidationError, "network.malformed"),
        (message[:-1], signature, ValidationError, "network.malformed"),
        (message.replace(b'"v":1', b'"v":2'), signature, ValidationError, "network.malformed"),
        (b"[" * 4000, signature, ValidationError, "network.malformed"),
        (b"[" * 5000, signature, ValidationError, "network.malformed"),
    ]
    for msg, sig, error, code in cases:
        with pytest.raises(error) as e:
            platform.network.exchange(msg, sig)
        assert e.value.code == code, (msg[:60], code)
    assert written(platform) == before
    assert platform.network.exchange(message, signature).outcome == "provided"


@pytest.mark.parametrize("field", ["requester", "task", "provider", "item"])
def test_identifiers_with_a_trailing_newline_are_malformed(field: str) -> None:
    """``$`` matches before a final newline: ``"tax\\n"`` must not pass as an identifier (it
    would reach the database, and overflow its 64-character columns)."""
    req = ExchangeRequest.new(
        KENPO, "high_cost_medical", TAX, "income", "0" * 26, dt.datetime.now(dt.UTC)
    )
    doc = json.loads(req.to_bytes())
    ExchangeRequest.from_bytes(json.dumps(doc).encode())
    doc[field] += "\n"
    with pytest.raises(RecordError) as e:
        ExchangeRequest.from_bytes(json.dumps(doc).encode())
    assert e.value.field == field


def test_a_signed_request_with_a_newline_in_an_identifier_writes_nothing(
    platform: Platform,
) -> None:
    w = world(platform)
    rc = w.people(KENPO, TAX)[0]
    before = written(platform)
    for task in ("high_cost_medical\n", "a" * 64 + "\n"):  # the second overflowed a column
        with pytest.raises(ValidationError) as e:
            platform.network.exchange(*signed(platform, request(w, BRACKET, rc, task=task)))
        assert (e.value.code, e.value.field) == ("network.malformed", "task")
    assert written(platform) == before


def test_a_stale_request_is_refused_and_recorded(platform: Platform, clock: FixedClock) -> None:
    w = world(platform)
    rc = w.people(KENPO, TAX)[0]
    now = clock.now()
    five = dt.timedelta(minutes=5)
    tick = dt.timedelta(milliseconds=1)
    for issued in (now - five - tick, now + five + tick, now - dt.timedelta(days=1)):
        req = request(w, BRACKET, rc, issued_at=issued)
        result = platform.network.exchange(*signed(platform, req))
        assert (result.outcome, result.reason, result.value) == (
            "refused",
            "network.stale_request",
            None,
        )
        assert logged(platform, result)["reason"] == "network.stale_request"
    for issued in (now - five, now + five):  # the window's edges are inside it
        req = request(w, BRACKET, rc, issued_at=issued)
        assert platform.network.exchange(*signed(platform, req)).outcome == "provided"
    assert leaves(platform) == len(rows(platform)) == 5


# -- 4. idempotency ---------------------------------------------------------------------------


def test_a_retried_request_is_answered_from_the_record(platform: Platform) -> None:
    w = world(platform)
    rc = w.people(KENPO, TAX)[0]
    for exchange in (BRACKET, INCOME_NO_BASIS):
        message, signature = w.sign(exchange, rc)
        first = platform.network.exchange(message, signature)
        size = written(platform)
        second = platform.network.exchange(message, signature)
        assert not first.replayed and second.replayed
        assert replace(second, replayed=False) == first
        assert written(platform) == size
    assert leaves(platform) == len(rows(platform)) == 2


def test_a_reused_request_id_with_other_bytes_is_a_conflict(platform: Platform) -> None:
    w = world(platform)
    rc = w.people(KENPO, TAX)[0]
    req = request(w, BRACKET, rc)
    first = platform.network.exchange(*signed(platform, req))
    before = written(platform)
    for other in (
        replace(req, item="income"),
        replace(req, issued_at=req.issued_at + dt.timedelta(seconds=1)),
    ):
        with pytest.raises(ConflictError) as e:
            platform.network.exchange(*signed(platform, other))
        assert (e.value.code, e.value.field) == ("network.request_id_reused", "request_id")
    # The same content in other bytes (not canonical) is other bytes: a conflict too.
    loose = json.dumps(json.loads(req.to_bytes()), indent=1).encode()
    with pytest.raises(ConflictError):
        platform.network.exchange(loose, agency_key(platform, KENPO).sign(SIGNING_CONTEXT + loose))
    assert written(platform) == before
    assert platform.network.exchange(*signed(platform, req)).leaf_index == first.leaf_index


def race(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run work(0…n-1) on n threads released at once; their results (re-raises a failure)."""
    start = threading.Barrier(n)
    results: list[Any] = [None] * n
    failures: list[BaseException] = []

    def run(k: int) -> None:
        start.wait(30)
        try:
            results[k] = work(k)
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures[:3]
    return results


def send_one(p: Platform, signed_: tuple[bytes, bytes], _k: int) -> ExchangeResult:
    return p.network.exchange(*signed_)


def test_the_same_request_from_sixteen_threads_is_recorded_once(platform: Platform) -> None:
    w = world(platform)
    people = w.people(KENPO, TAX)
    for rnd, exchange in enumerate((BRACKET, INCOME_NO_BASIS, BRACKET)):
        signed_ = w.sign(exchange, people[rnd])
        results: list[ExchangeResult] = race(16, partial(send_one, platform, signed_))
        assert [r.leaf_index for r in results] == [rnd] * 16
        assert leaves(platform) == len(rows(platform)) == rnd + 1
        first = replace(results[0], replayed=False, tree_size=0)
        assert all(replace(r, replayed=False, tree_size=0) == first for r in results)
        assert sum(not r.replayed for r in results) == 1
    assert platform.ledger.audit() == []


# -- 5. concurrency ---------------------------------------------------------------------------


def test_two_processes_of_eight_threads_lose_and_duplicate_nothing(
    platform: Platform, clock: FixedClock
) -> None:
    """Two platforms on one deployment (two server processes), eight threads each, 208
    distinct exchanges at once, while a person reads their records: every exchange is in the
    network's table and in the log exactly once, at its own index, and the log is intact."""
    w = world(platform)
    other = Platform(platform.settings, clock)
    try:
        plan = [
            (exchange, rc)
            for exchange in (BRACKET, INCOME_NO_BASIS, ADDRESS, PENSION)
            for rc in w.people(exchange[0])
        ]
        work = [(plan[k % len(plan)], w.sign(*plan[k % len(plan)])) for k in range(16 * 13)]
        reader = w.people(KENPO, TAX)[0]
        done = threading.Event()
        seen: list[int] = []
        bad: list[BaseException | list[str]] = []

        def read() -> None:
            while not done.is_set():
                try:
                    got = other.network.records_of(reader)
                except BaseException as exc:  # reported below
                    bad.append(exc)
                    return
                for r in got["records"]:
                    findings = check_bundle(json.dumps(r["proof"])).findings
                    if findings:
                        bad.append(findings)
                seen.append(len(got["records"]))

        reading = threading.Thread(target=read)
        reading.start()

        def send(k: int) -> list[ExchangeResult]:
            p = platform if k < 8 else other
            return [p.network.exchange(*signed_) for _, signed_ in work[k::16]]

        try:
            batches = race(16, send)
        finally:
            done.set()
            reading.join(60)
        assert seen and not bad, bad[:3]
        results = [r for batch in batches for r in batch]
        n = len(work)
        assert n >= 200 and len(results) == n
        assert not any(r.replayed for r in results)
        stored = rows(platform)
        assert (len(stored), leaves(platform), leaves(other)) == (n, n, n)
        assert sorted(r.leaf_index for r in results) == list(range(n))
        assert [r.leaf_index for r in stored] == list(range(n))
        with platform.ledger.engine.connect() as conn:
            hashes = dict(conn.execute(select(lm.leaves.c.idx, lm.leaves.c.leaf_hash)).all())
        by_id = {r.request_id: r for r in stored}
        for result, ((exchange, rc), _) in zip(
            results, [x for k in range(16) for x in work[k::16]], strict=True
        ):
            row = by_id[result.request_id]
            assert row.leaf_index == result.leaf_index
            assert bytes(row.leaf_hash) == bytes(hashes[row.leaf_index]) == leaf_hash(row.record)
            assert bytes(row.person) == platform.network.person_key(rc)
            if result.outcome == "provided":
                assert result.value == w.value(exchange[2], rc, exchange[3])
        assert platform.ledger.audit() == [] and other.ledger.audit() == []
        head = other.ledger.head()
        assert head is not None and head.tree_size == n
    finally:
        other.close()


# -- 6. a crash between the network's commit and the log's ------------------------------------


@pytest.mark.parametrize("appended", [False, True], ids=["before-append", "after-append"])
def test_a_crash_between_the_two_commits_leaves_one_leaf(
    platform: Platform, clock: FixedClock, monkeypatch: pytest.MonkeyPatch, appended: bool
) -> None:
    """The log's append fails (before its commit, or after it but before the network notes the
    leaf index): the row waits with no leaf index, and whatever finds it — a retry of the same
    request, the person reading their records, reconcile(), a restart — gives it one leaf."""
    w = world(platform)
    rc = w.people(KENPO, TAX)[0]
    w.ask(BRACKET, rc)
    real = platform.ledger.append
    calls: list[Sequence[bytes]] = []

    def crash(records: Sequence[bytes], *args: Any, **kwargs: Any) -> Any:
        calls.append(records)
        if appended:
            real(records, *args, **kwargs)
        raise RuntimeError("the process died")

    for heal in ("retry", "read", "reconcile", "restart"):
        message, signature = w.sign(BRACKET, rc)
        request_id = json.loads(message)["request_id"]
        size = leaves(platform)
        calls.clear()
        monkeypatch.setattr(platform.ledger, "append", crash)
        with pytest.raises(RuntimeError):
            platform.network.exchange(message, signature)
        monkeypatch.undo()
        assert len(calls) == 1, heal
        pending = row_of(platform, request_id)
        assert pending.leaf_index is None and pending.outcome == "provided"
        assert leaves(platform) == size + appended

        if heal == "retry":
            result = platform.network.exchange(message, signature)
            assert result.replayed and result.leaf_index == size
            assert result.value == w.value(TAX, rc, "income_bracket")
        elif heal == "read":
            records = platform.network.records_of(rc)["records"]
            assert [r["leaf_index"] for r in records] == list(range(size + 1))
        elif heal == "reconcile":
            assert platform.network.reconcile() == 1
        else:
            Platform(platform.settings, clock).close()  # reconciles as it starts
        assert row_of(platform, request_id).leaf_index == size, heal
        assert leaves(platform) == len(rows(platform)) == size + 1, heal
        assert platform.ledger.payload(size) == bytes(pending.record)
        assert platform.network.reconcile() == 0
        assert platform.network.exchange(message, signature).leaf_index == size
        assert leaves(platform) == size + 1
    assert platform.ledger.audit() == []


# -- 7. a person's records --------------------------------------------------------------------


def test_a_person_sees_exactly_their_records_with_proofs(
    platform: Platform, clock: FixedClock, tmp_path: Path
) -> None:
    w = world(platform)
    people = w.people(KENPO, TAX, NENKIN)[:3]
    assert len(people) == 3
    sent: dict[str, set[str]] = {rc: set() for rc in people}
    outcomes: dict[str, str] = {}
    for k, rc in enumerate(people):
        for exchange in (BRACKET, INCOME_NO_BASIS, ADDRESS, PENSION)[: k + 2]:
            r = w.ask(exchange, rc)
            sent[rc].add(r.request_id)
            outcomes[r.request_id] = r.outcome
        clock.advance(dt.timedelta(minutes=1))
    stale = request(w, BRACKET, people[0], issued_at=clock.now() - dt.timedelta(hours=1))
    r = platform.network.exchange(*signed(platform, stale))
    sent[people[0]].add(r.request_id)  # refused, but the network knew whom it was about
    outcomes[r.request_id] = r.outcome
    nobody = request(w, BRACKET, people[0], subject_code="1" * 26)
    platform.network.exchange(*signed(platform, nobody))  # about no one it knows
    assert leaves(platform) == sum(len(s) for s in sent.values()) + 1

    bundles = {}
    for rc in people:
        mine = platform.network.records_of(rc)
        key = platform.network.person_key(rc).hex()
        assert mine["subject_key"] == key
        got = {r["record"]["request_id"] for r in mine["records"]}
        assert got == sent[rc]
        for rec in mine["records"]:
            assert rec["record"]["outcome"] == outcomes[rec["record"]["request_id"]]
            assert rec["proof"]["subject_key"] == key
            assert rec["record"] == json.loads(platform.ledger.payload(rec["leaf_index"]) or b"")
            report = check_bundle(json.dumps(rec["proof"]))
            assert report.ok, report.findings
            assert report.record == rec["record"]
            assert rec["proof"]["tree_head"] == mine["tree_head"]
        bundles[rc] = mine["records"][0]["proof"]
    for rc, other in zip(people, people[1:] + people[:1], strict=True):
        theirs = dict(bundles[rc], subject_key=platform.network.person_key(other).hex())
        assert check_bundle(json.dumps(theirs)).findings == ["subject.mismatch"]
    outsider = next(rc for rc in w.numbers if rc not in people)
    assert platform.network.records_of(outsider)["records"] == []

    runner = CliRunner()
    f = tmp_path / "proof.json"
    f.write_text(json.dumps(bundles[people[0]]))
    result = runner.invoke(app, ["verify-proof", str(f)])
    assert result.exit_code == 0, result.output
    assert "verified" in result.output
    data = bytearray(bytes.fromhex(bundles[people[0]]["leaf_data"]))
    data[data.index(b'"at":"') + 6] ^= 1  # one digit of the time
    for tampered in (
        dict(bundles[people[0]], leaf_data=bytes(data).hex()),
        dict(bundles[people[0]], subject_key=platform.network.person_key(people[1]).hex()),
    ):
        f.write_text(json.dumps(tampered))
        result = runner.invoke(app, ["verify-proof", str(f)])
        assert result.exit_code == 1, result.output


# -- 8. tampering with the store --------------------------------------------------------------


def traffic(w: World, n: int = 4) -> list[tuple[str, ExchangeResult]]:
    out = []
    for rc in w.people(KENPO, TAX)[:n]:
        out.append((rc, w.ask(BRACKET, rc)))
        out.append((rc, w.ask(INCOME_NO_BASIS, rc)))
    return out


def test_a_changed_payload_byte_is_found(platform: Platform) -> None:
    w = world(platform)
    sent = traffic(w)
    rc, result = sent[2]
    body = platform.ledger.payload(result.leaf_index) or b""
    forged = body.replace(b'"outcome":"provided"', b'"outcome":"not_held"')
    assert forged != body
    with writing(platform.ledger.engine) as conn:
        conn.execute(
            update(lm.payloads).where(lm.payloads.c.idx == result.leaf_index).values(body=forged)
        )
    assert platform.ledger.audit() == [f"record {result.leaf_index} does not hash to its leaf"]
    bundle = platform.ledger.proof_bundle(result.leaf_index)
    assert check_bundle(json.dumps(bundle)).findings == ["inclusion.failed"]
    mine = platform.network.records_of(rc)["records"]
    failed = [r for r in mine if not check_bundle(json.dumps(r["proof"])).ok]
    assert [r["leaf_index"] for r in failed] == [result.leaf_index]
    assert check_bundle(json.dumps(failed[0]["proof"])).findings == ["inclusion.failed"]


def test_a_changed_leaf_hash_is_found(platform: Platform) -> None:
    w = world(platform)
    traffic(w)
    size = leaves(platform)
    with writing(platform.ledger.engine) as conn:
        conn.execute(
            update(lm.leaves).where(lm.leaves.c.idx == 3).values(leaf_hash=leaf_hash(b"forged"))
        )
    findings = platform.ledger.audit()
    assert "record 3 does not hash to its leaf" in findings
    for s in range(4, size + 1):
        assert f"the head of size {s} does not match the leaves" in findings
    assert not any(f"size {s} " in f for s in range(1, 4) for f in findings)
    with pytest.raises(LedgerIntegrityError):
        LedgerService(platform.ledger.engine, platform.keystore, platform.clock)


@pytest.mark.parametrize("column", ["root_hash", "signature"])
def test_a_changed_head_is_found(platform: Platform, column: str) -> None:
    w = world(platform)
    traffic(w)
    head = platform.ledger.head(5)
    assert head is not None
    value = leaf_hash(b"forged") if column == "root_hash" else bytes(64)
    with writing(platform.ledger.engine) as conn:
        conn.execute(update(lm.heads).where(lm.heads.c.tree_size == 5).values({column: value}))
    expected = ["the head of size 5 has a bad signature"]
    if column == "root_hash":
        expected.append("the head of size 5 does not match the leaves")
    assert platform.ledger.audit() == expected
    newest = platform.ledger.head()
    assert newest is not None
    with writing(platform.ledger.engine) as conn:
        conn.execute(
            update(lm.heads).where(lm.heads.c.tree_size == newest.tree_size).values({column: value})
        )
    with pytest.raises(LedgerIntegrityError):
        LedgerService(platform.ledger.engine, platform.keystore, platform.clock)


def test_a_second_head_of_one_size_is_a_fork(platform: Platform) -> None:
    w = world(platform)
    sent = traffic(w)
    head = platform.ledger.head()
    assert head is not None
    key = Ed25519PrivateKey.from_private_bytes(platform.keystore.secret("ledger-sth"))
    forged = sign_head(key, head.tree_size, leaf_hash(b"another history"), head.timestamp_ms)
    assert is_fork(forged, head, platform.ledger.public_key)
    bundle = platform.ledger.proof_bundle(sent[0][1].leaf_index)
    assert check_bundle(json.dumps(bundle)).ok
    bundle["earlier_head"] = forged.to_json()
    bundle["consistency_path"] = []
    assert check_bundle(json.dumps(bundle)).findings == ["head.fork"]
    # An honest earlier head of the same log is consistent.
    honest = platform.ledger.proof_bundle(sent[0][1].leaf_index, earlier_size=3)
    assert check_bundle(json.dumps(honest)).ok


def network_rows_disagreeing_with_the_log(p: Platform) -> list[str]:
    """The request ids whose network row is not the record the log holds at its index."""
    with p.ledger.engine.connect() as conn:
        hashes = dict(conn.execute(select(lm.leaves.c.idx, lm.leaves.c.leaf_hash)).all())
    out = []
    for row in rows(p):
        if row.leaf_index is None:
            continue
        logged_hash = bytes(hashes[row.leaf_index])
        if not (leaf_hash(bytes(row.record)) == bytes(row.leaf_hash) == logged_hash):
            out.append(row.request_id)
    return out


def test_a_changed_network_row_changes_nothing_a_person_sees(platform: Platform) -> None:
    """Documents that the log, not the network's row, is the authority: the network has no
    check of its own rows, but a person's records are built from the log's payloads, so a
    rewritten ``requests.record`` changes nothing they see; comparing the rows with the log
    finds the rewrite."""
    w = world(platform)
    sent = traffic(w)
    rc, result = sent[0]
    before = platform.network.records_of(rc)
    row = row_of(platform, result.request_id)
    forged = bytes(row.record).replace(b'"outcome":"provided"', b'"outcome":"refused"')
    assert forged != bytes(row.record)
    with writing(platform.network.engine) as conn:
        conn.execute(
            update(nm.requests)
            .where(nm.requests.c.request_id == result.request_id)
            .values(record=forged, outcome="refused")
        )
    after = platform.network.records_of(rc)
    assert after["records"] == before["records"]
    assert all(check_bundle(json.dumps(r["proof"])).ok for r in after["records"])
    shown = next(r for r in after["records"] if r["leaf_index"] == result.leaf_index)
    assert shown["record"]["outcome"] == "provided"
    assert platform.ledger.audit() == []
    assert network_rows_disagreeing_with_the_log(platform) == [result.request_id]


# -- 9. retention -----------------------------------------------------------------------------


def test_seven_years_on_payloads_are_erased_and_proofs_still_verify(
    platform: Platform, clock: FixedClock
) -> None:
    w = world(platform)
    t0 = clock.now()
    old = traffic(w, 2)
    clock.advance(dt.timedelta(days=3 * 365))
    new = traffic(w, 2)
    old_hashes = {
        r.leaf_index: leaf_hash(platform.ledger.payload(r.leaf_index) or b"") for _, r in old
    }
    clock.set(t0.replace(year=t0.year + 7))
    assert platform.network.erase_expired() == (0, 0)  # exactly seven years: kept
    clock.advance(dt.timedelta(days=1))
    assert platform.network.erase_expired() == (len(old), len(old))
    assert platform.network.erase_expired() == (0, 0)
    kept = {row.request_id for row in rows(platform)}
    assert kept == {r.request_id for _, r in new}
    for _, r in old:
        assert platform.ledger.payload(r.leaf_index) is None
        bundle = platform.ledger.proof_bundle(r.leaf_index)
        assert "leaf_data" not in bundle and bundle["leaf_hash"] == old_hashes[r.leaf_index].hex()
        assert check_bundle(json.dumps(bundle)).ok
    for _, r in new:
        assert logged(platform, r)["request_id"] == r.request_id
    assert platform.ledger.audit() == []
    assert leaves(platform) == len(old) + len(new)
    rc = old[0][0]
    assert {x["record"]["request_id"] for x in platform.network.records_of(rc)["records"]} == {
        r.request_id for c, r in new if c == rc
    }


# -- 10. anomalies ----------------------------------------------------------------------------


def test_a_burst_of_refusals_is_reported(platform: Platform, clock: FixedClock) -> None:
    w = world(platform)
    kenpo = w.people(KENPO, TAX)
    nenkin = w.people(NENKIN, TAX)
    start = clock.now()
    for k in range(12):
        assert w.ask(INCOME_NO_BASIS, kenpo[k % len(kenpo)]).outcome == "refused"
        if k < 9:  # nine refusals: under the threshold
            w.ask((NENKIN, "pension_benefit", TAX, "resident_tax"), nenkin[k % len(nenkin)])
        w.ask(BRACKET, kenpo[k % len(kenpo)])  # answered: not part of any burst
        clock.advance(dt.timedelta(seconds=40))
    findings = platform.network.anomalies()
    bursts = [f for f in findings if f.kind == REFUSAL_BURST]
    assert [(f.requester, f.count) for f in bursts] == [(KENPO, 12)]
    assert bursts[0].start == start and bursts[0].end == start + dt.timedelta(seconds=440)
    assert not [f for f in platform.network.anomalies(until=start) if f.kind == REFUSAL_BURST]


# -- 11. the messages on any input ------------------------------------------------------------

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_ident = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,63}", fullmatch=True)
_times = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)).map(
    lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000, tzinfo=dt.UTC)
)
_time_text = st.one_of(
    _times.map(lambda t: t.isoformat().replace("+00:00", "Z")),
    st.text(max_size=30).map(lambda s: s + "Z"),
    st.from_regex(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?([+-]\d\d:\d\d)?Z", fullmatch=True),
)
_requests = st.builds(
    ExchangeRequest,
    request_id=st.uuids().map(str),
    requester=_ident,
    task=_ident,
    provider=_ident,
    item=_ident,
    subject_code=st.text(min_size=1, max_size=64),
    issued_at=_times,
)
_records = st.builds(
    AccessRecord,
    request_id=st.text(max_size=40),
    at=_times,
    requester=st.text(max_size=40),
    task=st.text(max_size=40),
    provider=st.text(max_size=40),
    item=st.text(max_size=40),
    basis=st.none() | st.text(max_size=40),
    outcome=st.sampled_from(OUTCOMES),
    reason=st.none() | st.text(max_size=40),
    subject=st.none() | st.binary(min_size=32, max_size=32),
)
_PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "v": st.sampled_from([1, 1.0, 2, True, "1"]),
    "type": st.sampled_from(["exchange", "Exchange"]),
    "request_id": st.uuids().map(str) | st.uuids().map(lambda u: str(u).upper()),
    "issued_at": _time_text,
    "at": _time_text,
    "outcome": st.sampled_from([*OUTCOMES, "Provided"]),
    "subject": st.binary(max_size=33).map(bytes.hex) | st.text(max_size=64),
    "subject_code": st.text(max_size=70),
}
_REQUEST_KEYS = (
    "v",
    "request_id",
    "requester",
    "task",
    "provider",
    "item",
    "subject_code",
    "issued_at",
)
_RECORD_KEYS = (
    "v", "type", "request_id", "at", "requester", "task", "provider", "item", "basis",
    "outcome", "reason", "subject",
)  # fmt: skip


def _documents(keys: Sequence[str]) -> st.SearchStrategy[dict[str, Any]]:
    fields = {k: _PLAUSIBLE.get(k, _ident) | _json for k in keys}
    return st.fixed_dictionaries(fields).flatmap(
        lambda doc: st.sampled_from(["keep", "drop", "add"]).map(
            lambda how: (
                doc
                if how == "keep"
                else {k: v for k, v in list(doc.items())[1:]}
                if how == "drop"
                else {**doc, "extra": 1}
            )
        )
    )


def _parses_or_record_error(data: bytes) -> None:
    for cls in (ExchangeRequest, AccessRecord):
        try:
            parsed = cls.from_bytes(data)
        except RecordError:
            continue
        # What parses is a value whose canonical bytes parse to the same canonical bytes.
        again = cls.from_bytes(parsed.to_bytes())
        assert again.to_bytes() == parsed.to_bytes()


@hsettings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | _json.map(lambda v: json.dumps(v).encode()))
def test_any_bytes_parse_or_raise_record_error(data: bytes) -> None:
    _parses_or_record_error(data)


@hsettings(max_examples=400, deadline=None)
@given(_documents(_REQUEST_KEYS) | _documents(_RECORD_KEYS), st.booleans())
def test_any_document_parses_or_raises_record_error(doc: dict[str, Any], ascii_: bool) -> None:
    _parses_or_record_error(json.dumps(doc, ensure_ascii=ascii_).encode())


@hsettings(max_examples=200, deadline=None)
@given(_requests, _records)
def test_valid_messages_round_trip(req: ExchangeRequest, record: AccessRecord) -> None:
    assert ExchangeRequest.from_bytes(req.to_bytes()) == req
    assert AccessRecord.from_bytes(record.to_bytes()) == record
    assert ExchangeRequest.from_bytes(req.to_bytes()).to_bytes() == req.to_bytes()
    assert AccessRecord.from_bytes(record.to_bytes()).to_bytes() == record.to_bytes()


def test_jlis_answers_a_current_address_with_the_move_the_register_recorded(
    platform: Platform,
) -> None:
    """J-LIS's copy (本人確認情報) follows the identity mirror: after a move, the pension service
    asking for the current address gets the new one, without a refresh of the whole copy."""
    from mynumber.municipality.domain import EventKind

    w = world(platform)
    rc = w.people(NENKIN, JLIS)[0]
    before = w.ask(ADDRESS, rc)
    assert before.outcome == "provided"
    municipality = platform.municipality.municipality_codes()[0]
    new_address = "東京都新宿区大久保三丁目4番5号"
    platform.municipality.record(
        municipality,
        EventKind.MOVE_WITHIN,
        {"address": new_address, "postal_code": "1690072"},
        resident_code=rc,
    )
    platform.sync()
    after = w.ask(ADDRESS, rc)
    assert after.outcome == "provided" and after.value["address"] == new_address
    assert after.value["postal_code"] == "1690072"
    assert before.value != after.value
    # someone who did not move keeps their address
    other = next(x for x in w.people(NENKIN, JLIS) if x != rc)
    assert w.ask(ADDRESS, other).value == w.value(JLIS, other, "current_address")
