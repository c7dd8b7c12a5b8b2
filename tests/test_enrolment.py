"""Single enrolment end to end (I3) on SQLite and PostgreSQL: the evidence J-LIS and the
municipality give, the decision, the link with its provenance or the review item, the notice."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select

from conftest import MUNI
from mynumber.agency import models as am
from mynumber.agency.enrolment import enrol
from mynumber.municipality.domain import EventKind
from mynumber.platform import Platform
from test_jlis import ADDRESS, D, items, number_of, register

AGENCY = "kenpo-test"


def test_a_five_item_match_links_with_provenance_and_a_notice(platform: Platform) -> None:
    rc = register(platform)
    number = number_of(platform, rc)
    # written as a person might: old kanji form, spaces, hiragana-free kana
    result = enrol(platform, AGENCY, "H001", items(name="高橋 一郎"), number, operator="clerk-1")
    assert result.decision.decision == "linked" and result.review_id is None
    link = platform.agencies.link_of(AGENCY, "H001")
    assert link is not None
    assert link["individual_number"] == "********" + number[-4:]
    assert link["method"] == "claimed_number" and link["operator"] == "clerk-1"
    assert link["items"]["name"] == "match_normalised" and link["items"]["sex"] == "match"
    assert result.notice is not None and number[-4:] in result.notice["ja"]
    assert number not in json.dumps(result.to_json(), ensure_ascii=False)
    # the number is stored sealed, never in clear
    with platform.agencies.engine.connect() as conn:
        raw = conn.execute(select(am.links.c.number_enc)).scalar_one()
    assert number.encode() not in bytes(raw)


def register_twins(platform: Platform) -> dict[str, str]:
    """Twins 翔 and 翼 (born 2026-11-20) in 髙橋 一郎's household: given name → resident code."""
    head = register(platform)
    hh = platform.municipality.get_resident(MUNI, head)["household_id"]
    return {
        given: register(
            platform,
            EventKind.BIRTH,
            given_name=given,
            given_name_kana=kana,
            birth_date="2026-11-20",
            household_id=hh,
            relationship="子",
        )
        for given, kana in (("翔", "ショウ"), ("翼", "ツバサ"))
    }


def test_a_family_members_number_goes_to_review_naming_the_right_person(
    platform: Platform,
) -> None:
    twins = register_twins(platform)
    sho = items(name="髙橋翔", name_kana="タカハシショウ", birth_date=D(2026, 11, 20))
    wrong = number_of(platform, twins["翼"])  # the twin's number typed in
    result = enrol(platform, AGENCY, "H002", sho, wrong, operator="clerk-1")
    assert result.decision.decision == "review"
    assert result.decision.reasons[0] == "household_member_number"
    assert result.decision.resident_code == twins["翔"]
    assert platform.agencies.link_of(AGENCY, "H002") is None
    [item] = platform.agencies.open_reviews(AGENCY)
    assert item["review_id"] == result.review_id
    assert item["reasons"][0] == "household_member_number"
    # the reviewer sees the claimed number and the right person's, both masked
    assert item["claimed_number"].endswith(wrong[-4:])
    right = number_of(platform, twins["翔"])
    assert item["candidate_number"].endswith(right[-4:]) and right not in json.dumps(item)


def test_a_claimed_number_with_a_bad_check_digit_is_queued_without_asking_jlis(
    platform: Platform,
) -> None:
    rc = register(platform)
    number = number_of(platform, rc)
    bad = number[:11] + str((int(number[11]) + 1) % 10)
    result = enrol(platform, AGENCY, "H003", items(), bad, operator="clerk-1")
    assert (result.decision.decision, result.decision.reasons) == ("rejected", ("check_digit",))
    [item] = platform.agencies.open_reviews(AGENCY)
    assert item["claimed_number"] is None and item["reasons"] == ["check_digit"]


def test_an_earlier_address_links_with_the_note_moved(platform: Platform) -> None:
    rc = register(platform)
    number = number_of(platform, rc)
    platform.municipality.record(
        MUNI, EventKind.MOVE_WITHIN, {"address": "東京都新宿区大久保三丁目4番5号"}, resident_code=rc
    )
    platform.sync()
    result = enrol(platform, AGENCY, "H004", items(address=ADDRESS), number, operator="c")
    assert result.decision.decision == "linked" and "moved" in result.decision.reasons
    link = platform.agencies.link_of(AGENCY, "H004")
    assert link is not None and link["items"]["address"] == "earlier" and link["notes"] == ["moved"]


def test_a_deceased_owner_is_never_linked(platform: Platform) -> None:
    rc = register(platform)
    number = number_of(platform, rc)
    platform.municipality.record(MUNI, EventKind.DEATH, {}, resident_code=rc)
    platform.sync()
    result = enrol(platform, AGENCY, "H005", items(), number, operator="c")
    assert result.decision.decision == "review" and "deceased" in result.decision.reasons
    assert platform.agencies.link_of(AGENCY, "H005") is None


