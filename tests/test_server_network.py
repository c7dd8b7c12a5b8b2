"""The information-provision network and its transparency log over real HTTP:
`mynumber serve --workers 2` on SQLite and PostgreSQL (test_server's fixture: 200 residents, two
seeded card holders, the five demo agencies and their demo exchanges).

The tests act as the other parties would. Agencies sign their requests in this process: the
seeded agencies with their own keys, which live in the deployment's keystore (this process opens
the same data directory, as the CLI does), and agencies this test registers over HTTP with keys
it generates; their codes are obtained in-process too (符号取得 goes through J-LIS, not HTTP).
Every exchange goes over HTTP. A card holder logs in with their chip file and reads their own
access records; each record's proof is checked by `mynumber verify-proof` in a subprocess, and
the log is rebuilt from its public entries.

Sections (a server start costs 10–20 s, so each test runs several on one server, per backend):

1. the seeded platform: exchanges between at least three agencies, the five agencies, the
   legal-basis table;
2. a person's records end to end: exchanges about a card holder, then their やりとり履歴 with
   proofs that verify offline (and fail, with the reason code, once edited);
3. exchanges: provided, replayed, refused (ja/en problem+json with the record's place in the
   log), bad signatures (nothing recorded), malformed input (422, never 500);
4. the ledger's public endpoints: key, heads, consistency, proofs, entries (the tree rebuilt);
5. the auditor's anomaly report (the seed's refusal burst from kenpo-mirai);
6. concurrent signed exchanges (and duplicates sent at the same moment, and a card holder
   reading their records all through, which reconciles) against both workers: one leaf per
   distinct request, at the index its answers named; the log intact;
7. no traceback, no number, no resident code, no PIN in the server log.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import random
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)
from sqlalchemy import select

from mynumber.agency.seed import DEMO_AGENCIES
from mynumber.config import ROLES, Settings
from mynumber.ledger.bundle import check_bundle
from mynumber.ledger.heads import SignedTreeHead, verify_extends, verify_head
from mynumber.ledger.merkle import MerkleTree, leaf_hash
from mynumber.municipality.bulk import export_residents
from mynumber.network import models as network_models
from mynumber.network.anomaly import REFUSAL_BURST
from mynumber.network.codes import subject_commitment
from mynumber.network.records import ExchangeRequest
from mynumber.network.service import REFUSALS, SIGNING_CONTEXT
from mynumber.platform import Platform
from test_server import REQUEST_TIMEOUT, Server, assert_clean_log, server
from test_server_cards import (
    challenge,
    fresh_client,
    load_chip,
    pins_of,
    seeded,
    sign_challenge,
    unb64url,
)

__all__ = ["server"]  # the fixture, imported from test_server (not copied)

pytestmark = pytest.mark.slow

NET = "/api/network"
LEDGER = "/api/ledger"
PROBLEM = "application/problem+json"
THREADS = 16
PER_THREAD = 10
TWINS = 8


# -- helpers --------------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def public_client(srv: Server, **headers: str) -> httpx.Client:
    """No staff token; a new connection per request, so either worker may answer."""
    return httpx.Client(
        base_url=srv.base_url,
        headers=headers,
        timeout=REQUEST_TIMEOUT,
        trust_env=False,
        limits=httpx.Limits(max_keepalive_connections=0),
    )


@contextlib.contextmanager
def platform_of(srv: Server) -> Iterator[Platform]:
    """The server's deployment opened in this process (the same data directory and databases),
    as the CLI opens it: what an agency's own systems and J-LIS would do, not over HTTP."""
    urls: dict[str, Any] = {f"{role}_database_url": None for role in ROLES}
    settings = Settings(
        data_dir=srv.data_dir, database_url=srv.database_url, master_key=None, **urls
    )
    p = Platform(settings)
    try:
        yield p
    finally:
        p.close()


def numbers_of(p: Platform, resident_codes: set[str]) -> dict[str, dict[str, str]]:
    """The register's rows (whole numbers included) of these residents."""
    rows = {r["resident_code"]: r for r in export_residents(p.municipality)}
    return {rc: rows[rc] for rc in resident_codes}


@dataclass
class Agency:
    """An agency this test registered over HTTP, with its own signing key."""

    agency_id: str
    kind: str
    key: Ed25519PrivateKey = field(repr=False)

    def sign(
        self,
        task: str,
        provider: str,
        item: str,
        code: str,
        *,
        request_id: str | None = None,
        issued_at: dt.datetime | None = None,
        requester: str | None = None,
    ) -> tuple[bytes, bytes]:
        req = ExchangeRequest(
            request_id or str(uuid.uuid4()),
            requester or self.agency_id,
            task,
            provider,
            item,
            code,
            issued_at or dt.datetime.now(dt.UTC),
        )
        data = req.to_bytes()
        return data, self.key.sign(SIGNING_CONTEXT + data)


