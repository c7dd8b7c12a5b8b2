"""The agency's enrolment and review routes (I3) over HTTP, in process, on SQLite and PostgreSQL:
a link with its provenance, a household member's number queued and decided once, the
side-by-side view, the error contract — and whole individual numbers never in any answer. A
clerk's token is bound to one agency: another agency's records and queue are refused (403
``auth.wrong_agency``) before anything is read or written."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mynumber.api.app import create_app
from mynumber.api.auth import SCOPES, TokenStore
from mynumber.config import Settings
from mynumber.platform import Platform
from test_api import Api, assert_problem
from test_enrolment import register_twins
from test_jlis import ADDRESS, number_of, register

AGENCY = "kenpo-test"
A = f"/api/agency/{AGENCY}"
OTHER = "kenpo-other"
B = f"/api/agency/{OTHER}"

MEMBER = {
    "internal_id": "H001",
    "name": "高橋 一郎",  # 高 for the registered 髙: match_normalised
    "name_kana": "タカハシ イチロウ",
    "birth_date": "昭和60年6月15日",  # 1985-06-15
    "sex": "男",
    "address": ADDRESS,
    "operator": "clerk-1",
}


UNBOUND = "mnt_a-token-minted-before-agency-bindings"


@pytest.fixture
def tokens(settings: Settings) -> dict[str, str]:
    store = TokenStore(settings.data_dir / "tokens.json")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    clerk_scopes = sorted(set(SCOPES) - {"agency:admin"})
    made = {
        # every scope but the platform-wide one: a clerk of AGENCY (the tests' default token)
        "all": store.create("all", clerk_scopes, agency=AGENCY),
        "agency": store.create("agency", ["agency:link"], agency=AGENCY),
        "other": store.create("other-clerk", ["agency:link"], agency=OTHER),
        "admin": store.create("operator", ["agency:admin"]),
        "query": store.create("jlis", ["jlis:query"]),
    }
    # An agency:link token from before tokens were bound (TokenStore no longer mints one).
    path = settings.data_dir / "tokens.json"
    data = json.loads(path.read_text())
    digest = hashlib.sha256(UNBOUND.encode()).hexdigest()
    data["tokens"].append({"name": "legacy", "scopes": ["agency:link"], "digest": digest})
    path.write_text(json.dumps(data))
    return made | {"unbound": UNBOUND}


@pytest.fixture
def api(platform: Platform, tokens: dict[str, str]) -> Iterator[Api]:
    with TestClient(create_app(platform), raise_server_exceptions=False) as client:
        yield Api(client, tokens)


def enrol(api: Api, number: str | None = None, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {**MEMBER, **over}
    if number is not None:
        body["individual_number"] = number
    r = api.post(f"{A}/members", body, token="agency")
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def twins(platform: Platform) -> tuple[str, str]:
    """(翔's number, 翼's number): twins in 髙橋 一郎's household."""
    codes = register_twins(platform)
    return number_of(platform, codes["翔"]), number_of(platform, codes["翼"])


SHO = {
    "internal_id": "H002",
    "name": "髙橋翔",
    "name_kana": "タカハシショウ",
    "birth_date": "2026-11-20",
    "sex": "1",
}


def test_enrolment_links_with_provenance_and_a_masked_notice(api: Api, platform: Platform) -> None:
    number = number_of(platform, register(platform))
    doc = enrol(api, number)
    assert doc["decision"] == "linked" and doc["review_id"] is None
    assert doc["method"] == "claimed_number"
    assert doc["items"]["name"] == "match_normalised" and doc["items"]["sex"] == "match"
    assert doc["notice"]["number"] == "********" + number[-4:]
    assert number[-4:] in doc["notice"]["ja"] and number[-4:] in doc["notice"]["en"]
    r = api.get(f"{A}/members/H001/link", token="agency")
    assert r.status_code == 200, r.text
    link = r.json()
    assert link["individual_number"] == "********" + number[-4:]
    assert (link["method"], link["policy"], link["operator"]) == (
        "claimed_number",
        "strict",
        "clerk-1",
    )
    # a retry with the same key re-runs the enrolment: the same link, replaced
    again = api.post(f"{A}/members", {**MEMBER, "individual_number": number}, key="k1")
    assert again.status_code == 200
    again = api.post(f"{A}/members", {**MEMBER, "individual_number": number}, key="k1")
    assert again.status_code == 200 and again.json()["decision"] == "linked"
    # without a number: a five-item query finds the one person
    doc = enrol(api, internal_id="H009")
    assert doc["decision"] == "linked" and doc["method"] == "five_item_query"
    assert number not in api.texts()