def test_without_a_number_exactly_one_person_links_and_two_are_ambiguous(
    platform: Platform,
) -> None:
    rc = register(platform)
    number = number_of(platform, rc)
    result = enrol(platform, AGENCY, "H006", items(), None, operator="c")
    assert result.decision.decision == "linked" and result.decision.method == "five_item_query"
    link = platform.agencies.link_of(AGENCY, "H006")
    assert link is not None and link["individual_number"].endswith(number[-4:])
    # a second person with the same five items: the query never guesses
    other = register(platform, address="東京都新宿区大久保1-1-1")
    platform.municipality.record(
        MUNI, EventKind.MOVE_WITHIN, {"address": ADDRESS}, resident_code=other
    )
    platform.sync()
    number_of(platform, other)
    result = enrol(platform, AGENCY, "H007", items(), None, operator="c")
    assert (result.decision.decision, result.decision.reasons) == ("review", ("ambiguous",))
    assert platform.agencies.link_of(AGENCY, "H007") is None
    unknown = enrol(
        platform, AGENCY, "H008", items(birth_date=dt.date(1901, 1, 1)), None, operator="c"
    )
    assert unknown.decision.decision == "unmatched"


def test_a_reviewer_sees_both_records_and_decides_once(platform: Platform) -> None:
    import threading

    import pytest

    from mynumber.agency.enrolment import decide, review_view
    from mynumber.errors import ConflictError, ValidationError

    rc = register(platform)
    number = number_of(platform, rc)
    # a typo in the kana: strict sends it to review, naming the owner
    result = enrol(
        platform, AGENCY, "H010", items(name_kana="タカハシイチロ"), number, operator="c"
    )
    assert result.decision.decision == "review" and "kana_mismatch" in result.decision.reasons
    assert result.review_id is not None
    view = review_view(platform, AGENCY, result.review_id)
    assert view["registered"]["name_kana"] == "タカハシイチロウ"
    assert view["comparison"]["name_kana"]["differs"] is True
    assert view["comparison"]["birth_date"]["differs"] is False
    assert number not in json.dumps(view, ensure_ascii=False)
    with pytest.raises(ValidationError) as e:
        decide(platform, AGENCY, result.review_id, link=True, operator="r-1", justification=" ")
    assert e.value.code == "review.justification"
    # two reviewers at once: one decision is recorded, the other is told
    outcomes: list[str] = []

    def go(link: bool) -> None:
        try:
            decide(
                platform,
                AGENCY,
                result.review_id or 0,
                link=link,
                operator="r-2" if link else "r-3",
                justification="本人に電話で確認 / confirmed by phone",
            )
            outcomes.append("ok")
        except ConflictError as err:
            outcomes.append(err.code)

    threads = [threading.Thread(target=go, args=(b,)) for b in (True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok", "review.decided"]
    decided = platform.agencies.review(AGENCY, result.review_id)
    assert decided["state"] in ("linked", "rejected") and decided["justification"]
    link = platform.agencies.link_of(AGENCY, "H010")
    assert (link is not None) == (decided["state"] == "linked")
    if link is not None:
        assert link["method"] == "review" and link["operator"] == "r-2"
        assert link["items"]["name_kana"] == "mismatch"
    assert platform.agencies.open_reviews(AGENCY) == []


def test_a_record_that_names_no_one_can_only_be_rejected(platform: Platform) -> None:
    import pytest

    from mynumber.agency.enrolment import decide
    from mynumber.errors import ConflictError, NotFoundError

    result = enrol(platform, AGENCY, "H011", items(), None, operator="c")
    assert result.decision.decision == "unmatched" and result.review_id is not None
    with pytest.raises(ConflictError) as e:
        decide(platform, AGENCY, result.review_id, link=True, operator="r", justification="x")
    assert e.value.code == "review.no_candidate"
    with pytest.raises(NotFoundError):
        decide(
            platform, "other-agency", result.review_id, link=False, operator="r", justification="x"
        )
    done = decide(
        platform, AGENCY, result.review_id, link=False, operator="r", justification="転出済み"
    )
    assert done["state"] == "rejected" and done["decided_by"] == "r"


def test_one_member_is_queued_once_however_many_clerks_try(platform: Platform) -> None:
    import threading

    from mynumber.errors import ConflictError

    outcomes: list[str] = []
    lock = threading.Lock()

    def go() -> None:
        try:
            enrol(platform, AGENCY, "H020", items(), None, operator="c")
            code = "queued"
        except ConflictError as err:
            code = err.code
        with lock:
            outcomes.append(code)

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(set(outcomes)) == ["agency.member_pending", "queued"]
    assert outcomes.count("queued") == 1
    assert len(platform.agencies.open_reviews(AGENCY)) == 1


def test_a_member_waiting_for_review_is_not_linked_behind_the_reviewers_back(
    platform: Platform,
) -> None:
    """Once queued, a record is decided on the queue: a second enrolment that would now link
    (the clerk corrected the kana) is refused and stores nothing."""
    import pytest

    from mynumber.errors import ConflictError

    rc = register(platform)
    number = number_of(platform, rc)
    first = enrol(platform, AGENCY, "H030", items(name_kana="タカハシイチロ"), number, operator="c")
    assert first.decision.decision == "review"
    with pytest.raises(ConflictError) as e:
        enrol(platform, AGENCY, "H030", items(), number, operator="c")
    assert e.value.code == "agency.member_pending"
    assert e.value.extra["review_id"] == first.review_id
    assert platform.agencies.link_of(AGENCY, "H030") is None
