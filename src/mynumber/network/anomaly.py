"""The auditor's anomaly report over the network's access records. Pure.

Every query over the information-provision network is recorded (情報提供等の記録); an auditor
(個人情報保護委員会, an agency's own 監査) reads them for the patterns that mark misuse — browsing
people out of curiosity, bulk extraction at night, probing with guessed codes. The report looks
for three, each with a stable code:

``anomaly.many_people``
    An agency looked up more distinct people on one local day than both ``many_people_min`` and
    ``many_people_factor`` × its *baseline*: the median of its distinct people per day over the
    days it was active in the input, or — when it was active on fewer than ``min_days`` days — the
    median over every agency's active days (a new agency has no history of its own).
``anomaly.odd_hours``
    An agency sent at least ``odd_hours_min`` requests on one local day at hours outside
    ``office_hours`` (default 07:00–22:00, start included, end excluded; a range with start after
    end wraps past midnight). Baseline: the agency's odd-hour requests per active day.
``anomaly.refusal_burst``
    At least ``burst_min`` refused requests by one agency whose first and last are at most
    ``burst_window`` apart (any sliding window). Overlapping windows are merged into one maximal
    burst: its start and end are its first and last refusal and its count the refusals between
    them. Within a burst no two consecutive refusals are more than ``burst_window`` apart, so a
    burst of ``count`` refusals spans at most ``(count - burst_min + 1) × burst_window``.
    Baseline: the agency's refusals per ``burst_window`` over its active days.

"Day" and "hour" are local to `tz` (JST by default): 23:30 and 00:30 JST are different days even
though they fall on the same UTC day. Findings' times are in `tz`. The report is a function of the
multiset of accesses (it does not depend on their order) and takes one pass over them plus a sort
of each agency's refusals: a million accesses take seconds.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from mynumber.clock import JST

__all__ = [
    "MANY_PEOPLE",
    "ODD_HOURS",
    "OUTCOMES",
    "REFUSAL_BURST",
    "Access",
    "Finding",
    "Rules",
    "anomaly_report",
]

MANY_PEOPLE = "anomaly.many_people"
ODD_HOURS = "anomaly.odd_hours"
REFUSAL_BURST = "anomaly.refusal_burst"

PROVIDED = "provided"
NOT_HELD = "not_held"
REFUSED = "refused"
OUTCOMES = frozenset({PROVIDED, NOT_HELD, REFUSED})

_DAY = dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Access:
    """One request: who asked (`requester`, an agency id), about whom (`subject`, an opaque
    per-person pseudonym, ``None`` when the request named no known person), when (`at`, aware)
    and how it ended (`outcome`: ``provided``, ``not_held`` or ``refused``)."""

    requester: str
    subject: bytes | None
    at: dt.datetime
    outcome: str

    def __post_init__(self) -> None:
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError("an access time must be timezone-aware")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r} (known: {sorted(OUTCOMES)})")


@dataclass(frozen=True, slots=True)
class Finding:
    """One anomaly: `kind` (a stable code), the agency, the span of the accesses it is about, how
    many (`count`: people, requests or refusals) and what is usual for it (`baseline`)."""

    kind: str
    requester: str
    start: dt.datetime
    end: dt.datetime
    count: int
    baseline: float
    detail_en: str
    detail_ja: str


@dataclass(frozen=True, slots=True)
class Rules:
    """The report's thresholds (see the module docstring for what each means)."""

    many_people_min: int = 50
    many_people_factor: float = 5.0
    min_days: int = 3
    office_hours: tuple[dt.time, dt.time] = field(default=(dt.time(7, 0), dt.time(22, 0)))
    odd_hours_min: int = 5
    burst_min: int = 10
    burst_window: dt.timedelta = dt.timedelta(minutes=10)

    def __post_init__(self) -> None:
        if self.many_people_min < 0:
            raise ValueError("many_people_min must not be negative")
        if self.many_people_factor < 0:
            raise ValueError("many_people_factor must not be negative")
        if self.min_days < 1:
            raise ValueError("min_days must be at least 1")
        start, end = self.office_hours
        if start.tzinfo is not None or end.tzinfo is not None:
            raise ValueError("office hours are local times without a timezone")
        if start == end:
            raise ValueError("office hours must not start and end at the same time")
        if self.odd_hours_min < 1:
            raise ValueError("odd_hours_min must be at least 1")
        if self.burst_min < 1:
            raise ValueError("burst_min must be at least 1")
        if self.burst_window <= dt.timedelta(0):
            raise ValueError("burst_window must be positive")


