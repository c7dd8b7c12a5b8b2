"""The auditor's anomaly report: each rule on a constructed case and on a near miss just under its
threshold, burst merging, local-day boundaries, and properties over random access logs (order does
not matter; refusals alone make bursts; office-hour traffic never makes odd hours; bursts agree
with an independent definition)."""

from __future__ import annotations

import datetime as dt
import itertools
import operator
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mynumber.clock import JST
from mynumber.network.anomaly import (
    MANY_PEOPLE,
    ODD_HOURS,
    REFUSAL_BURST,
    Access,
    Finding,
    Rules,
    anomaly_report,
)

UTC = dt.UTC
DAY0 = dt.date(2026, 11, 2)


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    """A JST time on DAY0 + `day`."""
    d = DAY0 + dt.timedelta(days=day)
    return dt.datetime(d.year, d.month, d.day, hour, minute, second, tzinfo=JST)


def person(n: int) -> bytes:
    return n.to_bytes(8, "big")


def lookups(requester: str, day: int, people: range, hour: int = 10) -> list[Access]:
    """One provided lookup per person, a second apart, starting at `hour` JST on `day`."""
    start = at(day, hour)
    return [
        Access(requester, person(p), start + dt.timedelta(seconds=i), "provided")
        for i, p in enumerate(people)
    ]


def refusals(requester: str, times: list[dt.datetime]) -> list[Access]:
    return [Access(requester, None, t, "refused") for t in times]


def kinds(findings: list[Finding], kind: str) -> list[Finding]:
    return [f for f in findings if f.kind == kind]


# ---- anomaly.many_people ------------------------------------------------------------------------


def usual_days(requester: str, per_day: int, days: int = 3) -> list[Access]:
    return [a for d in range(days) for a in lookups(requester, d, range(per_day))]


def test_many_people_fires_above_min_and_factor() -> None:
    log = usual_days("city-a", 10) + lookups("city-a", 3, range(100, 151))  # 51 people
    (finding,) = anomaly_report(log)
    assert finding.kind == MANY_PEOPLE
    assert finding.requester == "city-a"
    assert finding.count == 51
    assert finding.baseline == 10.0  # median of 10, 10, 10, 51
    assert finding.start == at(3, 10)
    assert finding.end == at(3, 10, 0, 50)
    assert finding.start.utcoffset() == dt.timedelta(hours=9)
    assert "51" in finding.detail_en and "51" in finding.detail_ja
    assert str(DAY0 + dt.timedelta(days=3)) in finding.detail_en


def test_many_people_near_miss_at_the_minimum() -> None:
    log = usual_days("city-a", 10) + lookups("city-a", 3, range(100, 150))  # 50, not more
    assert anomaly_report(log) == []


def test_many_people_near_miss_at_the_factor() -> None:
    # median 12: 5 × 12 = 60 people is not more than the factor allows, 61 is
    log = usual_days("city-a", 12)
    assert anomaly_report(log + lookups("city-a", 3, range(100, 160))) == []
    (finding,) = anomaly_report(log + lookups("city-a", 3, range(100, 161)))
    assert (finding.kind, finding.count, finding.baseline) == (MANY_PEOPLE, 61, 12.0)


def test_many_people_counts_distinct_known_people_only() -> None:
    log = usual_days("city-a", 10)
    day3 = at(3, 10)
    log += [
        Access("city-a", person(1), day3 + dt.timedelta(seconds=i), "provided") for i in range(80)
    ]
    log += [Access("city-a", None, day3 + dt.timedelta(seconds=i), "not_held") for i in range(80)]
    assert anomaly_report(log) == []


