"""Five-item queries in process: platform.jlis.five_item_query(claim) for K claims.

Floor: the bare indexed lookup the query starts with, through the raw driver, for the same
claims (best of three runs). Every answer is checked against what the claim was built to return.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .backends import Backend, Lookup
from .common import Result, err, out, progress
from .data import KINDS, Claim, clear_normalisation_caches

__all__ = ["BareRun", "Tally", "run_bare_lookup", "run_queries"]

TARGET_QPS = 5000.0


@dataclass
class Tally:
    """Answers against expectations, per kind of claim."""

    backend: str
    channel: str
    total: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    right: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    expected_ambiguous: int = 0
    wrong: list[str] = field(default_factory=list)
    failures: int = 0
    """Requests that gave no answer at all (HTTP errors, time-outs)."""

    def add(
        self, claim: Claim, outcome: str, code: str | None, number: str | None, candidates: int
    ) -> None:
        self.total[claim.kind] += 1
        if claim.expect_outcome == "ambiguous":
            self.expected_ambiguous += 1
        ok = outcome == claim.expect_outcome
        if ok and outcome == "found":
            ok = code == claim.expect_code and bool(number)
        if ok and outcome == "ambiguous":
            ok = candidates == claim.expect_candidates
        if ok:
            self.right[claim.kind] += 1
        else:
            self.wrong.append(
                f"{claim.kind}/{claim.how} for {claim.target}: expected {claim.expect_outcome}"
                f" {claim.expect_code or ''} → got {outcome} {code or ''}"
                f"{' (no number)' if outcome == 'found' and not number else ''}  {claim.items}"
            )

    def fail(self, claim: Claim, why: str) -> None:
        self.total[claim.kind] += 1
        self.failures += 1
        self.wrong.append(f"{claim.kind}/{claim.how} for {claim.target}: no answer: {why}")

    @property
    def ok(self) -> bool:
        return not self.wrong

    def print(self) -> None:
        parts = []
        labels = {"exact": "found right", "variant": "found right", "wrong": "none"}
        for kind in KINDS:
            parts.append(f"{kind} {self.right[kind]:,}/{self.total[kind]:,} {labels[kind]}")
        amb = (
            f"; {self.expected_ambiguous:,} true duplicates expected ambiguous"
            if self.expected_ambiguous
            else ""
        )
        head = f"{self.backend}: {self.channel} correctness: " + ", ".join(parts) + amb
        if self.ok:
            out.print(f"✔ {head}; wrong answers: 0", style="green", markup=False, highlight=False)
            return
        out.print(
            f"✘ {head}; WRONG ANSWERS: {len(self.wrong):,}"
            + (f" (of which {self.failures:,} without an answer)" if self.failures else ""),
            style="bold red",
            markup=False,
            highlight=False,
        )
        for line in self.wrong[:20]:
            out.print(f"    WRONG: {line}", style="red", markup=False, highlight=False)
        if len(self.wrong) > 20:
            out.print(f"[red]    … and {len(self.wrong) - 20:,} more", highlight=False)

    def as_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "channel": self.channel,
            "total": self.total,
            "as_expected": self.right,
            "expected_ambiguous": self.expected_ambiguous,
            "wrong_answers": len(self.wrong),
            "no_answer": self.failures,
            "wrong_examples": self.wrong[:50],
        }


@dataclass
class BareRun:
    backend: str
    claims: int
    runs_seconds: list[float]
    targets_missing: int
    """Exact/variant claims whose person the bare lookup did not return (should be 0)."""

    @property
    def best_seconds(self) -> float:
        return min(self.runs_seconds)

    @property
    def rate(self) -> float:
        return self.claims / self.best_seconds

    def as_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "claims": self.claims,
            "runs_seconds": self.runs_seconds,
            "queries_per_second": self.rate,
            "targets_missing": self.targets_missing,
        }


def _one_pass(lookup: Lookup, params: Sequence[tuple[Any, int]]) -> tuple[float, list[Any]]:
    found: list[Any] = []
    append = found.append
    t0 = time.perf_counter()
    for birth, sex in params:
        append(lookup(birth, sex))
    return time.perf_counter() - t0, found


def run_bare_lookup(
    backend: Backend, claims: Sequence[Claim], warm: Sequence[Claim], runs: int = 3
) -> BareRun:
    params = [(c.items.birth_date, c.items.sex) for c in claims]
    seconds: list[float] = []
    with backend.lookup() as lookup, progress() as bar:
        task = bar.add_task(f"{backend.name}: floor: bare indexed lookup × {runs}", total=runs)
        _one_pass(lookup, [(c.items.birth_date, c.items.sex) for c in warm])
        found: list[Any] = []
        for _ in range(runs):
            s, found = _one_pass(lookup, params)
            seconds.append(s)
            bar.advance(task)
    missing = 0
    for claim, rows in zip(claims, found, strict=True):
        if claim.kind != "wrong" and not any(r[0] == claim.target for r in rows):
            missing += 1
    if missing:
        err.print(
            f"[bold red]the bare lookup did not return the person for {missing:,} claims: "
            "the floor does not do the same work (has the birth_date storage changed?)"
        )
    return BareRun(backend.name, len(claims), seconds, missing)


def run_queries(
    backend: Backend, claims: Sequence[Claim], warm: Sequence[Claim]
) -> tuple[float, Tally]:
    """Seconds for five_item_query over `claims` (one pass, caches emptied first), and the
    answers checked."""
    query = backend.platform.jlis.five_item_query
    for c in warm:  # compiled statements, pool, imports
        query(c.items)
    clear_normalisation_caches()
    answers: list[Any] = []
    append = answers.append
    step = 250
    with progress() as bar:
        task = bar.add_task(f"{backend.name}: five_item_query in process", total=len(claims))
        t0 = time.perf_counter()
        for i in range(0, len(claims), step):
            for c in claims[i : i + step]:
                append(query(c.items))
            bar.advance(task, min(step, len(claims) - i))
        seconds = time.perf_counter() - t0
    tally = Tally(backend.name, "in-process")
    for claim, r in zip(claims, answers, strict=True):
        tally.add(claim, r.outcome, r.resident_code, r.individual_number, r.candidates)
    return seconds, tally


def query_result(backend: str, seconds: float, n: int, bare: BareRun) -> Result:
    return Result(
        benchmark="five_item_query, in process",
        backend=backend,
        value=n / seconds,
        unit="queries/s",
        count=n,
        seconds=seconds,
        baseline="bare lookup (raw driver)",
        baseline_value=bare.rate,
        baseline_seconds=bare.best_seconds,
        target=TARGET_QPS,
        target_text=f"≥ {TARGET_QPS:,.0f}/s",
    )
