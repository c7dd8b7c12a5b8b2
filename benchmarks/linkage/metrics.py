"""Counting links against the ground truth (benchmarks/README.md §7, "columns").

A record is *linkable* when the person it is about is in the register and not deceased. For a
method's answers (one linked resident code or None per record):

- **correct**: linked to the record's own person (who is alive);
- **false link** (the harm): linked to anyone else — another person, or anyone at all for a
  record whose person is not in the register (those are also counted as ``false_outsiders``);
- **deceased link**: linked to a person recorded as deceased (right person or not; a wrong one is
  also a false link);
- **precision** = correct ÷ linked; **recall** = correct ÷ linkable;
- for mynumber, which sends what it does not link to review: **review** (records on the review
  queue: as :mod:`mynumber.agency.batch` stores a roll, every record not linked — decisions
  ``review``, ``unmatched`` and ``rejected`` alike — with its candidates), **reached** (linkable
  records not linked whose person is among the candidates the reviewer is shown) and **lost**
  (linkable records not linked whose person is not among them; ``no_candidates`` of those have
  no candidate at all).

Every count is also broken down by the kind of record (:data:`.generate.ROLL_MIX`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Counts", "Quality", "measure", "oracle_weight", "tradeoff_curve"]


@dataclass
class Counts:
    records: int = 0
    linkable: int = 0
    linked: int = 0
    correct: int = 0
    false_links: int = 0
    false_outsiders: int = 0
    deceased_links: int = 0
    review: int = 0
    not_linked: int = 0
    """Linkable records not linked."""
    reached: int = 0
    """Linkable records not linked, in review with their person among the candidates."""
    no_candidates: int = 0
    """Linkable records not linked, in review with no candidate at all."""

    @property
    def precision(self) -> float:
        return self.correct / self.linked if self.linked else math.nan

    @property
    def recall(self) -> float:
        return self.correct / self.linkable if self.linkable else math.nan

    @property
    def lost(self) -> int:
        return self.not_linked - self.reached

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(precision=_num(self.precision), recall=_num(self.recall), lost=self.lost)
        return d


def _num(x: float) -> float | None:
    return None if math.isnan(x) else x


@dataclass
class Quality:
    """One method's counts over the whole roll and per kind of record."""

    method: str
    total: Counts
    by_kind: dict[str, Counts]
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)
    with_review: bool = False
    """Whether the method has a review queue (only mynumber): review/reached/lost apply."""
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "seconds": self.seconds,
            "stage_seconds": self.stage_seconds,
            "with_review": self.with_review,
            "note": self.note,
            "total": self.total.as_json(),
            "by_kind": {k: c.as_json() for k, c in self.by_kind.items()},
        }


def measure(
    method: str,
    linked: Sequence[str | None],
    truth: Sequence[str | None],
    kinds: Sequence[str],
    status_of: Mapping[str, str],
    *,
    seconds: float,
    stage_seconds: Mapping[str, float] | None = None,
    review: Sequence[bool] | None = None,
    candidates: Sequence[Sequence[str]] | None = None,
    note: str = "",
) -> Quality:
    """Count `linked` (one resident code or None per record) against `truth`; `review` and
    `candidates` (per record) for a method that has a review queue."""
    if not (len(linked) == len(truth) == len(kinds)):
        raise ValueError("one answer, one truth and one kind per record")
    if (review is None) != (candidates is None):
        raise ValueError("review and candidates come together")
    total = Counts()
    by_kind: dict[str, Counts] = {}
    for i, (got, want, kind) in enumerate(zip(linked, truth, kinds, strict=True)):
        k = by_kind.get(kind)
        if k is None:
            k = by_kind[kind] = Counts()
        alive = want is not None and status_of.get(want) != "deceased"
        in_review = bool(review[i]) if review is not None else False
        for c in (total, k):
            c.records += 1
            c.linkable += alive
            c.review += in_review
            if got is not None:
                c.linked += 1
                if got == want and alive:
                    c.correct += 1
                if got != want:
                    c.false_links += 1
                    c.false_outsiders += want is None
                if status_of.get(got) == "deceased":
                    c.deceased_links += 1
            elif alive:
                c.not_linked += 1
                if in_review and candidates is not None:
                    c.reached += want in candidates[i]
                    c.no_candidates += not candidates[i]
    return Quality(
        method,
        total,
        dict(sorted(by_kind.items())),
        seconds,
        dict(stage_seconds or {}),
        review is not None,
        note,
    )


def _is_false(best: str | None, want: str | None) -> bool:
    return best is not None and best != want


def oracle_weight(
    best: Sequence[str | None], weight: Sequence[float | None], truth: Sequence[str | None]
) -> float:
    """The lowest threshold (links: weight > threshold) at which no best candidate is a false
    link — chosen from the ground truth, so the best any threshold can do. -inf if none is."""
    worst = -math.inf
    for b, w, t in zip(best, weight, truth, strict=True):
        if w is not None and _is_false(b, t):
            worst = max(worst, w)
    return worst


def tradeoff_curve(
    best: Sequence[str | None],
    weight: Sequence[float | None],
    truth: Sequence[str | None],
    status_of: Mapping[str, str],
    points: int = 400,
) -> list[tuple[float, int, float]]:
    """(threshold weight, false links, recall) as the threshold falls from the highest weight
    to the lowest: the curve any single threshold on the best candidate can reach."""
    linkable = sum(1 for t in truth if t is not None and status_of.get(t) != "deceased")
    scored = sorted(
        ((w, b, t) for b, w, t in zip(best, weight, truth, strict=True) if w is not None),
        key=lambda x: -x[0],
    )
    out: list[tuple[float, int, float]] = []
    correct = false = 0
    step = max(1, len(scored) // points)
    kept_n, kept_false = -step, -1
    for n, (w, b, t) in enumerate(scored):
        if b == t and t is not None and status_of.get(t) != "deceased":
            correct += 1
        elif _is_false(b, t):
            false += 1
        if n + 1 < len(scored) and scored[n + 1][0] == w:
            continue  # a threshold cannot split equal weights
        if n - kept_n >= step or n + 1 == len(scored) or (false != kept_false and false <= 100):
            out.append((w, false, correct / linkable if linkable else math.nan))
            kept_n, kept_false = n, false
    return out