def test_many_people_new_agency_uses_the_median_over_all_agencies() -> None:
    # city-b was active on one day only: its own median would be that very day
    newcomer = lookups("city-b", 3, range(60))
    (finding,) = anomaly_report(usual_days("city-a", 5) + newcomer)
    assert (finding.requester, finding.count, finding.baseline) == ("city-b", 60, 5.0)
    assert "all agencies" in finding.detail_en
    # the same day against busier neighbours: median 20, 5 × 20 = 100 ≥ 60
    assert anomaly_report(usual_days("city-a", 20) + newcomer) == []
    # min_days decides when an agency's own history is enough
    assert anomaly_report(usual_days("city-a", 5) + newcomer, rules=Rules(min_days=1)) == []


# ---- anomaly.odd_hours --------------------------------------------------------------------------


def test_odd_hours_fires_from_the_minimum() -> None:
    night = [Access("city-a", person(i), at(0, 23, i), "provided") for i in range(5)]
    (finding,) = anomaly_report(usual_days("city-a", 3) + night)
    assert finding.kind == ODD_HOURS
    assert finding.count == 5
    assert (finding.start, finding.end) == (at(0, 23, 0), at(0, 23, 4))
    assert finding.baseline == 5 / 3  # 5 odd-hour requests over 3 active days
    assert anomaly_report(usual_days("city-a", 3) + night[:4]) == []


def test_odd_hours_boundaries() -> None:
    # office hours are [07:00, 22:00): 22:00:00 and 06:59:59 are outside, 07:00 and 21:59:59 not
    inside = [at(0, 7), at(0, 21, 59, 59), at(0, 12), at(0, 7, 0, 1), at(0, 21)]
    assert anomaly_report([Access("x", None, t, "provided") for t in inside]) == []
    outside = [at(0, 22), at(0, 6, 59, 59), at(0, 0), at(0, 3), at(0, 23, 59, 59)]
    (finding,) = anomaly_report([Access("x", None, t, "provided") for t in outside])
    assert (finding.kind, finding.count) == (ODD_HOURS, 5)
    assert (finding.start, finding.end) == (at(0, 0), at(0, 23, 59, 59))


def test_office_hours_past_midnight() -> None:
    night_shift = Rules(office_hours=(dt.time(20, 0), dt.time(6, 0)))
    nights = [Access("x", None, at(0, h), "provided") for h in (20, 22, 23, 1, 5)]
    assert anomaly_report(nights, rules=night_shift) == []
    days = [Access("x", None, at(0, h), "provided") for h in (6, 9, 12, 15, 19)]
    (finding,) = anomaly_report(days, rules=night_shift)
    assert finding.count == 5


# ---- local days ---------------------------------------------------------------------------------


def test_2330_and_0030_jst_are_different_days() -> None:
    late = [at(0, 23, 30, s) for s in range(3)]
    early = [at(1, 0, 30, s) for s in range(3)]
    assert {t.astimezone(UTC).date() for t in late + early} == {DAY0}  # one UTC day
    log = [Access("x", None, t, "provided") for t in late + early]
    assert anomaly_report(log) == []  # 3 + 3 odd-hour requests, on two JST days

    log5 = [
        Access("x", None, t + dt.timedelta(minutes=m), "provided")
        for t in late[:1] + early[:1]
        for m in range(5)
    ]
    found = anomaly_report(log5)
    assert [(f.kind, f.start.date(), f.count) for f in found] == [
        (ODD_HOURS, DAY0, 5),
        (ODD_HOURS, DAY0 + dt.timedelta(days=1), 5),
    ]
    # in UTC those are 14:30 and 15:30 on one day, inside office hours
    assert anomaly_report(log5, tz=UTC) == []


def test_many_people_counts_per_local_day() -> None:
    rules = Rules(many_people_min=3, many_people_factor=0.0)
    log = [Access("x", person(p), at(0, 23, 30, p), "provided") for p in range(3)]
    log += [Access("x", person(p), at(1, 0, 30, p), "provided") for p in range(3, 6)]
    assert kinds(anomaly_report(log, rules=rules), MANY_PEOPLE) == []  # 3 and 3 in JST
    (finding,) = kinds(anomaly_report(log, rules=rules, tz=UTC), MANY_PEOPLE)
    assert finding.count == 6  # one UTC day
    assert finding.start.tzinfo == UTC