def test_no_link_is_404(api: Api) -> None:
    assert_problem(api.get(f"{A}/members/H404/link"), 404, "agency.no_link")


def test_household_member_number_goes_to_review_and_is_decided_once(
    api: Api, platform: Platform
) -> None:
    sho, tsubasa = twins(platform)
    doc = enrol(api, tsubasa, **SHO)  # the twin's number typed in
    assert doc["decision"] == "review" and doc["reasons"][0] == "household_member_number"
    assert doc["notice"] is None
    review_id = doc["review_id"]
    assert isinstance(review_id, int)
    assert_problem(api.get(f"{A}/members/H002/link"), 404, "agency.no_link")

    # the same member again while the item is open: refused, not queued twice
    r = api.post(f"{A}/members", {**MEMBER, **SHO, "individual_number": tsubasa})
    body = assert_problem(r, 409, "agency.member_pending")
    assert body["review_id"] == review_id

    [item] = api.get(f"{A}/reviews", token="agency").json()
    assert item["review_id"] == review_id and item["internal_id"] == "H002"
    assert item["claimed_number"] == "********" + tsubasa[-4:]
    assert item["candidate_number"] == "********" + sho[-4:]

    view = api.get(f"{A}/reviews/{review_id}", token="agency").json()
    assert view["state"] == "open"
    assert view["registered"]["name"].replace(" ", "") == "髙橋翔"
    assert view["registered"]["birth_date"] == "2026-11-20"
    assert set(view["comparison"]) == {"name", "name_kana", "birth_date", "sex", "address"}
    assert not any(c["differs"] for c in view["comparison"].values())

    path = f"{A}/reviews/{review_id}/decision"
    # a justification is required: blank is the service's review.justification
    blank = {"decision": "link", "operator": "reviewer-1", "justification": "  "}
    assert_problem(api.post(path, blank), 422, "review.justification")
    missing = {"decision": "link", "operator": "reviewer-1"}
    assert_problem(api.post(path, missing), 422, "request.invalid")

    ok = {"decision": "link", "operator": "reviewer-1", "justification": "本人確認書類で確認"}
    r = api.post(path, ok, token="agency")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "linked" and r.json()["decided_by"] == "reviewer-1"
    link = api.get(f"{A}/members/H002/link").json()
    assert link["method"] == "review" and link["individual_number"].endswith(sho[-4:])
    assert link["items"]["birth_date"] == "match"
    # decided once
    assert_problem(api.post(path, ok), 409, "review.decided")
    assert_problem(api.post(path, {**ok, "decision": "reject"}), 409, "review.decided")
    assert api.get(f"{A}/reviews").json() == []
    # now it may be enrolled again
    assert enrol(api, sho, **SHO)["decision"] == "linked"
    assert_problem(api.get(f"{A}/reviews/999999"), 404, "review.not_found")
    text = api.texts()
    assert sho not in text and tsubasa not in text


def test_a_differing_item_is_flagged_and_an_unnamed_record_can_only_be_rejected(
    api: Api, platform: Platform
) -> None:
    number = number_of(platform, register(platform))
    doc = enrol(api, number, internal_id="H003", birth_date="1985-06-16")
    assert doc["decision"] == "review" and "birth_date_mismatch" in doc["reasons"]
    view = api.get(f"{A}/reviews/{doc['review_id']}").json()
    assert view["comparison"]["birth_date"] == {"result": "mismatch", "differs": True}
    assert view["comparison"]["name"]["differs"] is False
    r = api.post(
        f"{A}/reviews/{doc['review_id']}/decision",
        {"decision": "reject", "operator": "r", "justification": "生年月日が異なる"},
    )
    assert r.status_code == 200 and r.json()["state"] == "rejected"
    assert_problem(api.get(f"{A}/members/H003/link"), 404, "agency.no_link")

    # nobody matches: the evidence names no one, so no link
    doc = enrol(api, internal_id="H004", name="山田 花子", name_kana="ヤマダ ハナコ")
    assert doc["decision"] == "unmatched"
    view = api.get(f"{A}/reviews/{doc['review_id']}").json()
    assert view["registered"] is None and view["comparison"] is None
    r = api.post(
        f"{A}/reviews/{doc['review_id']}/decision",
        {"decision": "link", "operator": "r", "justification": "x"},
    )
    assert_problem(r, 409, "review.no_candidate")
    assert number not in api.texts()


