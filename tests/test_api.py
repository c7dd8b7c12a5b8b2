"""The HTTP API in process (FastAPI TestClient), on SQLite and on PostgreSQL.

Covers the resident flows end to end (move-in, birth, reads, events, five-item query,
verification, number change), the masking of individual numbers (I5), idempotency keys (I8) and
the error contract (I9): every error is problem+json in Japanese and English, hostile input is
answered with a 4xx and changes nothing.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import MUNI
from mynumber.api.app import create_app
from mynumber.api.auth import SCOPES, TokenStore
from mynumber.config import Settings
from mynumber.numbers import DEFAULT_RESIDENT_CODE_SCHEME
from mynumber.platform import Platform

M = f"/api/municipality/municipalities/{MUNI}"
J = "/api/jlis"
PROBLEM = "application/problem+json"
# A well-formed resident record code that nobody has.
UNKNOWN = "1234567890" + DEFAULT_RESIDENT_CODE_SCHEME.check_digit("1234567890")
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")

ADULT = {
    "family_name": "山田",
    "given_name": "太郎",
    "family_name_kana": "ヤマダ",
    "given_name_kana": "タロウ",
    "birth_date": "1980-01-02",
    "sex": "1",
    "postal_code": "1600022",
    "address": "東京都新宿区新宿三丁目1番1号",
}
NEWBORN = {
    "family_name": "山田",
    "given_name": "花子",
    "family_name_kana": "ヤマダ",
    "given_name_kana": "ハナコ",
    "birth_date": "令和8年11月20日",  # 2026-11-20, six days before the test clock's today
    "sex": "女",
    "address": "東京都新宿区新宿三丁目1番1号",
    "relationship": "子",
}


def five_items(person: dict[str, str]) -> dict[str, str]:
    return {
        "name": f"{person['family_name']} {person['given_name']}",
        "name_kana": f"{person['family_name_kana']} {person['given_name_kana']}",
        "birth_date": person["birth_date"],
        "sex": person["sex"],
        "address": person["address"],
    }


def wrong_check_digit(number: str) -> str:
    return number[:-1] + str((int(number[-1]) + 1) % 10)


def full_width(digits: str) -> str:
    return digits.translate(str.maketrans("0123456789", "０１２３４５６７８９"))


@dataclass
class Api:
    """A TestClient with staff tokens that remembers every response it got."""

    client: TestClient
    tokens: dict[str, str]
    responses: list[httpx.Response] = field(default_factory=list)

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = "all",
        key: str | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        headers: dict[str, str | bytes] | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        h: dict[str, str | bytes] = {}
        if token is not None:
            h["Authorization"] = f"Bearer {self.tokens.get(token, token)}"
        if key is not None:
            h["Idempotency-Key"] = key
        if json_body is not None:
            # ASCII escapes, so lone surrogates and controls travel as JSON \\u escapes
            content = json.dumps(json_body).encode()
        if content is not None:
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        r = self.client.request(method, path, content=content, headers=h, params=params)
        self.responses.append(r)
        return r

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(
        self, path: str, body: Any = None, *, key: str | None = "auto", **kw: Any
    ) -> httpx.Response:
        if key == "auto":
            key = uuid.uuid4().hex
        return self.request("POST", path, key=key, json_body=body, **kw)

    def texts(self) -> str:
        return "\n".join(r.text for r in self.responses)


@pytest.fixture
def tokens(settings: Settings) -> dict[str, str]:
    store = TokenStore(settings.data_dir / "tokens.json")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "all": store.create("all", sorted(SCOPES)),
        "read": store.create("reader", ["municipality:read"]),
        "write": store.create("writer", ["municipality:write"]),
        "query": store.create("agency", ["jlis:query"]),
        "admin": store.create("jlis-admin", ["jlis:admin"]),
        "none": store.create("nobody", []),
    }


@pytest.fixture
def api(platform: Platform, tokens: dict[str, str]) -> Iterator[Api]:
    app = create_app(platform)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, tokens)


@dataclass(frozen=True)
class State:
    residents: int
    events: int
    numbers: int
    identities: int


def state(p: Platform) -> State:
    counts = p.jlis.counts()
    return State(
        p.municipality.list_residents(MUNI, limit=1)["total"],
        len(p.municipality.events(MUNI, 0, 1_000_000)),
        counts["numbers"],
        counts["identities"],
    )


def assert_problem(
    r: httpx.Response, status: int | None = None, code: str | None = None
) -> dict[str, Any]:
    """`r` is an RFC 9457 problem in both languages, titled in the language asked for."""
    assert r.headers["content-type"].startswith(PROBLEM), (r.status_code, r.text[:300])
    body: dict[str, Any] = r.json()
    for key in ("type", "title", "status", "detail", "code", "messages"):
        assert key in body, (key, body)
    assert body["status"] == r.status_code
    assert body["type"] == f"urn:mynumber:problem:{body['code']}"
    assert body["messages"]["ja"] and body["messages"]["en"]
    assert JAPANESE.search(body["messages"]["ja"]), body
    english = r.request.headers.get("accept-language", "").lower().startswith("en")
    assert body["title"] == body["messages"]["en" if english else "ja"]
    assert body["detail"] == body["title"]
    if status is not None:
        assert r.status_code == status, body
    if code is not None:
        assert body["code"] == code, body
    return body


def move_in(
    api: Api, person: dict[str, str] | None = None, key: str | None = None
) -> dict[str, Any]:
    r = api.post(f"{M}/move-ins", person or ADULT, key=key or uuid.uuid4().hex)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


# -- the resident flows ----------------------------------------------------------------------


def test_move_in_birth_reads_queries_and_number_change(api: Api, platform: Platform) -> None:
    adult = move_in(api, key="move-in-1")
    code = adult["resident_code"]
    household = adult["resident"]["household_id"]
    assert adult["resident"]["relationship"] == "世帯主"
    assert adult["resident"]["status"] == "active"

    r = api.post(f"{M}/births", {**NEWBORN, "household_id": household}, key="birth-1")
    assert r.status_code == 201, r.text
    baby = r.json()
    assert baby["resident"]["birth_date"] == "2026-11-20"  # 和暦 read, ISO 8601 out
    assert baby["resident"]["sex"] == 2
    assert baby["resident"]["household_id"] == household
    assert baby["late"] is False
    assert baby["seq"] > adult["seq"]

    numbers = {c: platform.jlis.assign_number(c) for c in (code, baby["resident_code"])}
    assert len(set(numbers.values())) == 2

    for rc, number in numbers.items():
        r = api.get(f"{M}/residents/{rc}")
        assert r.status_code == 200, r.text
        shown = r.json()["individual_number"]
        assert shown == "*" * 8 + number[-4:]

    r = api.get(f"{M}/residents", params={"kana_prefix": "ヤマ"})
    assert r.status_code == 200
    listed = r.json()
    assert listed["total"] == 2
    assert {x["resident_code"] for x in listed["items"]} == set(numbers)
    assert api.get(f"{M}/residents", params={"kana_prefix": "タナカ"}).json()["total"] == 0
    assert api.get(f"{M}/residents", params={"status": "deceased"}).json()["total"] == 0

    r = api.get(f"{M}/households/{household}")
    assert r.status_code == 200
    assert [x["resident_code"] for x in r.json()] == [code, baby["resident_code"]]

    r = api.get(f"{M}/events")
    assert r.status_code == 200
    events = r.json()
    kinds = [(e["resident_code"], e["kind"]) for e in events]
    assert (code, "move_in") in kinds and (baby["resident_code"], "birth") in kinds
    assert kinds.count((code, "number_assigned")) == 1
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    after = api.get(f"{M}/events", params={"after": seqs[1]}).json()
    assert [e["seq"] for e in after] == seqs[2:]

    # A move within the municipality.
    r = api.post(f"{M}/residents/{code}/moves", {"address": "東京都新宿区西新宿二丁目8番1号"})
    assert r.status_code == 200, r.text
    assert r.json()["resident"]["address"] == "東京都新宿区西新宿二丁目8番1号"

    # Five-item query (the new address is current, the old one earlier: both find the person).
    for address in ("東京都新宿区西新宿二丁目8番1号", ADULT["address"]):
        r = api.post(f"{J}/five-item-queries", {**five_items(ADULT), "address": address}, key=None)
        assert r.status_code == 200, r.text
        found = r.json()
        assert found["outcome"] == "found" and found["resident_code"] == code
        # The one lawful exception to masking: an authorised agency's linkage gets it whole.
        assert found["individual_number"] == numbers[code]
    r = api.post(f"{J}/five-item-queries", {**five_items(ADULT), "birth_date": "1980-01-03"})
    assert r.json() == {
        "outcome": "none",
        "resident_code": None,
        "individual_number": None,
        "status": None,
        "candidates": 0,
    }

    # Verification of a claimed number, item by item, the number masked in the answer.
    r = api.post(f"{J}/verifications", {**five_items(ADULT), "individual_number": numbers[code]})
    assert r.status_code == 200, r.text
    v = r.json()
    assert v["individual_number"] == "*" * 8 + numbers[code][-4:]
    assert v["number_status"] == "active"
    assert v["all_match_or_earlier"] is True
    assert {i["item"] for i in v["items"]} >= {"birth_date", "sex"}
    # Full-width digits are what people type: read as the same number.
    r = api.post(
        f"{J}/verifications",
        {**five_items(ADULT), "individual_number": full_width(numbers[code])},
    )
    assert r.status_code == 200 and r.json() == v
    # The baby's number against the adult's items: a mismatch, never a match.
    r = api.post(
        f"{J}/verifications",
        {**five_items(ADULT), "individual_number": numbers[baby["resident_code"]]},
    )
    assert r.status_code == 200
    assert r.json()["all_match"] is False and r.json()["all_match_or_earlier"] is False

    # Number change: a new number, the old one retired for ever; a replay changes nothing.
    r = api.post(f"{J}/numbers/{code}/changes", key="change-1")
    assert r.status_code == 200, r.text
    changed = r.json()
    new_number = platform.jlis.assign_number(code)
    assert new_number != numbers[code]
    assert changed == {"resident_code": code, "individual_number": "*" * 8 + new_number[-4:]}
    again = api.post(f"{J}/numbers/{code}/changes", key="change-1")
    assert again.status_code == 200 and again.json() == changed
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert platform.jlis.assign_number(code) == new_number
    assert (
        api.get(f"{M}/residents/{code}").json()["individual_number"] == changed["individual_number"]
    )
    r = api.post(f"{J}/verifications", {**five_items(ADULT), "individual_number": numbers[code]})
    assert r.json()["number_status"] == "retired"
    kinds = [e["kind"] for e in api.get(f"{M}/events").json() if e["resident_code"] == code]
    assert kinds.count("number_changed") == 1

    r = api.get(f"{J}/stats")
    assert r.status_code == 200 and r.json()["identities"] == 2

    # I5: no whole number anywhere but in the five-item query's answer.
    whole = {*numbers.values(), new_number}
    for resp in api.responses:
        if resp.request.url.path == f"{J}/five-item-queries":
            continue
        for number in whole:
            assert number not in resp.text, (resp.request.url.path, resp.text[:200])


def test_reads_of_what_is_not_there(api: Api) -> None:
    assert_problem(api.get(f"{M}/residents/{UNKNOWN}"), 404, "resident.not_found")
    assert_problem(api.get(f"{M}/households/{MUNI}-0000000000"), 404, "household.not_found")
    assert_problem(
        api.get("/api/municipality/municipalities/131016/residents"), 404, "municipality.not_found"
    )
    assert_problem(api.get("/api/nothing-here"), 404, "request.not_found")
    assert_problem(api.request("DELETE", f"{M}/residents"), 405)
    r = api.post(f"{M}/births", {**NEWBORN, "household_id": f"{MUNI}-0000000000"})
    assert_problem(r, 404, "household.not_found")
    r = api.post(f"{M}/residents/{UNKNOWN}/deaths", {})
    assert_problem(r, 404, "resident.not_found")
    assert_problem(api.post(f"{J}/numbers/{UNKNOWN}/changes"), 404)


def test_closed_records_refuse_changes(api: Api, platform: Platform) -> None:
    gone = move_in(api)["resident_code"]
    r = api.post(f"{M}/residents/{gone}/move-outs", {"destination": "大阪府大阪市北区"})
    assert r.status_code == 200 and r.json()["resident"]["status"] == "moved_out"
    dead = move_in(api, {**ADULT, "given_name": "次郎", "given_name_kana": "ジロウ"})
    dead_code = dead["resident_code"]
    r = api.post(f"{M}/residents/{dead_code}/deaths", {"occurred_on": "2026-11-25"})
    assert r.status_code == 200 and r.json()["resident"]["status"] == "deceased"
    before = state(platform)
    for code in (gone, dead_code):
        for path, body in [
            ("deaths", {}),
            ("moves", {"address": "東京都新宿区西新宿二丁目8番1号"}),
            ("move-outs", {"destination": "大阪府大阪市北区"}),
        ]:
            r = api.post(f"{M}/residents/{code}/{path}", body)
            assert_problem(r, 409, "resident.not_active")
    # A record closed by death stays closed.
    r = api.post(f"{M}/move-ins", {**ADULT, "resident_code": dead_code})
    assert_problem(r, 409, "resident.not_active")
    assert state(platform) == before
    # Moving back in revives the same record; the already-active case is refused.
    r = api.post(f"{M}/move-ins", {**ADULT, "resident_code": gone})
    assert r.status_code == 201 and r.json()["resident_code"] == gone
    assert r.json()["resident"]["status"] == "active"
    r = api.post(f"{M}/move-ins", {**ADULT, "resident_code": gone})
    assert_problem(r, 409, "resident.already_active")


def test_municipalities(api: Api) -> None:
    r = api.get("/api/municipality/municipalities")
    assert r.status_code == 200
    assert [m["code"] for m in r.json()] == [MUNI]
    # Full-width digits and a hyphen, as typed: stored and answered as 131016.
    r = api.post(
        "/api/municipality/municipalities",
        {"code": "１３１-０１６", "prefecture": "東京都", "name": "千代田区"},
    )
    assert r.status_code == 201, r.text
    assert r.json() == {
        "code": "131016",
        "prefecture": "東京都",
        "name": "千代田区",
        "residents": 0,
    }
    r = api.post(
        "/api/municipality/municipalities", {"code": "131017", "prefecture": "東京都", "name": "x"}
    )
    assert_problem(r, 422, "municipality.check_digit")


def test_openapi_document(api: Api) -> None:
    r = api.get("/openapi.json", token=None)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert f"{M.replace(MUNI, '{code}')}/residents/{{resident_code}}/moves" in doc["paths"]
    assert "Problem" in doc["components"]["schemas"]
    responses = doc["paths"]["/api/jlis/verifications"]["post"]["responses"]
    assert set(responses["422"]["content"]) == {PROBLEM}
    assert "WWW-Authenticate" in responses["401"]["headers"]
    assert api.get("/healthz", token=None).json() == {"status": "ok"}
    assert api.get("/", token=None).status_code == 200


# -- idempotency (I8) ------------------------------------------------------------------------


def test_replay_and_key_reuse(api: Api, platform: Platform) -> None:
    first = api.post(f"{M}/move-ins", ADULT, key="same-key")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    before = state(platform)

    replay = api.post(f"{M}/move-ins", dict(reversed(ADULT.items())), key="same-key")
    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert state(platform) == before

    other = api.post(f"{M}/move-ins", {**ADULT, "given_name": "次郎"}, key="same-key")
    assert_problem(other, 409, "idempotency.key_reused")
    assert state(platform) == before

    # A key is scoped to its kind of event: the same key on a change is a different request.
    code = first.json()["resident_code"]
    r = api.post(f"{M}/residents/{code}/moves", {"address": "東京都新宿区1-2-3"}, key="k-move")
    assert r.status_code == 200
    moved = state(platform)
    r2 = api.post(f"{M}/residents/{code}/moves", {"address": "東京都新宿区1-2-3"}, key="k-move")
    assert r2.json() == r.json() and r2.headers["Idempotent-Replayed"] == "true"
    r3 = api.post(f"{M}/residents/{code}/moves", {"address": "東京都新宿区9-9-9"}, key="k-move")
    assert_problem(r3, 409, "idempotency.key_reused")
    assert state(platform) == moved


@pytest.mark.parametrize(
    "path",
    [
        f"{M}/move-ins",
        f"{M}/births",
        f"{M}/residents/{UNKNOWN}/moves",
        f"{M}/residents/{UNKNOWN}/deaths",
        "/api/municipality/municipalities",
        f"{J}/numbers/{UNKNOWN}/changes",
    ],
)
def test_a_write_without_a_key_is_refused(api: Api, platform: Platform, path: str) -> None:
    before = state(platform)
    body = ADULT if path.endswith("move-ins") else {"address": "x"}
    r = api.post(path, body, key=None)
    problem = assert_problem(r, 400, "idempotency.key_required")
    assert problem["field"] == "Idempotency-Key"
    for bad in ("", "x" * 201, "key\x7f"):
        assert_problem(api.post(path, body, key=bad), 400)
    r = api.request(
        "POST",
        path,
        json_body=body,
        headers={"Idempotency-Key": "キー".encode()},
    )
    assert_problem(r, 400, "idempotency.key_invalid")
    assert state(platform) == before


# -- authentication and scopes ---------------------------------------------------------------

ROUTES: list[tuple[str, str, str]] = [
    ("GET", f"{M}/residents", "municipality:read"),
    ("GET", f"{M}/events", "municipality:read"),
    ("GET", "/api/municipality/municipalities", "municipality:read"),
    ("POST", f"{M}/move-ins", "municipality:write"),
    ("POST", f"{M}/residents/{UNKNOWN}/deaths", "municipality:write"),
    ("POST", f"{J}/five-item-queries", "jlis:query"),
    ("POST", f"{J}/verifications", "jlis:query"),
    ("GET", f"{J}/stats", "jlis:query"),
    ("POST", f"{J}/numbers/{UNKNOWN}/changes", "jlis:admin"),
]
SCOPE_TOKEN = {
    "municipality:read": "read",
    "municipality:write": "write",
    "jlis:query": "query",
    "jlis:admin": "admin",
}


def test_tokens_and_scopes(api: Api, platform: Platform) -> None:
    move_in(api)
    before = state(platform)
    for method, path, scope in ROUTES:
        body = ADULT if method == "POST" else None
        for token in (None, "mnt_not-a-token", ""):
            r = api.request(method, path, token=token, key="k", json_body=body)
            assert_problem(r, 401, "auth.token")
            assert r.headers["WWW-Authenticate"] == "Bearer"
        r = api.request(method, path, key="k", json_body=body, headers={"Authorization": "Basic x"})
        assert_problem(r, 401)
        for token in ("none", *(t for s, t in SCOPE_TOKEN.items() if s != scope)):
            r = api.request(method, path, token=token, key="k", json_body=body)
            problem = assert_problem(r, 403, "auth.scope")
            assert problem["required_scope"] == scope
        r = api.request(method, path, token=SCOPE_TOKEN[scope], key="k2", json_body=body)
        assert r.status_code < 500 and r.status_code not in (401, 403), (path, r.text)
    # Nothing but the one move-in sent with the right scope was written.
    assert state(platform).residents == before.residents + 1


def test_language(api: Api) -> None:
    for headers, lang in [
        ({}, "ja"),
        ({"Accept-Language": "ja-JP"}, "ja"),
        ({"Accept-Language": "en"}, "en"),
        ({"Accept-Language": "en-US,en;q=0.9,ja;q=0.8"}, "en"),
        ({"Accept-Language": "fr"}, "ja"),
    ]:
        for r in (
            api.get(f"{M}/residents/{UNKNOWN}", headers=headers),
            api.get(f"{M}/residents", token=None, headers=headers),
            api.post(f"{M}/move-ins", {**ADULT, "birth_date": "平成32年1月1日"}, headers=headers),
            api.post(f"{M}/move-ins", {"family_name": 1}, headers=headers),
        ):
            body = assert_problem(r)
            assert body["title"] == body["messages"][lang]
            if lang == "en":
                assert body["title"] != body["messages"]["ja"] and body["title"][0].isascii()


# -- hostile input (I9) ----------------------------------------------------------------------

TEN_KB = "あ" * 10_240
SQL = "'; DROP TABLE residents; --"


def _person_cases() -> list[tuple[str, Any]]:
    """Bodies for a move-in or a birth that must each be refused."""
    cases: list[tuple[str, Any]] = [
        ("13-digit resident code", {"resident_code": "1234567890123"}),
        ("wrong check digit resident code", {"resident_code": "12345678900"}),
        ("resident code with letters", {"resident_code": "1234567890A"}),
        ("full-width resident code, wrong length", {"resident_code": full_width("123456789")}),
        ("平成31年5月1日 (令和元年)", {"birth_date": "平成31年5月1日"}),
        ("平成32年", {"birth_date": "平成32年1月1日"}),
        ("2月30日", {"birth_date": "令和2年2月30日"}),
        ("2月30日 western", {"birth_date": "2020年2月30日"}),
        ("full-width 2月30日", {"birth_date": "２０２０－０２－３０"}),
        ("unknown era", {"birth_date": "X5.4.1"}),
        ("huge era year", {"birth_date": "令和99999999999999999999年1月1日"}),
        ("birth before 明治", {"birth_date": "1800-01-01"}),
        ("birth in the future", {"birth_date": "2099-01-01"}),
        ("name with NUL", {"family_name": "山\x00田"}),
        ("name with BEL", {"given_name": "太\x07郎"}),
        ("name with RLO", {"family_name": "山\u202e田"}),
        ("name with newline", {"family_name": "山\n田"}),
        ("name with emoji", {"family_name": "山田😀"}),
        ("kana with emoji", {"family_name_kana": "ヤマダ😀"}),
        ("kana in kanji", {"family_name_kana": "山田"}),
        ("lone surrogate", {"family_name": "\ud800"}),
        ("address with NUL", {"address": "東京都\x00新宿区"}),
        ("household with NUL", {"household_id": "abc\x00"}),
        ("alphabet name with NUL", {"alphabet_name": "YAMADA\x00"}),
        ("residence status with NUL", {"residence_status": "\x00"}),
        ("relationship with emoji", {"relationship": "😀"}),
        ("SQL in a name", {"family_name": SQL}),
        ("SQL in kana", {"family_name_kana": SQL}),
        ("SQL in sex", {"sex": "1' OR '1'='1"}),
        ("SQL in a date", {"birth_date": "1980-01-02'; --"}),
        ("sex 0", {"sex": "0"}),
        ("sex 9", {"sex": "9"}),
        ("sex 3", {"sex": "3"}),
        ("nationality", {"nationality": "日本"}),
        ("postal code", {"postal_code": "１２３"}),
        ("period of stay", {"period_of_stay_end": "平成32年4月1日"}),
        ("number for a string", {"sex": 1}),
        ("number for a name", {"family_name": 12}),
        ("float", {"birth_date": 1980.5}),
        ("bool", {"address": True}),
        ("array", {"family_name": ["山田"]}),
        ("object", {"address": {"city": "新宿区"}}),
        ("null for required", {"family_name": None}),
        ("extra field", {"is_admin": True}),
        ("individual number is not taken", {"individual_number": "123456789018"}),
        ("municipality_code is not taken", {"municipality_code": "131016"}),
    ]
    for name in ("family_name", "family_name_kana", "birth_date", "sex", "address"):
        cases.append((f"empty {name}", {name: ""}))
        cases.append((f"blank {name}", {name: " \u3000 "}))
        cases.append((f"missing {name}", {name: ...}))
    for name in (
        "family_name",
        "given_name",
        "family_name_kana",
        "birth_date",
        "sex",
        "address",
        "postal_code",
        "household_id",
        "relationship",
        "alphabet_name",
        "residence_status",
        "notified_on",
    ):
        cases.append((f"10 kB {name}", {name: TEN_KB}))
    return cases


RAW_BODIES: list[tuple[str, bytes]] = [
    ("invalid JSON", b"{not json"),
    ("truncated JSON", json.dumps(ADULT).encode()[:-5]),
    ("not UTF-8", b'{"family_name": "\xff\xfe"}'),
    ("empty body", b""),
    ("null", b"null"),
    ("array", json.dumps([ADULT]).encode()),
    ("string", b'"hello"'),
    ("number", b"42"),
    ("10 kB of garbage", b"\x00" * 10_240),
    ("deeply nested", b"[" * 5000 + b"]" * 5000),
]


def _merge(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    out = {**base, **change}
    return {k: v for k, v in out.items() if v is not ...}


def _refused(
    api: Api, platform: Platform, failures: list[str], label: str, r: httpx.Response
) -> None:
    if not 400 <= r.status_code < 500:
        failures.append(f"{label}: {r.status_code} {r.text[:200]}")
        return
    try:
        assert_problem(r)
    except AssertionError as e:
        failures.append(f"{label}: not a problem: {e}")


@pytest.fixture
def household(api: Api) -> str:
    hh: str = move_in(api)["resident"]["household_id"]
    return hh


def test_hostile_people(api: Api, platform: Platform, household: str) -> None:
    before = state(platform)
    failures: list[str] = []
    for label, change in _person_cases():
        r = api.post(f"{M}/move-ins", _merge(ADULT, change))
        _refused(api, platform, failures, f"move-in {label}", r)
        birth_change = change if "birth_date" in change else {**change}
        r = api.post(f"{M}/births", _merge({**NEWBORN, "household_id": household}, birth_change))
        _refused(api, platform, failures, f"birth {label}", r)
    for label, raw in RAW_BODIES:
        for path in (f"{M}/move-ins", f"{M}/births"):
            r = api.request("POST", path, key=uuid.uuid4().hex, content=raw)
            _refused(api, platform, failures, f"{path} {label}", r)
    # A birth names no resident code and joins an existing household.
    for label, change in [
        ("birth with a resident code", {"resident_code": UNKNOWN, "household_id": household}),
        ("birth without household", {"household_id": ...}),
        ("birth into unknown household", {"household_id": f"{MUNI}-ffffffffff"}),
        ("birth into SQL household", {"household_id": "' OR 1=1 --"}),
    ]:
        r = api.post(f"{M}/births", _merge({**NEWBORN, "household_id": household}, change))
        _refused(api, platform, failures, label, r)
    assert not failures, "\n".join(failures)
    assert state(platform) == before


def test_hostile_paths_and_queries(api: Api, platform: Platform) -> None:
    code = move_in(api)["resident_code"]
    before = state(platform)
    failures: list[str] = []
    bad_municipalities = [
        "131016",  # 千代田区: a valid code, not in this deployment
        "131040",  # wrong check digit
        "1310411",
        "13104",
        "abc",
        "%27%20OR%201%3D1",
        "%00",
        "１３１０４０",
    ]
    for muni in bad_municipalities:
        base = f"/api/municipality/municipalities/{muni}"
        for label, r in [
            ("move-in", api.post(f"{base}/move-ins", ADULT)),
            ("list", api.get(f"{base}/residents")),
            ("events", api.get(f"{base}/events")),
            ("resident", api.get(f"{base}/residents/{code}")),
            ("household", api.get(f"{base}/households/x")),
            ("death", api.post(f"{base}/residents/{code}/deaths", {})),
        ]:
            _refused(api, platform, failures, f"{label} in {muni}", r)
    bad_codes = [
        "1234567890123",
        "12345678900",
        full_width("12345678900"),
        "%27%20OR%201%3D1%20--",
        "%00",
        "x" * 21,
        "%F0%9F%98%80",
    ]
    for rc in bad_codes:
        for label, r in [
            ("get", api.get(f"{M}/residents/{rc}")),
            ("move", api.post(f"{M}/residents/{rc}/moves", {"address": "東京都新宿区1"})),
            (
                "name",
                api.post(
                    f"{M}/residents/{rc}/name-changes",
                    {"family_name": "田中", "family_name_kana": "タナカ"},
                ),
            ),
            ("number change", api.post(f"{J}/numbers/{rc}/changes")),
        ]:
            _refused(api, platform, failures, f"{label} {rc}", r)
    for hh in ["%00", "x" * 41, "%27%20OR%201%3D1", "%F0%9F%98%80"]:
        _refused(api, platform, failures, f"household {hh}", api.get(f"{M}/households/{hh}"))
    for params in [
        {"kana_prefix": "\x00"},
        {"kana_prefix": "😀"},
        {"kana_prefix": "%"},
        {"kana_prefix": SQL},
        {"kana_prefix": "ア" * 51},
        {"status": "alive"},
        {"status": "active' OR '1'='1"},
        {"limit": 0},
        {"limit": 501},
        {"limit": "ten"},
        {"offset": -1},
        {"offset": 10**30},
    ]:
        _refused(
            api, platform, failures, f"list {params}", api.get(f"{M}/residents", params=params)
        )
    for params in [{"after": -1}, {"after": 2**63}, {"limit": 0}, {"limit": 1001}, {"after": "x"}]:
        _refused(api, platform, failures, f"events {params}", api.get(f"{M}/events", params=params))
    assert not failures, "\n".join(failures)
    assert state(platform) == before


def test_hostile_changes(api: Api, platform: Platform) -> None:
    code = move_in(api)["resident_code"]
    before = state(platform)
    failures: list[str] = []
    cases: list[tuple[str, dict[str, Any]]] = [
        ("moves", {}),
        ("moves", {"address": ""}),
        ("moves", {"address": ADULT["address"]}),  # the same address
        ("moves", {"address": "東京都\x00新宿区"}),
        ("moves", {"address": TEN_KB}),
        ("moves", {"address": ["x"]}),
        ("moves", {"address": "東京都新宿区1", "postal_code": "abc"}),
        ("moves", {"address": "東京都新宿区1", "occurred_on": "平成32年1月1日"}),
        ("moves", {"address": "東京都新宿区1", "occurred_on": "2月30日"}),
        ("moves", {"address": "東京都新宿区1", "occurred_on": "2099-01-01"}),
        ("moves", {"address": "東京都新宿区1", "notified_on": "2099-01-01"}),
        (
            "moves",
            {"address": "東京都新宿区1", "occurred_on": "2026-11-20", "notified_on": "2026-11-01"},
        ),
        ("moves", {"address": "東京都新宿区1", "unknown": 1}),
        ("move-outs", {"destination": ""}),
        ("move-outs", {"destination": " \u3000"}),
        ("move-outs", {"destination": "\x00"}),
        ("move-outs", {"destination": 5}),
        ("move-outs", {"destination": "大阪府", "occurred_on": "2099-01-01"}),
        ("deaths", {"occurred_on": "令和2年2月30日"}),
        ("deaths", {"occurred_on": "2099-01-01"}),
        ("deaths", {"notified_on": 5}),
        ("deaths", {"cause": "x"}),
        ("name-changes", {"family_name": "", "family_name_kana": "タナカ"}),
        ("name-changes", {"family_name": "田\x00中", "family_name_kana": "タナカ"}),
        ("name-changes", {"family_name": "田中😀", "family_name_kana": "タナカ"}),
        ("name-changes", {"family_name": "田中", "family_name_kana": SQL}),
        ("name-changes", {"family_name": TEN_KB, "family_name_kana": "タナカ"}),
        ("household-changes", {"household_id": "", "relationship": "子"}),
        ("household-changes", {"household_id": "x" * 41, "relationship": "子"}),
        ("household-changes", {"household_id": "a\x00", "relationship": "子"}),
        ("household-changes", {"household_id": "h", "relationship": "\x00"}),
        ("household-changes", {"household_id": "h", "relationship": SQL}),
    ]
    for path, body in cases:
        r = api.post(f"{M}/residents/{code}/{path}", body)
        _refused(api, platform, failures, f"{path} {body!r:.80}", r)
    for label, raw in RAW_BODIES:
        r = api.request("POST", f"{M}/residents/{code}/moves", key=uuid.uuid4().hex, content=raw)
        _refused(api, platform, failures, f"moves {label}", r)
    assert not failures, "\n".join(failures)
    assert state(platform) == before
    assert api.get(f"{M}/residents/{code}").json()["status"] == "active"


def test_hostile_jlis(api: Api, platform: Platform) -> None:
    code = move_in(api)["resident_code"]
    number = platform.jlis.assign_number(code)
    before = state(platform)
    failures: list[str] = []
    claims = [
        ("13 digits", "1234567890123"),
        ("11 digits", "12345678901"),
        ("wrong check digit", wrong_check_digit(number)),
        ("full-width wrong check digit", full_width(wrong_check_digit(number))),
        ("full-width 11 digits", full_width(number[:11])),
        ("letters", "12345678901A"),
        ("empty", ""),
        ("NUL", number + "\x00"),
        ("SQL", "' OR 1=1 --"),
        ("number", int(number)),
        ("array", [number]),
        ("null", None),
    ]
    items = five_items(ADULT)
    for label, claim in claims:
        r = api.post(f"{J}/verifications", {**items, "individual_number": claim})
        _refused(api, platform, failures, f"verify {label}", r)
    for label, change in [
        ("平成31年5月1日", {"birth_date": "平成31年5月1日"}),
        ("平成32年", {"birth_date": "平成32年1月1日"}),
        ("2月30日", {"birth_date": "2020-02-30"}),
        ("sex", {"sex": "x"}),
        ("empty name", {"name": "  "}),
        ("empty kana", {"name_kana": ""}),
        ("empty address", {"address": ""}),
        ("control", {"name": "山田\x00太郎"}),
        ("10 kB", {"address": TEN_KB}),
        ("number", {"name": 5}),
        ("extra", {"individual_number_hint": "1"}),
        ("missing", {"address": ...}),
    ]:
        body = _merge(items, change)
        r = api.post(f"{J}/five-item-queries", body)
        _refused(api, platform, failures, f"query {label}", r)
        r = api.post(f"{J}/verifications", {**body, "individual_number": number})
        _refused(api, platform, failures, f"verify items {label}", r)
    for label, raw in RAW_BODIES:
        for path in (f"{J}/five-item-queries", f"{J}/verifications"):
            r = api.request("POST", path, key=uuid.uuid4().hex, content=raw)
            _refused(api, platform, failures, f"{path} {label}", r)
    assert not failures, "\n".join(failures)
    assert state(platform) == before
    assert platform.jlis.assign_number(code) == number
    for resp in api.responses:
        if resp.request.url.path != f"{J}/five-item-queries":
            assert number not in resp.text


def test_sql_looking_text_is_only_text(api: Api, platform: Platform) -> None:
    """Where free text is allowed, SQL is stored as the characters it is; nothing else happens."""
    before = state(platform)
    body = {**ADULT, "address": f"東京都新宿区 {SQL}", "household_id": "x' OR '1'='1"}
    r = api.post(f"{M}/move-ins", body)
    assert r.status_code == 201, r.text
    assert r.json()["resident"]["address"] == body["address"]
    after = state(platform)
    assert after.residents == before.residents + 1
    r = api.get(f"{M}/households/x' OR '1'='1")
    assert r.status_code == 200 and len(r.json()) == 1


def test_no_whole_number_in_logs(
    api: Api, platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    adult = move_in(api)
    code = adult["resident_code"]
    number = platform.jlis.assign_number(code)
    household = adult["resident"]["household_id"]
    baby = api.post(f"{M}/births", {**NEWBORN, "household_id": household}).json()
    numbers = {number, platform.jlis.assign_number(baby["resident_code"])}
    api.get(f"{M}/residents/{code}")
    api.get(f"{M}/residents")
    api.get(f"{M}/events")
    api.post(f"{J}/five-item-queries", five_items(ADULT))
    api.post(f"{J}/verifications", {**five_items(ADULT), "individual_number": number})
    api.post(
        f"{J}/verifications", {**five_items(ADULT), "individual_number": wrong_check_digit(number)}
    )
    api.post(f"{J}/verifications", {**five_items(ADULT), "individual_number": number + "1"})
    api.post(f"{J}/numbers/{code}/changes")
    numbers.add(platform.jlis.assign_number(code))
    api.post(f"{M}/move-ins", {**ADULT, "individual_number": number})
    logged = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records
    )
    for n in numbers:
        assert n not in logged
        assert n not in caplog.text