# ---- anomaly.refusal_burst ----------------------------------------------------------------------


def test_refusal_burst_fires_from_the_minimum() -> None:
    times = [at(0, 10, m) for m in range(10)]
    (finding,) = anomaly_report(refusals("city-a", times))
    assert finding.kind == REFUSAL_BURST
    assert (finding.start, finding.end, finding.count) == (times[0], times[-1], 10)
    assert anomaly_report(refusals("city-a", times[:9])) == []


def test_refusal_burst_window_is_closed_at_its_length() -> None:
    # ten refusals whose first and last are exactly 10 minutes apart: a burst
    exact = [at(0, 10) + dt.timedelta(seconds=600 * i / 9) for i in range(10)]
    assert exact[-1] - exact[0] == dt.timedelta(minutes=10)
    assert len(anomaly_report(refusals("x", exact))) == 1
    # one second more: no window of ten minutes holds ten of them
    loose = [at(0, 10) + dt.timedelta(seconds=601 * i / 9) for i in range(10)]
    assert anomaly_report(refusals("x", loose)) == []


def test_only_refusals_count_towards_a_burst() -> None:
    times = [at(0, 10, m) for m in range(10)]
    log = [*refusals("x", times[:9]), Access("x", None, times[9], "not_held")]
    assert anomaly_report(log) == []


def test_refusal_bursts_are_per_agency() -> None:
    times = [at(0, 10, m) for m in range(10)]
    assert anomaly_report(refusals("a", times[::2]) + refusals("b", times[1::2])) == []


def test_overlapping_windows_merge_into_one_burst() -> None:
    # one refusal a minute for 30 minutes: 21 qualifying windows, one burst
    times = [at(0, 10, m) for m in range(30)]
    (finding,) = anomaly_report(refusals("x", times))
    assert (finding.start, finding.end, finding.count) == (times[0], times[-1], 30)
    assert finding.end - finding.start > Rules().burst_window


def test_separate_bursts_stay_separate() -> None:
    first = [at(0, 10, m) for m in range(10)]
    second = [at(0, 10, 40 + m) for m in range(12)]
    stray = [at(0, 10, 25)]  # within no window holding ten
    found = anomaly_report(refusals("x", first + stray + second))
    assert [(f.start, f.end, f.count) for f in found] == [
        (first[0], first[-1], 10),
        (second[0], second[-1], 12),
    ]


def test_windows_sharing_only_a_refusal_merge() -> None:
    rules = Rules(burst_min=3, burst_window=dt.timedelta(minutes=2))
    # the only qualifying windows, from minute 0 and from minute 2, share the refusal at minute 2
    times = [at(0, 10, 0), at(0, 10, 0, 30), at(0, 10, 2), at(0, 10, 3, 30), at(0, 10, 4)]
    (finding,) = anomaly_report(refusals("x", times), rules=rules)
    assert finding.count == 5
    # 2:30 joins the window starting at minute 1; minutes 5–7 are a burst of their own
    times = [at(0, 10, m) for m in (0, 1, 2, 5, 6, 7)] + [at(0, 10, 2, 30)]
    found = anomaly_report(refusals("x", times), rules=rules)
    assert [f.count for f in found] == [4, 3]


def test_findings_are_sorted_by_start_requester_kind() -> None:
    burst = [at(0, 23, m) for m in range(10)]
    log = refusals("b", burst) + refusals("a", burst)
    found = anomaly_report(log)
    assert [(f.requester, f.kind) for f in found] == [
        ("a", ODD_HOURS),
        ("a", REFUSAL_BURST),
        ("b", ODD_HOURS),
        ("b", REFUSAL_BURST),
    ]
    assert found == sorted(found, key=lambda f: (f.start, f.requester, f.kind))


def test_empty_log() -> None:
    assert anomaly_report([]) == []
    assert anomaly_report(iter(())) == []