@pytest.mark.parametrize(
    ("over", "code"),
    [
        ({"sex": "3"}, "sex.invalid"),
        ({"birth_date": "令和2年2月30日"}, None),
        ({"birth_date": "not a date"}, None),
        ({"policy": "lenient"}, "request.invalid"),
        ({"is_admin": True}, "request.invalid"),
        ({"internal_id": "x" * 33}, "request.invalid"),
        ({"internal_id": "H/1"}, "request.invalid"),
        ({"name": "   "}, "field.required"),
        ({"name": "山\x00田"}, "request.invalid"),
        ({"name": "\ud800"}, "request.invalid"),
        ({"operator": ""}, "request.invalid"),
        ({"address": 12}, "request.invalid"),
        ({"individual_number": "1" * 41}, "request.invalid"),
    ],
)
def test_bad_enrolments_are_422_in_both_languages(
    api: Api, platform: Platform, over: dict[str, Any], code: str | None
) -> None:
    body = {**MEMBER, **over}
    for lang in ("ja", "en"):
        r = api.post(f"{A}/members", body, headers={"Accept-Language": lang})
        problem = assert_problem(r, 422, code)
        assert problem["code"]
    assert platform.agencies.open_reviews(AGENCY) == []
    assert platform.agencies.link_of(AGENCY, "H001") is None


def test_a_bad_check_digit_is_queued_and_the_whole_number_never_shown(
    api: Api, platform: Platform
) -> None:
    number = number_of(platform, register(platform))
    bad = number[:-1] + str((int(number[-1]) + 1) % 10)
    doc = enrol(api, bad, internal_id="H005")
    assert (doc["decision"], doc["reasons"]) == ("rejected", ["check_digit"])
    assert api.get(f"{A}/reviews").json()[0]["claimed_number"] is None
    text = api.texts()
    assert number not in text and bad not in text


def test_auth_keys_and_paths(api: Api, platform: Platform) -> None:
    assert_problem(api.get(f"{A}/reviews", token=None), 401, "auth.token")
    assert_problem(api.get(f"{A}/reviews", token="bogus"), 401, "auth.token")
    assert_problem(api.get(f"{A}/reviews", token="query"), 403, "auth.scope")
    assert_problem(api.post(f"{A}/members", MEMBER, token=None), 401, "auth.token")
    assert_problem(api.post(f"{A}/members", MEMBER, token="query"), 403, "auth.scope")
    r = api.post(f"{A}/members", MEMBER, key=None)
    assert_problem(r, 400, "idempotency.key_required")
    r = api.post(f"{A}/reviews/1/decision", {"decision": "link"}, key=None)
    assert_problem(r, 400, "idempotency.key_required")
    for bad in ("KENPO", "-x", "a" * 65, "a%00b"):
        assert_problem(api.get(f"/api/agency/{bad}/reviews"), 422, "request.invalid")
    assert_problem(api.get(f"{A}/reviews/0"), 422, "request.invalid")
    assert_problem(api.get(f"{A}/reviews/{2**64}"), 422, "request.invalid")
    assert_problem(api.get(f"{A}/reviews/abc"), 422, "request.invalid")
    assert_problem(api.get(f"{A}/members/{'x' * 33}/link"), 422, "request.invalid")
    r = api.post(
        f"{A}/reviews/1/decision", {"decision": "maybe", "operator": "r", "justification": "j"}
    )
    assert_problem(r, 422, "request.invalid")
    r = api.post(
        f"{A}/reviews/1/decision",
        {"decision": "link", "operator": "r", "justification": "j", "extra": 1},
    )
    assert_problem(r, 422, "request.invalid")
    assert platform.agencies.open_reviews(AGENCY) == []
    assert all(r.status_code < 500 for r in api.responses)


# -- one agency per token -----------------------------------------------------------------------


def _state(platform: Platform, agency: str) -> Any:
    """Everything the agency routes could change for `agency`."""
    reviews = platform.agencies.open_reviews(agency)
    return (
        reviews,
        [platform.agencies.review(agency, r["review_id"]) for r in reviews],
        {iid: platform.agencies.link_of(agency, iid) for iid in ("H001", "H002", "H777")},
    )


def _other_agency_with_a_link_and_a_review(api: Api, platform: Platform) -> tuple[str, int]:
    """OTHER's own clerk links 髙橋 一郎 and queues a twin; (the linked number, the review id)."""
    number = number_of(platform, register(platform))
    _sho, tsubasa = twins(platform)
    r = api.post(f"{B}/members", {**MEMBER, "individual_number": number}, token="other")
    assert r.status_code == 200 and r.json()["decision"] == "linked", r.text
    body = {**MEMBER, **SHO, "individual_number": tsubasa}
    r = api.post(f"{B}/members", body, token="other")
    assert r.status_code == 200 and r.json()["decision"] == "review", r.text
    review_id = r.json()["review_id"]
    assert isinstance(review_id, int)
    return number, review_id