def register_agency(srv: Server, kind: str) -> Agency:
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    agency_id = f"test-{kind.replace('_', '-')}-{uuid.uuid4().hex[:8]}"
    body = {
        "agency_id": agency_id,
        "kind": kind,
        "name_ja": "試験機関",
        "name_en": "Test agency",
        "public_key": b64(raw),
    }
    with srv.client() as c:
        r = c.post(f"{NET}/agencies", json=body)  # no Idempotency-Key
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "idempotency.key_required"
        with public_client(srv) as anon:  # no token
            r = anon.post(f"{NET}/agencies", json=body, headers={"Idempotency-Key": "k"})
        assert r.status_code == 401 and r.headers["content-type"].startswith(PROBLEM), r.text
        bad = {**body, "public_key": b64(b"\x01" * 31)}
        r = c.post(f"{NET}/agencies", json=bad, headers={"Idempotency-Key": str(uuid.uuid4())})
        assert r.status_code == 422 and r.json()["code"] == "network.bad_key", r.text
        r = c.post(f"{NET}/agencies", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert r.status_code == 200, r.text
    assert r.json() == {**body, "active": True}
    return Agency(agency_id, kind, key)


def send(
    c: httpx.Client, message: bytes, signature: bytes, lang: str | None = None
) -> httpx.Response:
    headers = {"Accept-Language": lang} if lang else {}
    return c.post(
        f"{NET}/exchanges",
        json={"request": b64(message), "signature": b64(signature)},
        headers=headers,
    )


def head_of(c: httpx.Client) -> SignedTreeHead:
    r = c.get(f"{LEDGER}/head")
    assert r.status_code == 200, r.text
    return SignedTreeHead.from_json(r.json())


def log_key(c: httpx.Client) -> Ed25519PublicKey:
    r = c.get(f"{LEDGER}/key")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    key = load_pem_public_key(r.content)
    assert isinstance(key, Ed25519PublicKey)
    return key


def all_entries(c: httpx.Client, size: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for start in range(0, size, 1000):
        r = c.get(f"{LEDGER}/entries", params={"start": start, "end": min(size, start + 1000)})
        assert r.status_code == 200, r.text
        out.extend(r.json())
    assert [e["index"] for e in out] == list(range(size))
    return out


def record_of(response: httpx.Response) -> dict[str, int]:
    ref: dict[str, int] = response.json()["record"]
    assert set(ref) == {"leaf_index", "tree_size"} and 0 <= ref["leaf_index"] < ref["tree_size"]
    return ref


def record_of_body(body: dict[str, Any]) -> dict[str, int]:
    ref: dict[str, int] = body["record"]
    return ref


def first_number(p: Platform) -> str:
    """The individual number of one active seeded resident."""
    for row in export_residents(p.municipality):
        return row["individual_number"]
    raise AssertionError("no residents")


def assert_problem(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, (status, r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith(PROBLEM), (r.headers, r.text[:200])
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["code"], body
    if code is not None:
        assert body["code"] == code, body
    return body


def log_in(srv: Server, holder: Any) -> str:
    chip = load_chip(srv, holder.chip_id)
    with fresh_client(srv) as c:
        nonce = challenge(c)
        body = {"nonce": nonce, **sign_challenge(srv, holder, chip, unb64url(nonce))}
        r = c.post("/api/login", json=body)
    assert r.status_code == 200, r.text
    session: str = r.json()["session"]
    return session


def verify_proof(bundle: dict[str, Any], path: Path) -> subprocess.CompletedProcess[str]:
    """`mynumber verify-proof FILE` in a subprocess: the person's own, offline check."""
    path.write_text(json.dumps(bundle), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYNUMBER_")}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "mynumber.cli", "verify-proof", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def flip(hex_text: str, at: int) -> str:
    """One hex digit of `hex_text` changed."""
    digit = "1" if hex_text[at] == "0" else "0"
    return hex_text[:at] + digit + hex_text[at + 1 :]


# -- 1. the seeded platform -----------------------------------------------------------------------


def seeded_platform(srv: Server) -> None:
    with public_client(srv) as c:
        r = c.get(f"{NET}/stats")
        assert r.status_code == 200, r.text
        stats = r.json()
        rows = stats["exchanges"]
        assert stats["total"] == sum(x["count"] for x in rows) >= 100, stats["total"]
        provided = [x for x in rows if x["outcome"] == "provided" and x["count"] > 0]
        assert len({x["requester"] for x in provided}) >= 3, provided
        assert len({x["provider"] for x in provided}) >= 3, provided
        refused = [x for x in rows if x["requester"] == "kenpo-mirai" and x["outcome"] == "refused"]
        assert sum(x["count"] for x in refused) >= 10, rows

        r = c.get(f"{NET}/agencies")
        assert r.status_code == 200, r.text
        listed = {a["agency_id"]: a for a in r.json()}
        assert set(listed) == {a.agency_id for a in DEMO_AGENCIES}
        for demo in DEMO_AGENCIES:
            a = listed[demo.agency_id]
            assert (a["kind"], a["name_ja"], a["name_en"], a["active"]) == (
                demo.kind,
                demo.name_ja,
                demo.name_en,
                True,
            )
            Ed25519PublicKey.from_public_bytes(base64.b64decode(a["public_key"]))

        r = c.get(f"{NET}/legal-basis")
        assert r.status_code == 200, r.text
        basis = r.json()
        assert basis and len({b["id"] for b in basis}) == len(basis)
        assert all(b["items"] and b["law"] and b["task_ja"] for b in basis)
        allowed = {(b["requester_kind"], b["task"], b["provider_kind"]) for b in basis}
        assert ("health_insurer", "qualification_check", "jlis") in allowed


# -- 2. a person's records end to end -------------------------------------------------------------


def a_persons_records(srv: Server, p: Platform, tmp: Path) -> list[str]:
    """Exchanges about card holder A by two agencies this test registers, then A's records over
    HTTP, each proof checked offline. Returns what the server log must not contain."""
    holders = seeded(srv)
    a, b = holders
    people = numbers_of(p, {a.resident_code, b.resident_code})
    insurer = register_agency(srv, "health_insurer")
    welfare = register_agency(srv, "municipal_welfare")
    codes = {}
    for agency, iid in ((insurer, "H-TEST-0001"), (welfare, "W-TEST-0001")):
        got, inactive = p.acquire_codes(
            agency.agency_id, {iid: people[a.resident_code]["individual_number"]}
        )
        assert inactive == [] and set(got) == {iid}
        codes[agency.agency_id] = got[iid]
    # The same person gets the same code on a second request (codes are issued once).
    again, _ = p.acquire_codes(
        insurer.agency_id, {"H-TEST-0001": people[a.resident_code]["individual_number"]}
    )
    assert again == {"H-TEST-0001": codes[insurer.agency_id]}

    ic, wc = codes[insurer.agency_id], codes[welfare.agency_id]
    expected: dict[str, tuple[str, str, str, str, str, str | None]] = {}
    with public_client(srv) as c:
        r = send(c, *insurer.sign("qualification_check", "jlis", "current_address", ic))
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["outcome"] == "provided" and doc["basis"] == "qualification_check.address"
        row = people[a.resident_code]
        assert doc["value"] == {"postal_code": row["postal_code"], "address": row["address"]}
        expected[doc["request_id"]] = (
            insurer.agency_id,
            "qualification_check",
            "jlis",
            "current_address",
            "provided",
            None,
        )
        r = send(c, *insurer.sign("high_cost_medical", "shinjuku-tax", "income_bracket", ic))
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["outcome"] == "provided" and set(doc["value"]) == {"year", "bracket"}, doc
        expected[doc["request_id"]] = (
            insurer.agency_id,
            "high_cost_medical",
            "shinjuku-tax",
            "income_bracket",
            "provided",
            None,
        )
        # The amount is not the bracket: no legal basis, refused and recorded.
        r = send(c, *insurer.sign("high_cost_medical", "shinjuku-tax", "income", ic))
        body = assert_problem(r, 403, "network.no_legal_basis")
        record_of(r)
        expected[body["request_id"]] = (
            insurer.agency_id,
            "high_cost_medical",
            "shinjuku-tax",
            "income",
            "refused",
            "network.no_legal_basis",
        )
        # The insurer this test registered has no intermediate-server copy: not held.
        r = send(
            c,
            *welfare.sign(
                "national_health_insurance", insurer.agency_id, "insurance_qualification", wc
            ),
        )
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["outcome"] == "not_held" and doc.get("value") is None, doc
        assert doc["basis"] == "national_health_insurance.qualification"
        expected[doc["request_id"]] = (
            welfare.agency_id,
            "national_health_insurance",
            insurer.agency_id,
            "insurance_qualification",
            "not_held",
            None,
        )

    session = log_in(srv, a)
    with public_client(srv, Authorization=f"Bearer {session}") as c:
        r = c.get(f"{NET}/me/records")
        assert r.status_code == 200, r.text
        mine = r.json()
        key = log_key(c)
    person_key = p.network.person_key(a.resident_code).hex()
    assert mine["subject_key"] == person_key
    head = SignedTreeHead.from_json(mine["tree_head"])
    assert verify_head(head, key)
    records = mine["records"]
    by_request = {x["record"]["request_id"]: x for x in records}
    assert set(expected) <= set(by_request), (set(expected), set(by_request))
    for rid, (requester, task, provider, item, outcome, reason) in expected.items():
        rec = by_request[rid]["record"]
        assert (
            rec["requester"],
            rec["task"],
            rec["provider"],
            rec["item"],
            rec["outcome"],
            rec["reason"],
        ) == (requester, task, provider, item, outcome, reason), rec
    indices = [x["leaf_index"] for x in records]
    assert indices == sorted(set(indices))
    for x in records:
        bundle = x["proof"]
        assert bundle["leaf_index"] == x["leaf_index"] and bundle["subject_key"] == person_key
        assert bundle["tree_head"] == mine["tree_head"]
        assert (
            x["record"]["subject"]
            == subject_commitment(bytes.fromhex(person_key), x["record"]["request_id"]).hex()
        )
        assert check_bundle(json.dumps(bundle)).findings == []

    # Everyone can scan the public log for the records of a subject key: exactly these.
    with public_client(srv) as c:
        entries = all_entries(c, head.tree_size)
    scanned = []
    for e in entries:
        rec = json.loads(bytes.fromhex(e["data"]))
        commitment = subject_commitment(bytes.fromhex(person_key), rec["request_id"]).hex()
        if rec["subject"] == commitment:
            scanned.append(e["index"])
    assert scanned == indices

    # Every proof passes `mynumber verify-proof` (in parallel: a subprocess is ~1 s of imports).
    def offline(x: dict[str, Any]) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
        return x, verify_proof(x["proof"], tmp / f"proof-{x['leaf_index']}.json")

    with ThreadPoolExecutor(max_workers=4) as pool:
        for x, done in pool.map(offline, records):
            assert done.returncode == 0, (done.stdout, done.stderr)
            assert f"record {x['leaf_index']} of {head.tree_size}" in done.stdout, done.stdout
            rec = x["record"]
            for f in ("requester", "task", "provider", "item", "outcome"):
                assert f"  {f}: {rec[f]}" in done.stdout, done.stdout

    # Edited, a proof fails with the reason named on stderr.
    ours = next(x for x in records if x["record"]["request_id"] in expected)
    edited = json.loads(json.dumps(ours["proof"]))
    edited["leaf_data"] = flip(edited["leaf_data"], 40)
    done = verify_proof(edited, tmp / "edited-leaf.json")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "inclusion.failed" in done.stderr and "verified" not in done.stdout, done.stderr
    edited = json.loads(json.dumps(ours["proof"]))
    edited["tree_head"]["root_hash"] = flip(edited["tree_head"]["root_hash"], 0)
    done = verify_proof(edited, tmp / "edited-root.json")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "head.bad_signature" in done.stderr, done.stderr
    edited = json.loads(json.dumps(ours["proof"]))
    edited["subject_key"] = p.network.person_key(b.resident_code).hex()  # someone else's key
    done = verify_proof(edited, tmp / "edited-subject.json")
    assert done.returncode == 1 and "subject.mismatch" in done.stderr, done.stderr

    # Holder B sees none of A's records, and only records about B.
    session_b = log_in(srv, b)
    with public_client(srv, Authorization=f"Bearer {session_b}") as c:
        r = c.get(f"{NET}/me/records")
    assert r.status_code == 200, r.text
    theirs = r.json()
    assert theirs["subject_key"] == p.network.person_key(b.resident_code).hex() != person_key
    assert not {x["leaf_index"] for x in theirs["records"]} & set(indices)
    assert all(check_bundle(json.dumps(x["proof"])).findings == [] for x in theirs["records"])

    # No session, a garbage one, an altered one, a staff token: 401 problem+json.
    with public_client(srv) as c:
        r = c.get(f"{NET}/me/records")
        assert_problem(r, 401, "login.session_invalid")
        for bearer in ("garbage", "mns_garbage", session[:-4] + "AAAA", srv.token):
            r = c.get(f"{NET}/me/records", headers={"Authorization": f"Bearer {bearer}"})
            assert_problem(r, 401, "login.session_invalid")

    return [
        *pins_of(a, b),
        *(people[rc]["individual_number"] for rc in people),
        *people,
        session,
        session_b,
    ]


# -- 3. exchanges over HTTP -----------------------------------------------------------------------


def exchanges_over_http(srv: Server, p: Platform) -> None:
    kenpo = p.agencies.internal_ids("kenpo-mirai")
    assert len(kenpo) >= 50
    with public_client(srv) as c:
        message, signature = p.agencies.sign_request(
            "kenpo-mirai", kenpo[0], "qualification_check", "jlis", "current_address"
        )
        r = send(c, message, signature)
        assert r.status_code == 200, r.text
        assert "Idempotent-Replayed" not in r.headers
        first = r.json()
        ref = record_of(r)
        assert first["outcome"] == "provided" and first["reason"] is None
        assert set(first["value"]) == {"postal_code", "address"}
        assert first["request_id"] == json.loads(message)["request_id"]
        size = head_of(c).tree_size
        assert size == ref["tree_size"] == ref["leaf_index"] + 1
        # A retry of the same body: the same record, marked as a replay, nothing appended.
        r = send(c, message, signature)
        assert r.status_code == 200, r.text
        assert r.headers.get("Idempotent-Replayed") == "true"
        assert r.json() == first
        assert head_of(c).tree_size == size

        # No legal basis: refused, recorded, a problem document in Japanese by default.
        message, signature = p.agencies.sign_request(
            "kenpo-mirai", kenpo[1], "high_cost_medical", "shinjuku-tax", "income"
        )
        r = send(c, message, signature)
        body = assert_problem(r, 403, "network.no_legal_basis")
        en, ja = REFUSALS["network.no_legal_basis"]
        assert body["title"] == ja and body["messages"] == {"ja": ja, "en": en}
        assert body["request_id"] == json.loads(message)["request_id"]
        refused = record_of(r)
        assert refused["leaf_index"] == size and head_of(c).tree_size == size + 1
        # Its retry, in English: the same record.
        r = send(c, message, signature, lang="en")
        body = assert_problem(r, 403, "network.no_legal_basis")
        assert body["title"] == en and body["detail"] == en
        assert record_of(r)["leaf_index"] == refused["leaf_index"]
        assert r.headers.get("Idempotent-Replayed") == "true"
        assert head_of(c).tree_size == size + 1
        r = c.get(f"{LEDGER}/entries", params={"start": size, "end": size + 1})
        logged = json.loads(bytes.fromhex(r.json()[0]["data"]))
        assert (logged["outcome"], logged["reason"], logged["basis"]) == (
            "refused",
            "network.no_legal_basis",
            None,
        )
        size += 1

        # Not authenticated: answered, never recorded.
        nenkin = p.agencies.internal_ids("nenkin")[0]
        message, signature = p.agencies.sign_request(
            "nenkin", nenkin, "pension_benefit", "jlis", "current_address"
        )
        bad = bytes([signature[0] ^ 1]) + signature[1:]
        assert_problem(send(c, message, bad), 401, "network.bad_signature")
        assert_problem(send(c, message, signature[:32]), 401, "network.bad_signature")
        assert_problem(send(c, message + b" ", signature), 401, "network.bad_signature")
        # Signed by another agency's key, claiming to be nenkin.
        stranger = Agency("nenkin", "pension", Ed25519PrivateKey.generate())
        code = json.loads(message)["subject_code"]
        forged = stranger.sign("pension_benefit", "jlis", "current_address", code)
        assert_problem(send(c, *forged), 401, "network.bad_signature")
        ghost = Agency("no-such-agency", "pension", Ed25519PrivateKey.generate())
        forged = ghost.sign("pension_benefit", "jlis", "current_address", code)
        assert_problem(send(c, *forged), 401, "network.unknown_agency")
        assert head_of(c).tree_size == size

        # Well signed, refused for what it says, and recorded: a stale request, an unknown code,
        # an unknown provider.
        insurer = register_agency(srv, "health_insurer")
        long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
        nobody = "X" * 26  # a code the network never issued
        for signed, reason in (
            (
                insurer.sign(
                    "qualification_check", "jlis", "current_address", nobody, issued_at=long_ago
                ),
                "network.stale_request",
            ),
            (
                insurer.sign("qualification_check", "jlis", "current_address", nobody),
                "network.unknown_code",
            ),
            (
                insurer.sign("qualification_check", "no-such-agency", "current_address", nobody),
                "network.unknown_code",
            ),
        ):
            body = assert_problem(send(c, *signed), 403, reason)
            assert record_of_body(body)["leaf_index"] == size
            size += 1
        got, _ = p.acquire_codes(insurer.agency_id, {"H-1": first_number(p)})
        signed = insurer.sign(
            "qualification_check", "no-such-agency", "current_address", got["H-1"]
        )
        body = assert_problem(send(c, *signed), 403, "network.unknown_provider")
        assert record_of_body(body)["leaf_index"] == size
        size += 1
        # A request id used again for another request: a conflict, nothing recorded.
        rid = json.loads(signed[0])["request_id"]
        other = insurer.sign(
            "qualification_check", "jlis", "current_address", got["H-1"], request_id=rid
        )
        assert_problem(send(c, *other), 409, "network.request_id_reused")
        assert head_of(c).tree_size == size

        # Malformed: 422 problem+json, never a 500, nothing recorded.
        good_req, good_sig = b64(message), b64(signature)
        junk: list[Any] = [
            {"request": "!!!", "signature": good_sig},
            {"request": good_req, "signature": "not base64 at all"},
            {"request": "==", "signature": good_sig},
            {"request": good_req, "signature": ""},
            {"request": good_req},
            {"signature": good_sig},
            {"request": good_req, "signature": good_sig, "extra": 1},
            {"request": 5, "signature": good_sig},
            {"request": [good_req], "signature": good_sig},
            {"request": "A" * 7000, "signature": good_sig},
            {"request": b64(b"x" * 4097), "signature": good_sig},
            {"request": good_req, "signature": b64(b"s" * 129)},
            [],
            "text",
            None,
        ]
        for payload in (b"not json", b"[1,2]", b"{}", b"\xff\xfe", b"null", b'{"v": 1}'):
            junk.append({"request": b64(payload), "signature": good_sig})
        doc = json.loads(message)
        for change in (
            {"v": True},
            {"v": 2},
            {"request_id": "not-a-uuid"},
            {"request_id": doc["request_id"].upper()},
            {"issued_at": "yesterday"},
            {"issued_at": "2026-01-01T00:00:00+09:00"},
            {"subject_code": ""},
            {"subject_code": 7},
            {"requester": "NENKIN"},
            {"task": "a" * 65},
            {"extra": "field"},
        ):
            altered = json.dumps({**doc, **change}).encode()
            junk.append({"request": b64(altered), "signature": good_sig})
        for i, body in enumerate(junk):
            r = c.post(f"{NET}/exchanges", json=body)
            assert_problem(r, 422)
            assert r.json()["code"] in ("request.invalid", "network.malformed"), (i, r.text)
        for raw in (b"{", b"\x00\x01", b'{"request": "' + b"A" * 100_000 + b'"}'):
            r = c.post(
                f"{NET}/exchanges", content=raw, headers={"Content-Type": "application/json"}
            )
            assert 400 <= r.status_code < 500, (raw[:20], r.status_code, r.text[:200])
        assert head_of(c).tree_size == size


# -- 4. the ledger's public endpoints -------------------------------------------------------------


def ledger_endpoints(srv: Server, p: Platform) -> None:
    with public_client(srv) as c:
        key = log_key(c)
        assert key.public_bytes(Encoding.Raw, PublicFormat.Raw) == p.ledger.public_key.public_bytes(
            Encoding.Raw, PublicFormat.Raw
        )
        a = head_of(c)
        assert verify_head(a, key)
        rng = random.Random(4)
        ids = p.agencies.internal_ids("nenkin")
        for iid in rng.sample(ids, 5):
            signed = p.agencies.sign_request(
                "nenkin", iid, "pension_benefit", "jlis", "current_address"
            )
            r = send(c, *signed)
            assert r.status_code == 200, r.text
        b = head_of(c)
        assert verify_head(b, key) and b.tree_size == a.tree_size + 5

        r = c.get(f"{LEDGER}/consistency", params={"first": a.tree_size, "second": b.tree_size})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["first"] == a.to_json() and doc["second"] == b.to_json()
        path = [bytes.fromhex(h) for h in doc["path"]]
        assert path and verify_extends(a, b, path, key)
        assert not verify_extends(a, b, path[:-1], key)
        assert not verify_extends(a, b, [bytes(32), *path[1:]], key)
        r = c.get(f"{LEDGER}/consistency", params={"first": b.tree_size, "second": b.tree_size})
        assert r.status_code == 200 and r.json()["path"] == [], r.text
        for h in (a, b):
            r = c.get(f"{LEDGER}/heads/{h.tree_size}")
            assert r.status_code == 200 and r.json() == h.to_json(), r.text
        r = c.get(f"{LEDGER}/heads/1")
        assert r.status_code == 200 and verify_head(SignedTreeHead.from_json(r.json()), key)

        for i in (0, a.tree_size // 2, a.tree_size - 1, b.tree_size - 1):
            r = c.get(f"{LEDGER}/proof/{i}", params={"earlier_size": a.tree_size})
            assert r.status_code == 200, r.text
            bundle = r.json()
            report = check_bundle(json.dumps(bundle))
            assert report.findings == [] and report.leaf_index == i, report
            assert report.tree_size == b.tree_size and report.record is not None
            assert bundle["earlier_head"] == a.to_json()
            r = c.get(f"{LEDGER}/proof/{i}")
            assert r.status_code == 200 and "earlier_head" not in r.json()
            assert check_bundle(r.text).findings == []

        entries = all_entries(c, b.tree_size)
        for e in entries:
            assert e["data"] is not None
            assert leaf_hash(bytes.fromhex(e["data"])).hex() == e["leaf_hash"], e["index"]
        tree = MerkleTree([bytes.fromhex(e["leaf_hash"]) for e in entries])
        assert tree.root() == b.root_hash and tree.root(a.tree_size) == a.root_hash
        assert len({e["leaf_hash"] for e in entries}) == len(entries), "a record logged twice"

        n = b.tree_size
        invalid: list[tuple[str, dict[str, int | str]]] = [
            ("/entries", {"start": 5, "end": 5}),
            ("/entries", {"start": 6, "end": 5}),
            ("/entries", {"start": 0, "end": 1001}),
            ("/entries", {"start": -1, "end": 3}),
            ("/entries", {"start": 0}),
            ("/entries", {"start": "a", "end": 3}),
            ("/entries", {"start": 0, "end": 2**63}),
            ("/consistency", {"first": 0, "second": n}),
            ("/consistency", {"first": n, "second": n - 1}),
            ("/consistency", {"first": 1}),
            ("/consistency", {"first": "x", "second": n}),
            ("/heads/-1", {}),
            ("/heads/abc", {}),
            (f"/heads/{2**63}", {}),
            ("/proof/-1", {}),
            ("/proof/0", {"earlier_size": 0}),
            ("/proof/0", {"earlier_size": "x"}),
        ]
        for path_, params in invalid:
            r = c.get(f"{LEDGER}{path_}", params=params)
            assert_problem(r, 422)
        unknown: list[tuple[str, dict[str, int | str]]] = [
            (f"/heads/{n + 1000}", {}),
            ("/heads/0", {}),
            ("/consistency", {"first": 1, "second": n + 1000}),
            (f"/proof/{n + 1000}", {}),
            ("/proof/0", {"earlier_size": n + 1000}),
        ]
        for path_, params in unknown:
            r = c.get(f"{LEDGER}{path_}", params=params)
            assert_problem(r, 404)
        r = c.get(f"{LEDGER}/entries", params={"start": n + 10, "end": n + 20})
        assert r.status_code == 200 and r.json() == [], r.text


# -- 5. the auditor -------------------------------------------------------------------------------


def auditor(srv: Server) -> None:
    with public_client(srv) as c:
        assert_problem(c.get(f"{NET}/anomalies"), 401, "auth.token")
        r = c.get(f"{NET}/anomalies", headers={"Authorization": "Bearer nope"})
        assert_problem(r, 401, "auth.token")
    with srv.client() as c:
        r = c.get(f"{NET}/anomalies")
        assert r.status_code == 200, r.text
        findings = r.json()
        bursts = [
            f for f in findings if f["kind"] == REFUSAL_BURST and f["requester"] == "kenpo-mirai"
        ]
        assert bursts and bursts[0]["count"] >= 10, findings
        assert bursts[0]["detail"]["ja"] and bursts[0]["detail"]["en"]
        start = dt.datetime.fromisoformat(bursts[0]["start"])
        end = dt.datetime.fromisoformat(bursts[0]["end"])
        assert start <= end
        # A window after everything: nothing to report.
        later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
        r = c.get(f"{NET}/anomalies", params={"since": later})
        assert r.status_code == 200 and r.json() == [], r.text
        for bad in ("yesterday", "2026-01-01T00:00:00", "x" * 41):
            assert_problem(c.get(f"{NET}/anomalies", params={"since": bad}), 422)


# -- 6. concurrent exchanges ----------------------------------------------------------------------

# (requester, task, provider, item, expected status): allowed ones answer 200, the last two 403.
_JOBS = (
    ("kenpo-mirai", "qualification_check", "jlis", "current_address", 200),
    ("nenkin", "pension_benefit", "jlis", "current_address", 200),
    ("shinjuku-tax", "tax_assessment", "nenkin", "pension_receipt", 200),
    ("shinjuku-kodomo", "child_allowance", "shinjuku-tax", "income_bracket", 200),
    ("kenpo-mirai", "high_cost_medical", "shinjuku-tax", "income_bracket", 200),
    ("kenpo-mirai", "high_cost_medical", "shinjuku-tax", "income", 403),
    ("nenkin", "tax_assessment", "nenkin", "pension_receipt", 403),
)


@dataclass
class Sent:
    request_id: str
    expected: int
    status: int | None = None
    leaf_index: int | None = None
    replayed: bool = False
    error: str | None = None


def _send_one(c: httpx.Client, message: bytes, signature: bytes, expected: int) -> Sent:
    sent = Sent(json.loads(message)["request_id"], expected)
    try:
        r = send(c, message, signature)
    except httpx.TransportError as e:
        sent.error = f"{type(e).__name__}: {e}"
        return sent
    sent.status = r.status_code
    sent.replayed = r.headers.get("Idempotent-Replayed") == "true"
    body = r.json()
    if r.status_code in (200, 403) and "record" in body:
        sent.leaf_index = body["record"]["leaf_index"]
        if r.status_code == 200:
            assert body["outcome"] in ("provided", "not_held"), body
    return sent


def concurrent_exchanges(srv: Server, p: Platform) -> None:
    """The burst (a card holder reading their records all through it), then every invariant
    of the log and of the network's rows."""
    rng = random.Random(6)
    ids = {a.agency_id: p.agencies.internal_ids(a.agency_id) for a in DEMO_AGENCIES}

    def signed() -> tuple[bytes, bytes, int]:
        requester, task, provider, item, status = rng.choice(_JOBS)
        iid = rng.choice(ids[requester])
        return (*p.agencies.sign_request(requester, iid, task, provider, item), status)

    jobs = [[signed() for _ in range(PER_THREAD)] for _ in range(THREADS)]
    twins = [signed() for _ in range(TWINS)]
    distinct = THREADS * PER_THREAD + TWINS
    holder = seeded(srv)[0]
    session = log_in(srv, holder)

    with public_client(srv) as c:
        before = head_of(c)

    gate = threading.Barrier(THREADS + 1)
    done = threading.Event()

    def run(i: int) -> list[Sent]:
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait(timeout=30)
        with public_client(srv) as c:
            out = [_send_one(c, *job) for job in jobs[i]]
            out.append(_send_one(c, *jobs[i][0]))  # a retry of this thread's first request
        return out

    def read_records() -> int:
        """A card holder reading their records all through the burst (the read reconciles)."""
        reads = 0
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait(timeout=30)
        with public_client(srv, Authorization=f"Bearer {session}") as c:
            while not done.is_set() or reads == 0:
                r = c.get(f"{NET}/me/records")
                assert r.status_code == 200, r.text
                for x in r.json()["records"]:
                    assert check_bundle(json.dumps(x["proof"])).findings == [], x["leaf_index"]
                reads += 1
        return reads

    with ThreadPoolExecutor(max_workers=THREADS + 1) as pool:
        reader = pool.submit(read_records)
        futures = [pool.submit(run, i) for i in range(THREADS)]
        try:
            results = [f.result(timeout=REQUEST_TIMEOUT * 5) for f in futures]
        finally:
            done.set()
        assert reader.result(timeout=REQUEST_TIMEOUT * 2) >= 1

    # Each twin sent by two threads at the same moment.
    gate = threading.Barrier(2 * TWINS)

    def twin(i: int) -> Sent:
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait(timeout=30)
        with public_client(srv) as c:
            return _send_one(c, *twins[i // 2])

    with ThreadPoolExecutor(max_workers=2 * TWINS) as pool:
        twin_results = list(pool.map(twin, range(2 * TWINS), timeout=REQUEST_TIMEOUT * 5))

    everything = [s for rs in results for s in rs] + twin_results
    assert not [s for s in everything if s.error], [s.error for s in everything if s.error][:3]
    wrong = [(s.expected, s.status) for s in everything if s.status != s.expected]
    assert not wrong, wrong[:5]
    assert all(s.leaf_index is not None for s in everything)
    firsts: dict[str, Sent] = {}
    for rs in results:
        originals, retry = rs[:-1], rs[-1]
        assert retry.request_id == originals[0].request_id and retry.replayed, retry
        assert retry.leaf_index == originals[0].leaf_index, (originals[0], retry)
        assert not any(s.replayed for s in originals), originals
        for s in originals:
            firsts[s.request_id] = s
    for i in range(TWINS):
        x, y = twin_results[2 * i], twin_results[2 * i + 1]
        assert x.request_id == y.request_id and x.leaf_index == y.leaf_index, (x, y)
        assert [x.replayed, y.replayed].count(False) == 1, (x, y)
        firsts[x.request_id] = x
    assert len(firsts) == distinct

    # One leaf per distinct request, and each at the index its answers named.
    with public_client(srv) as c:
        after = head_of(c)
        entries = all_entries(c, after.tree_size)
    assert after.tree_size == before.tree_size + distinct, (before, after, distinct)
    logged: dict[str, list[int]] = {}
    for e in entries[before.tree_size :]:
        rid = json.loads(bytes.fromhex(e["data"]))["request_id"]
        logged.setdefault(rid, []).append(e["index"])
    assert logged == {rid: [s.leaf_index] for rid, s in firsts.items()}

    # The deployment itself: the log intact, each network row with its own leaf.
    assert p.ledger.audit() == []
    r = network_models.requests.c
    with p.network.engine.connect() as conn:
        rows = conn.execute(select(r.request_id, r.leaf_index, r.leaf_hash)).all()
    assert all(row.leaf_index is not None for row in rows)
    assert len({row.leaf_index for row in rows}) == len(rows) == after.tree_size
    for row in rows:
        assert entries[row.leaf_index]["leaf_hash"] == bytes(row.leaf_hash).hex()


# -- the tests: one server start (~15 s) serves several sections ----------------------------------


def test_seeded_network_and_a_persons_records(server: Server, tmp_path: Path) -> None:
    """Sections 1, 5 and 2 (then 7)."""
    seeded_platform(server)
    auditor(server)
    with platform_of(server) as p:
        secrets_used = a_persons_records(server, p, tmp_path)
    assert_clean_log(server, secrets_used)


def test_exchanges_ledger_and_concurrency(server: Server) -> None:
    """Sections 3, 4 and 6 (then 7)."""
    with platform_of(server) as p:
        exchanges_over_http(server, p)
        ledger_endpoints(server, p)
        concurrent_exchanges(server, p)
        rows = list(export_residents(p.municipality))
    secrets_used = [r["individual_number"] for r in rows] + [r["resident_code"] for r in rows]
    assert_clean_log(server, [*secrets_used, *pins_of(*seeded(server))])