def test_invalid_access_and_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        Access("x", None, dt.datetime(2026, 11, 2, 10), "provided")
    with pytest.raises(ValueError, match="outcome"):
        Access("x", None, at(0, 10), "granted")
    with pytest.raises(ValueError):
        Rules(office_hours=(dt.time(7), dt.time(7)))
    with pytest.raises(ValueError):
        Rules(burst_window=dt.timedelta(0))
    with pytest.raises(ValueError):
        Rules(min_days=0)


# ---- properties ---------------------------------------------------------------------------------

SMALL = Rules(
    many_people_min=2,
    many_people_factor=1.5,
    min_days=2,
    odd_hours_min=2,
    burst_min=3,
    burst_window=dt.timedelta(minutes=20),
)
AGENCIES = ["city-a", "city-b", "insurer"]
START = at(0, 0)
ZONES = [JST, UTC, dt.timezone(dt.timedelta(hours=-5, minutes=-30))]

minutes = st.one_of(  # anywhere in three days, or crowded in a morning or a late evening (JST)
    st.integers(0, 3 * 24 * 60),
    st.integers(10 * 60, 10 * 60 + 30),
    st.integers(23 * 60, 24 * 60 + 30),
)
accesses = st.builds(
    lambda requester, subject, minute, second, zone, outcome: Access(
        requester,
        subject,
        (START + dt.timedelta(minutes=minute, seconds=second)).astimezone(zone),
        outcome,
    ),
    st.sampled_from(AGENCIES),
    st.none() | st.integers(0, 9).map(person),
    minutes,
    st.sampled_from([0, 0, 30]),
    st.sampled_from(ZONES),
    st.sampled_from(["provided", "provided", "not_held", "refused", "refused"]),
)
logs = st.lists(accesses, max_size=80)
rule_sets = st.sampled_from([SMALL, Rules()])

dense_refusals = st.lists(
    st.builds(
        lambda requester, minute, second: Access(
            requester,
            None,
            START + dt.timedelta(hours=10, minutes=minute, seconds=second),
            "refused",
        ),
        st.sampled_from(AGENCIES[:2]),
        st.integers(0, 40),
        st.sampled_from([0, 30]),
    ),
    min_size=3,
    max_size=40,
)

# a random log with refusals dense enough to make bursts
rich_logs = st.builds(operator.add, logs, dense_refusals)


@given(log=rich_logs, rules=rule_sets, data=st.data())
def test_report_does_not_depend_on_order(
    log: list[Access], rules: Rules, data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(log))
    assert anomaly_report(shuffled, rules=rules) == anomaly_report(log, rules=rules)


@given(log=rich_logs, rules=rule_sets)
def test_no_refusals_no_bursts(log: list[Access], rules: Rules) -> None:
    kept = [a for a in log if a.outcome != "refused"]
    assert kinds(anomaly_report(kept, rules=rules), REFUSAL_BURST) == []


office_accesses = st.builds(
    lambda requester, subject, day, hour, minute, outcome: Access(
        requester, subject, at(day, hour, minute), outcome
    ),
    st.sampled_from([*AGENCIES, "newcomer"]),
    st.none() | st.integers(0, 20).map(person),
    st.integers(-1, 4),
    st.integers(7, 21),
    st.integers(0, 59),
    st.sampled_from(["provided", "not_held", "refused"]),
)


@given(log=rich_logs, extra=st.lists(office_accesses, max_size=40), rules=rule_sets)
def test_office_hour_traffic_never_makes_odd_hours(
    log: list[Access], extra: list[Access], rules: Rules
) -> None:
    def odd(entries: list[Access]) -> list[tuple[str, dt.datetime, dt.datetime, int]]:
        found = kinds(anomaly_report(entries, rules=rules), ODD_HOURS)
        return [(f.requester, f.start, f.end, f.count) for f in found]

    # the odd-hour findings stay what they were (only their baselines may fall)
    assert odd(log + extra) == odd(log)