def _every_route(review_id: int) -> dict[str, tuple[str, str, Any]]:
    """Every agency route under OTHER: its name -> (method, path, body)."""
    decision = {"decision": "reject", "operator": "clerk-1", "justification": "別人"}
    return {
        "enrol": ("POST", f"{B}/members", {**MEMBER, "internal_id": "H777"}),
        "link": ("GET", f"{B}/members/H001/link", None),
        "reviews": ("GET", f"{B}/reviews", None),
        "review": ("GET", f"{B}/reviews/{review_id}", None),
        "decide": ("POST", f"{B}/reviews/{review_id}/decision", decision),
    }


def test_every_agency_route_is_in_the_table(api: Api) -> None:
    """A route added under /api/agency (on any router) must be added to the table, and so to
    the tests below that refuse another agency's token and an unbound one on every route."""
    paths = api.client.get("/openapi.json").json()["paths"]
    routes = {
        (method.upper(), path.format(agency_id=OTHER, internal_id="H001", review_id=7))
        for path, operations in paths.items()
        if path.startswith("/api/agency/")
        for method in operations
    }
    assert routes == {(method, path) for method, path, _ in _every_route(7).values()}


PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "messages", "field", "instance"}


def _call(api: Api, method: str, path: str, body: Any, token: str, **kw: Any) -> Any:
    if method == "GET":
        return api.get(path, token=token, **kw)
    return api.post(path, body, token=token, **kw)


@pytest.fixture(params=list(_every_route(1)))
def other_route(request: Any, api: Api, platform: Platform) -> tuple[str, tuple[str, str, Any]]:
    """OTHER with a link and a review, and one of its routes: (the linked number, the route)."""
    number, review_id = _other_agency_with_a_link_and_a_review(api, platform)
    return number, _every_route(review_id)[request.param]


def test_a_token_of_one_agency_cannot_act_for_another(
    api: Api, platform: Platform, other_route: tuple[str, tuple[str, str, Any]]
) -> None:
    number, (method, path, body) = other_route
    before = _state(platform, OTHER)
    for token in ("agency", "all"):  # AGENCY's clerk, with or without every other scope
        for lang in ("ja", "en"):
            r = _call(api, method, path, body, token, headers={"Accept-Language": lang})
            problem = assert_problem(r, 403, "auth.wrong_agency")
            assert problem["field"] == "agency_id"
            # nothing of OTHER's in the answer: the problem alone
            assert set(problem) <= PROBLEM_KEYS, problem
            assert number[-4:] not in r.text
    # refused before the body and the key are even looked at
    if method == "POST":
        r = _call(api, method, path, {"nonsense": True}, "agency", key=None)
        assert_problem(r, 403, "auth.wrong_agency")
    assert _state(platform, OTHER) == before
    assert _state(platform, AGENCY) == ([], [], dict.fromkeys(("H001", "H002", "H777")))
    # OTHER's own clerk still can, and so can the platform-wide operator
    for token in ("other", "admin"):
        r = _call(api, method, path, body, token)
        assert r.status_code == 200, (token, r.text)
        if method == "POST":
            break  # the decision is made once, and H777 is enrolled once
    assert _state(platform, OTHER) != before or method == "GET"


def test_the_right_agency_sees_only_its_own_queue(api: Api, platform: Platform) -> None:
    _number, other_review = _other_agency_with_a_link_and_a_review(api, platform)
    sho, tsubasa = twins(platform)
    doc = enrol(api, tsubasa, **SHO)  # AGENCY's own clerk, AGENCY's own queue
    assert doc["decision"] == "review"
    mine = api.get(f"{A}/reviews", token="agency").json()
    assert [i["review_id"] for i in mine] == [doc["review_id"]]
    theirs = api.get(f"{B}/reviews", token="other").json()
    assert [i["review_id"] for i in theirs] == [other_review]
    # an id of OTHER's queue under AGENCY's path is simply not AGENCY's
    assert_problem(api.get(f"{A}/reviews/{other_review}", token="agency"), 404, "review.not_found")
    ok = {"decision": "link", "operator": "clerk-1", "justification": "本人確認書類で確認"}
    r = api.post(f"{A}/reviews/{doc['review_id']}/decision", ok, token="agency")
    assert r.status_code == 200 and r.json()["state"] == "linked", r.text
    assert (
        api.get(f"{A}/members/H002/link", token="agency")
        .json()["individual_number"]
        .endswith(sho[-4:])
    )
    assert [i["review_id"] for i in api.get(f"{B}/reviews", token="admin").json()] == [other_review]