class _Day:
    """What one agency did on one local day."""

    __slots__ = ("first", "last", "odd", "subjects")

    def __init__(self, at: dt.datetime) -> None:
        self.first = at
        self.last = at
        self.subjects: set[bytes] = set()
        self.odd: list[dt.datetime] = []


def anomaly_report(
    accesses: Iterable[Access], *, rules: Rules = Rules(), tz: dt.tzinfo = JST
) -> list[Finding]:
    """The findings of the three rules over `accesses`, sorted by (start, requester, kind)."""
    office_start, office_end = rules.office_hours
    wraps = office_start > office_end
    days: dict[tuple[str, dt.date], _Day] = {}
    refusals: dict[str, list[dt.datetime]] = {}
    for access in accesses:
        local = access.at.astimezone(tz)
        key = (access.requester, local.date())
        day = days.get(key)
        if day is None:
            day = days[key] = _Day(local)
        elif local < day.first:
            day.first = local
        elif local > day.last:
            day.last = local
        if access.subject is not None:
            day.subjects.add(access.subject)
        t = local.time()
        if (office_end <= t < office_start) if wraps else (t < office_start or t >= office_end):
            day.odd.append(local)
        if access.outcome == REFUSED:
            refusals.setdefault(access.requester, []).append(local)

    by_agency: dict[str, list[tuple[dt.date, _Day]]] = {}
    for (requester, date), day in days.items():
        by_agency.setdefault(requester, []).append((date, day))

    findings: list[Finding] = []
    findings += _many_people(by_agency, rules)
    findings += _odd_hours(by_agency, rules)
    findings += _refusal_bursts(refusals, by_agency, rules)
    findings.sort(key=lambda f: (f.start, f.requester, f.kind))
    return findings


def _many_people(by_agency: dict[str, list[tuple[dt.date, _Day]]], rules: Rules) -> list[Finding]:
    if not by_agency:
        return []
    overall = statistics.median(
        len(day.subjects) for agency_days in by_agency.values() for _, day in agency_days
    )
    out: list[Finding] = []
    for requester, agency_days in by_agency.items():
        own = len(agency_days) >= rules.min_days
        baseline = float(
            statistics.median(len(day.subjects) for _, day in agency_days) if own else overall
        )
        limit = max(float(rules.many_people_min), rules.many_people_factor * baseline)
        for date, day in agency_days:
            count = len(day.subjects)
            if count <= limit:
                continue
            tzname = day.first.tzname() or ""
            usual_en = (
                f"its usual {baseline:g} per day (median of its {len(agency_days)} days)"
                if own
                else f"a usual {baseline:g} per day (median over all agencies; it was active on "
                f"only {len(agency_days)} day(s))"
            )
            usual_ja = (
                f"通常は 1 日 {baseline:g} 人（同機関の {len(agency_days)} 日間の中央値）"
                if own
                else f"通常は 1 日 {baseline:g} 人（全機関の中央値。同機関の稼働は {len(agency_days)} 日のみ）"
            )
            out.append(
                Finding(
                    kind=MANY_PEOPLE,
                    requester=requester,
                    start=day.first,
                    end=day.last,
                    count=count,
                    baseline=baseline,
                    detail_en=f"{requester} looked up {count} distinct people on {date} "
                    f"({tzname}), against {usual_en}.",
                    detail_ja=f"{requester} が {date}（{tzname}）に {count} 人の個人を照会しました"
                    f"（{usual_ja}）。",
                )
            )
    return out