def _oracle_bursts(
    log: list[Access], rules: Rules
) -> set[tuple[str, dt.datetime, dt.datetime, int]]:
    """Bursts by another definition: two consecutive refusals of an agency belong to one burst
    when some window of at most `burst_window` holding at least `burst_min` refusals holds both;
    a burst is a maximal chain of such links (or one refusal, when `burst_min` is 1)."""
    need, window = rules.burst_min, rules.burst_window
    out: set[tuple[str, dt.datetime, dt.datetime, int]] = set()
    for requester in {a.requester for a in log}:
        t = sorted(a.at for a in log if a.requester == requester and a.outcome == "refused")
        n = len(t)
        # reach[i]: the last refusal within the window that starts at refusal i (brute force)
        reach = [max(j for j in range(n) if t[j] - t[i] <= window) for i in range(n)]
        good = [i for i in range(n) if reach[i] - i + 1 >= need]
        covered = {k for i in good for k in range(i, reach[i] + 1)}
        linked = {k for k in range(n - 1) if any(i <= k and reach[i] >= k + 1 for i in good)}
        k = 0
        while k < n:
            if k not in covered:
                k += 1
                continue
            first = k
            while k in linked:
                k += 1
            out.add((requester, t[first], t[k], k - first + 1))
            k += 1
    return out


burst_rules = st.builds(
    lambda need, window: Rules(burst_min=need, burst_window=dt.timedelta(minutes=window)),
    st.integers(1, 6),
    st.sampled_from([1, 5, 20]),
)


@settings(max_examples=300)
@given(log=rich_logs, rules=burst_rules)
def test_bursts_match_an_independent_definition(log: list[Access], rules: Rules) -> None:
    found = kinds(anomaly_report(log, rules=rules), REFUSAL_BURST)
    assert {(f.requester, f.start, f.end, f.count) for f in found} == _oracle_bursts(log, rules)
    for f in found:
        mine = sorted(a.at for a in log if a.requester == f.requester and a.outcome == "refused")
        inside = [t for t in mine if f.start <= t <= f.end]
        assert f.count == len(inside) >= rules.burst_min
        # consecutive refusals of a burst are never more than a window apart, so a burst of
        # `count` refusals spans at most (count - burst_min + 1) windows
        assert all(b - a <= rules.burst_window for a, b in itertools.pairwise(inside))
        assert f.end - f.start <= (f.count - rules.burst_min + 1) * rules.burst_window
    # bursts of one agency do not overlap
    for requester in AGENCIES:
        spans = sorted((f.start, f.end) for f in found if f.requester == requester)
        assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))


@given(log=rich_logs)
def test_finding_times_are_local_and_ordered(log: list[Access]) -> None:
    for f in anomaly_report(log, rules=SMALL):
        assert f.start <= f.end
        assert f.start.utcoffset() == f.end.utcoffset() == dt.timedelta(hours=9)
        assert f.count >= 1 and f.baseline >= 0


# ---- scale --------------------------------------------------------------------------------------


def test_a_large_log_still_finds_the_night_extraction() -> None:
    """Needles in a haystack of 200,000 accesses (speed is measured in benchmarks/, not here)."""
    rnd = random.Random(4)
    agencies = [f"agency-{i}" for i in range(300)]
    people = [person(i) for i in range(200_000)]
    outcomes = ["provided"] * 8 + ["not_held", "refused"]
    base = dt.datetime(2026, 11, 1, tzinfo=UTC)
    log = [
        Access(
            rnd.choice(agencies),
            rnd.choice(people),
            base + dt.timedelta(seconds=rnd.randrange(30 * 86_400)),
            rnd.choice(outcomes),
        )
        for _ in range(200_000)
    ]
    # one agency extracts at night
    log += lookups("agency-x", 5, range(1_000), hour=2)
    found = anomaly_report(log)
    assert any(f.requester == "agency-x" and f.kind == MANY_PEOPLE for f in found)
    assert any(f.requester == "agency-x" and f.kind == ODD_HOURS for f in found)