def test_a_token_bound_to_no_agency_cannot_use_the_agency_routes(
    api: Api, platform: Platform, other_route: tuple[str, tuple[str, str, Any]]
) -> None:
    _number, (method, path, body) = other_route
    before = _state(platform, OTHER)
    assert_problem(_call(api, method, path, body, "unbound"), 403, "auth.agency_unbound")
    assert_problem(_call(api, method, path, body, "query"), 403, "auth.scope")
    assert _state(platform, OTHER) == before


# -- choosing a candidate -----------------------------------------------------------------------


def test_the_candidate_to_link_is_checked_over_http(api: Api, platform: Platform) -> None:
    """A review item names up to three candidates; ``candidate`` picks one (1 = the best).
    Anything but a candidate the item names is a 4xx problem, never a 500, and decides nothing."""
    first = register(platform, given_name="一郎", given_name_kana="イチロウ")
    second = register(platform, given_name="二郎", given_name_kana="ジロウ")
    a, b = number_of(platform, first), number_of(platform, second)
    # 高 for the registered 髙: compared match_normalised
    record = {"name": "高橋 二郎", "name_kana": "タカハシ ジロウ", "birth_date": "1985-06-15",
              "sex": 1, "address": ADDRESS}  # fmt: skip
    platform.agencies.store_batch(
        AGENCY,
        [],
        [
            {
                "internal_id": "M1",
                "record": record,
                "reasons": ("ambiguous",),
                "claimed": None,
                "candidates": [a, b],
                "score": 0.75,
            }
        ],
    )
    [item] = api.get(f"{A}/reviews", token="agency").json()
    assert item["candidates"] == ["********" + a[-4:], "********" + b[-4:]]
    view = api.get(f"{A}/reviews/{item['review_id']}", token="agency").json()
    assert [c["number"][-4:] for c in view["candidates_view"]] == [a[-4:], b[-4:]]

    path = f"{A}/reviews/{item['review_id']}/decision"
    ok = {"decision": "link", "operator": "reviewer-1", "justification": "保険証で確認"}
    for bad in (0, -1, 4, 2**64, 1.5, "two", None, [2]):
        assert_problem(api.post(path, {**ok, "candidate": bad}), 422, "request.invalid")
    # within the schema's 1–3, but this item has two candidates only
    body = assert_problem(api.post(path, {**ok, "candidate": 3}), 422, "review.candidate")
    assert body["field"] == "candidate"
    assert [i["review_id"] for i in api.get(f"{A}/reviews").json()] == [item["review_id"]]
    assert platform.agencies.link_of(AGENCY, "M1") is None
    assert all(r.status_code < 500 for r in api.responses)

    r = api.post(path, {**ok, "candidate": 2}, token="agency")
    assert r.status_code == 200 and r.json()["state"] == "linked", r.text
    link = api.get(f"{A}/members/M1/link", token="agency").json()
    assert link["individual_number"] == "********" + b[-4:]
    assert link["items"]["name"] == "match_normalised"  # compared with 二郎, not 一郎
    text = api.texts()
    assert a not in text and b not in text


def test_the_review_queue_comes_a_page_at_a_time(api: Api, platform: Platform) -> None:
    # a roll's worth of review items: the queue is paged by review id, with the total
    record = {k: MEMBER[k] for k in ("name", "name_kana", "birth_date", "sex", "address")}
    platform.agencies.store_batch(
        AGENCY,
        [],
        [
            {
                "internal_id": f"Q{i}",
                "record": record,
                "reasons": ("no_match",),
                "claimed": None,
                "candidates": [],
                "score": None,
            }
            for i in range(5)
        ],
    )
    r = api.get(f"{A}/reviews?limit=2", token="agency")
    assert r.status_code == 200 and r.headers["X-Total-Count"] == "5"
    first = [x["internal_id"] for x in r.json()]
    assert first == ["Q0", "Q1"]
    after = r.json()[-1]["review_id"]
    rest = api.get(f"{A}/reviews?after={after}&limit=10", token="agency").json()
    assert [x["internal_id"] for x in rest] == ["Q2", "Q3", "Q4"]
    assert len(api.get(f"{A}/reviews", token="agency").json()) == 5
    for bad in ("limit=0", "limit=1001", "after=-1", "limit=x"):
        assert_problem(api.get(f"{A}/reviews?{bad}", token="agency"), 422, "request.invalid")