def _odd_hours(by_agency: dict[str, list[tuple[dt.date, _Day]]], rules: Rules) -> list[Finding]:
    out: list[Finding] = []
    office_start, office_end = rules.office_hours
    hours = f"{office_start:%H:%M}–{office_end:%H:%M}"
    for requester, agency_days in by_agency.items():
        total = sum(len(day.odd) for _, day in agency_days)
        if total < rules.odd_hours_min:
            continue
        baseline = total / len(agency_days)
        for date, day in agency_days:
            count = len(day.odd)
            if count < rules.odd_hours_min:
                continue
            start, end = min(day.odd), max(day.odd)
            tzname = start.tzname() or ""
            out.append(
                Finding(
                    kind=ODD_HOURS,
                    requester=requester,
                    start=start,
                    end=end,
                    count=count,
                    baseline=baseline,
                    detail_en=f"{requester} sent {count} requests outside office hours ({hours} "
                    f"{tzname}) on {date}, against {baseline:g} per day on its "
                    f"{len(agency_days)} active day(s).",
                    detail_ja=f"{requester} が {date} に業務時間外（{hours} {tzname} 以外）の照会を "
                    f"{count} 件行いました（稼働 {len(agency_days)} 日間の平均は 1 日 "
                    f"{baseline:g} 件）。",
                )
            )
    return out


def _refusal_bursts(
    refusals: dict[str, list[dt.datetime]],
    by_agency: dict[str, list[tuple[dt.date, _Day]]],
    rules: Rules,
) -> list[Finding]:
    out: list[Finding] = []
    need, window = rules.burst_min, rules.burst_window
    minutes = f"{window.total_seconds() / 60:g}"
    for requester, times in refusals.items():
        if len(times) < need:
            continue
        times.sort()
        baseline = len(times) / (len(by_agency[requester]) * (_DAY / window))
        for first, last in _bursts(times, need, window):
            count = last - first + 1
            start, end = times[first], times[last]
            tzname = start.tzname() or ""
            out.append(
                Finding(
                    kind=REFUSAL_BURST,
                    requester=requester,
                    start=start,
                    end=end,
                    count=count,
                    baseline=baseline,
                    detail_en=f"{requester} had {count} requests refused between "
                    f"{start:%Y-%m-%d %H:%M:%S} and {end:%H:%M:%S} {tzname} (at least {need} "
                    f"within {minutes} minutes), against {baseline:.3g} refusals per "
                    f"{minutes} minutes on its active days.",
                    detail_ja=f"{requester} の照会が {start:%Y-%m-%d %H:%M:%S} から "
                    f"{end:%H:%M:%S} {tzname} までに {count} 件拒否されました（{minutes} 分以内に "
                    f"{need} 件以上。稼働日の平均は {minutes} 分あたり {baseline:.3g} 件）。",
                )
            )
    return out


def _bursts(times: list[dt.datetime], need: int, window: dt.timedelta) -> list[tuple[int, int]]:
    """Maximal bursts in sorted `times` as (first, last) index pairs, inclusive.

    For each refusal i, the window starting at it reaches the last j with ``times[j] - times[i]
    <= window``; it qualifies when it holds at least `need` refusals. Qualifying windows that
    share a refusal are merged. Two pointers: linear after the sort.
    """
    bursts: list[tuple[int, int]] = []
    n = len(times)
    j = 0
    current: tuple[int, int] | None = None
    for i in range(n):
        if j < i:
            j = i
        limit = times[i] + window
        while j + 1 < n and times[j + 1] <= limit:
            j += 1
        if j - i + 1 < need:
            continue
        if current is not None and i <= current[1]:
            current = (current[0], j)
        else:
            if current is not None:
                bursts.append(current)
            current = (i, j)
    if current is not None:
        bursts.append(current)
    return bursts
