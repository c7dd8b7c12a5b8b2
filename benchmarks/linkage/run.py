"""Run the linkage benchmark: generate, link with mynumber (both policies), run the baselines,
count against the ground truth, print the tables and write JSON, Markdown and a chart."""

from __future__ import annotations

import math
import os
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from rich.progress import Progress
from rich.table import Table

from ..common import Result, err, machine_info, out, peak_rss_mib, progress
from ..data import clear_normalisation_caches
from .baselines import (
    EXACT_KANJI,
    INSURERS_ANY,
    INSURERS_UNIQUE,
    NUMBER_AS_WRITTEN,
    SPLINK_THRESHOLD,
    Answer,
    exact_kanji_rule,
    insurer_rules,
    number_as_written,
    plain_splink,
    register_arrow,
)
from .generate import ROLL_MIX, World, generate_world
from .metrics import Counts, Quality, measure, oracle_weight, tradeoff_curve

__all__ = [
    "LinkageRun",
    "linkage_results",
    "print_linkage",
    "run_linkage",
    "write_linkage",
]

STRICT = "mynumber strict"
ASSISTED = "mynumber assisted"
SPLINK_FIXED = f"(c) plain Splink, p ≥ {SPLINK_THRESHOLD}"
SPLINK_ORACLE = "(c′) plain Splink, best threshold from the ground truth"
_T = TypeVar("_T")


@dataclass
class LinkageRun:
    register_size: int
    roll_size: int
    seed: int
    seconds: dict[str, float] = field(default_factory=dict)
    """Untimed set-up: generation, the register's keys (register_table)."""
    kind_counts: dict[str, int] = field(default_factory=dict)
    history: dict[str, int] = field(default_factory=dict)
    qualities: list[Quality] = field(default_factory=list)
    splink_pairs: int = 0
    splink_oracle_weight: float = math.nan
    splink_curve: list[tuple[float, int, float]] = field(default_factory=list)
    rss_mib: dict[str, float] = field(default_factory=dict)
    """Peak RSS of the process after each step."""
    decisions: dict[str, dict[str, int]] = field(default_factory=dict)
    """mynumber's decisions by kind of decision and stage, per policy."""
    decisions_by_kind: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    """mynumber's decisions (linked, review, unmatched, rejected) per kind of record, per policy."""
    reasons: dict[str, dict[str, int]] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)
    """What makes the run fail: a false or deceased link by mynumber, a crash, a bad answer."""
    files: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    """machine_info() at the start, with the load average at the end added."""

    def quality(self, method: str) -> Quality | None:
        return next((q for q in self.qualities if q.method == method), None)

    def as_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "register": self.register_size,
            "roll": self.roll_size,
            "seed": self.seed,
            "setup_seconds": self.seconds,
            "roll_mix": ROLL_MIX,
            "kind_counts": self.kind_counts,
            "register_history": self.history,
            "methods": [q.as_json() for q in self.qualities],
            "splink_pairs_scored": self.splink_pairs,
            "splink_oracle_match_weight": _finite(self.splink_oracle_weight),
            "splink_curve": [
                {"match_weight": w, "false_links": f, "recall": r} for w, f, r in self.splink_curve
            ],
            "mynumber_decisions": self.decisions,
            "mynumber_decisions_by_kind": self.decisions_by_kind,
            "mynumber_reasons": self.reasons,
            "peak_rss_mib": self.rss_mib,
            "targets": self.targets(),
            "wrong": self.wrong,
        }

    def targets(self) -> list[dict[str, Any]]:
        """The issue's targets, each with whether this run met it."""
        out: list[dict[str, Any]] = []
        oracle = self.quality(SPLINK_ORACLE)
        fixed = self.quality(SPLINK_FIXED)
        for name in (STRICT, ASSISTED):
            q = self.quality(name)
            if q is None:
                continue
            t = q.total
            out.append(
                {
                    "target": f"{name}: zero false links (and none to deceased people)",
                    "value": f"{t.false_links} false, {t.deceased_links} to deceased",
                    "met": t.false_links == 0 and t.deceased_links == 0,
                }
            )
            if oracle is not None:
                out.append(
                    {
                        "target": f"{name}: auto-link recall above plain Splink's at zero false "
                        "links with its threshold chosen from the ground truth",
                        "value": f"{t.recall:.2%} vs {oracle.total.recall:.2%}",
                        "met": t.recall > oracle.total.recall,
                    }
                )
            if fixed is not None:
                out.append(
                    {
                        "target": f"{name}: total time no more than plain Splink's",
                        "value": f"{q.seconds:,.1f} s vs {fixed.seconds:,.1f} s",
                        "met": q.seconds <= fixed.seconds,
                    }
                )
            out.append(
                {
                    "target": f"{name}: every record not auto-linked reaches review with the "
                    "right person among the candidates",
                    "value": f"{t.reached:,} of {t.not_linked:,} ({t.lost:,} lost)",
                    "met": t.lost == 0,
                }
            )
        return out


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _counting(items: Iterable[_T], advance: Callable[[int], None]) -> Iterator[_T]:
    for n, x in enumerate(items, 1):
        yield x
        if n % 5000 == 0:
            advance(5000)


def _bulk_progress(bar: Progress, prefix: str) -> Callable[[str, int], Callable[[int], None]]:
    """mynumber.agency.bulk.Progress on a rich progress display (updates batched)."""

    def start(label: str, total: int) -> Callable[[int], None]:
        task = bar.add_task(f"{prefix}: {label}", total=total)
        pending = 0

        def advance(n: int) -> None:
            nonlocal pending
            pending += n
            if pending >= 2000:
                bar.advance(task, pending)
                pending = 0

        return advance

    return start


def _finish(bar: Progress) -> None:
    for task in bar.tasks:
        if task.total is not None:
            bar.update(task.id, completed=task.total)


def _run_mynumber(
    run: LinkageRun, world: World, register: Any, records: list[Any], policy: str
) -> None:
    from mynumber.agency.bulk import link_records

    name = STRICT if policy == "strict" else ASSISTED
    roll = world.roll
    clear_normalisation_caches()
    try:
        with progress() as bar:
            t0 = time.perf_counter()
            result = link_records(
                register, records, policy=policy, progress=_bulk_progress(bar, policy)
            )
            seconds = time.perf_counter() - t0
            _finish(bar)
    except Exception as e:  # the code under test crashed: report it, go on with the baselines
        run.wrong.append(f"link_records(policy={policy!r}) raised {type(e).__name__}: {e}")
        err.print(f"[red]{traceback.format_exc()}")
        return
    ds = result.decisions
    if len(ds) != len(records):
        run.wrong.append(f"{name}: {len(ds):,} decisions for {len(records):,} records")
        return
    linked: list[str | None] = []
    review: list[bool] = []
    candidates: list[tuple[str, ...]] = []
    by: dict[str, int] = {}
    reasons: dict[str, int] = {}
    bad = 0
    kinds: dict[str, dict[str, int]] = {}
    for d, r, kind in zip(ds, records, roll.kind, strict=True):
        if d.record_id != r.record_id or d.decision not in (
            "linked",
            "review",
            "unmatched",
            "rejected",
        ):
            bad += 1
        if d.decision == "linked" and not d.resident_code:
            bad += 1
        linked.append(d.resident_code if d.decision == "linked" else None)
        # as mynumber.agency.batch stores them: whatever is not linked goes to the review queue
        # (review, unmatched and rejected alike), with its candidates
        review.append(d.decision != "linked")
        candidates.append(tuple(d.candidates))
        key = f"{d.decision} ({d.stage})"
        by[key] = by.get(key, 0) + 1
        per_kind = kinds.setdefault(kind, {})
        per_kind[d.decision] = per_kind.get(d.decision, 0) + 1
        for reason in d.reasons:
            reasons[reason] = reasons.get(reason, 0) + 1
    if bad:
        run.wrong.append(
            f"{name}: {bad:,} decisions out of order, of an unknown kind or linked to nobody"
        )
    run.decisions[policy] = dict(sorted(by.items()))
    run.reasons[policy] = dict(sorted(reasons.items(), key=lambda kv: -kv[1]))
    run.decisions_by_kind[policy] = {k: kinds[k] for k in ROLL_MIX if k in kinds}
    q = measure(
        name,
        linked,
        roll.truth,
        roll.kind,
        world.status_of,
        seconds=seconds,
        stage_seconds=result.stage_seconds,
        review=review,
        candidates=candidates,
        note="link_records(policy=" + repr(policy) + ")",
    )
    run.qualities.append(q)
    if q.total.false_links or q.total.deceased_links:
        wrong = [
            (kind, c.false_links, c.deceased_links)
            for kind, c in q.by_kind.items()
            if c.false_links or c.deceased_links
        ]
        run.wrong.append(
            f"{name}: {q.total.false_links:,} false links, {q.total.deceased_links:,} to deceased "
            "people — by kind: " + ", ".join(f"{k} {f:,}/{dd:,}" for k, f, dd in wrong)
        )
    run.rss_mib[name] = peak_rss_mib()


def run_linkage(register_size: int, roll_size: int, seed: int) -> LinkageRun:
    """The whole benchmark at one size."""
    from mynumber.agency.bulk import Register as BulkRegister
    from mynumber.agency.bulk import register_table

    run = LinkageRun(register_size, roll_size, seed, machine=machine_info())
    t0 = time.perf_counter()
    with progress() as bar:
        total = (
            register_size
            + roll_size
            + round(roll_size * (ROLL_MIX["not_in_register"] + ROLL_MIX["lookalike"]))
        )
        task = bar.add_task(
            f"generate a register of {register_size:,} and a roll of {roll_size:,} (seed {seed})",
            total=total,
        )
        world = generate_world(register_size, roll_size, seed, tick=lambda n: bar.advance(task, n))
        bar.update(task, completed=total)
    run.seconds["generate"] = time.perf_counter() - t0
    run.kind_counts = dict(world.kind_counts)
    run.history = dict(world.history)
    run.rss_mib["generated"] = peak_rss_mib()

    t0 = time.perf_counter()
    with progress() as bar:
        task = bar.add_task("register keys (register_table)", total=register_size)
        people = register_table(_counting(world.register.rows(), lambda n: bar.advance(task, n)))
        bar.update(task, completed=register_size)
    register = BulkRegister(people=people, resolve=world.register.resolver())
    records = world.roll.records()
    run.seconds["register_table"] = time.perf_counter() - t0
    run.rss_mib["register table"] = peak_rss_mib()

    for policy in ("strict", "assisted"):
        _run_mynumber(run, world, register, records, policy)
    del records, register, people

    roll, reg, status_of = world.roll, world.register, world.status_of

    def add(answer: Answer) -> None:
        run.qualities.append(
            measure(answer.method, answer.linked, roll.truth, roll.kind, status_of,
                    seconds=answer.seconds, stage_seconds=answer.stage_seconds)
        )  # fmt: skip

    err.print("[dim]baselines (a) and (b)…")
    reg_t = register_arrow(reg)
    unique, anyone = insurer_rules(reg, reg_t, roll)
    add(unique)
    add(anyone)
    add(number_as_written(roll, reg.resolver(), anyone))
    add(exact_kanji_rule(reg, reg_t, roll))
    run.rss_mib["baselines (a), (b)"] = peak_rss_mib()

    with progress() as bar:
        stages = (
            "prepare",
            "u (random sampling)",
            "m (EM, 2 sessions)",
            "predict",
            "best candidate",
        )
        task = bar.add_task("(c) plain Splink", total=len(stages))
        splink = plain_splink(reg, reg_t, roll, seed, tick=lambda s: bar.advance(task, 1))
    run.splink_pairs = splink.pairs
    fixed_weight = math.log2(SPLINK_THRESHOLD / (1 - SPLINK_THRESHOLD))
    run.qualities.append(
        measure(SPLINK_FIXED, splink.linked_at(fixed_weight), roll.truth, roll.kind, status_of,
                seconds=splink.seconds, stage_seconds=splink.stage_seconds,
                note=f"links: best candidate with match weight ≥ {fixed_weight:.2f}")
    )  # fmt: skip
    w = oracle_weight(splink.best, splink.weight, roll.truth)
    run.splink_oracle_weight = w
    oracle_links = [
        b if x is not None and x > w else None
        for b, x in zip(splink.best, splink.weight, strict=True)
    ]
    run.qualities.append(
        measure(SPLINK_ORACLE, oracle_links, roll.truth, roll.kind, status_of,
                seconds=splink.seconds, stage_seconds=splink.stage_seconds,
                note=f"links: best candidate with match weight > {w:.2f} (the highest weight of "
                "a false best candidate)")
    )  # fmt: skip
    run.splink_curve = tradeoff_curve(splink.best, splink.weight, roll.truth, status_of)
    run.rss_mib["plain Splink"] = peak_rss_mib()
    run.machine["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return run


# -- report -------------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.2%}"


def _quality_rows(run: LinkageRun) -> tuple[list[str], list[list[str]]]:
    head = [
        "method",
        "linked",
        "correct",
        "FALSE LINKS",
        "of which not in register",
        "to deceased",
        "precision",
        "recall",
        "to review",
        "not linked → review with the person",
        "lost (of which no candidate)",
        "time",
    ]
    rows = []
    for q in run.qualities:
        t = q.total
        rows.append(
            [
                q.method,
                f"{t.linked:,}",
                f"{t.correct:,}",
                f"{t.false_links:,}",
                f"{t.false_outsiders:,}",
                f"{t.deceased_links:,}",
                _pct(t.precision),
                _pct(t.recall),
                f"{t.review:,}" if q.with_review else "—",
                f"{t.reached:,} / {t.not_linked:,}" if q.with_review else "—",
                f"{t.lost:,} ({t.no_candidates:,})" if q.with_review else "—",
                f"{q.seconds:,.1f} s",
            ]
        )
    return head, rows


def _stage_rows(run: LinkageRun) -> tuple[list[str], list[list[str]]]:
    head = ["method", "stages", "total"]
    rows: list[list[str]] = []
    for q in run.qualities:
        if q.method == SPLINK_ORACLE:  # the same Splink run as SPLINK_FIXED
            continue
        stages = " · ".join(f"{k} {v:,.1f} s" for k, v in q.stage_seconds.items()) or "one join"
        name = "(c) plain Splink" if q.method == SPLINK_FIXED else q.method
        rows.append([name, stages, f"{q.seconds:,.1f} s"])
    rows.append(
        [
            "set-up, not timed",
            " · ".join(f"{k} {v:,.1f} s" for k, v in run.seconds.items()),
            f"{sum(run.seconds.values()):,.1f} s",
        ]
    )
    return head, rows


_KIND_METHODS = (
    (STRICT, "strict"),
    (ASSISTED, "assisted"),
    (INSURERS_UNIQUE, "(a)"),
    (INSURERS_ANY, "(a′)"),
    (NUMBER_AS_WRITTEN, "(a″)"),
    (EXACT_KANJI, "(b)"),
    (SPLINK_FIXED, "(c) p≥0.99"),
    (SPLINK_ORACLE, "(c′) oracle"),
)


def _kind_cell(c: Counts | None, with_review: bool) -> str:
    if c is None:
        return "—"
    recall = "—" if not c.linkable else f"{c.recall:.1%}"
    cell = f"{recall} · {c.false_links:,}"
    if with_review:
        cell += f" · {c.lost:,}"
    return cell


def _kind_rows(run: LinkageRun) -> tuple[list[str], list[list[str]]]:
    methods = [(q, short) for m, short in _KIND_METHODS if (q := run.quality(m)) is not None]
    head = ["kind", "records"] + [
        f"{short} recall · false" + (" · lost" if q.with_review else "") for q, short in methods
    ]
    rows = [
        [kind, f"{n:,}"] + [_kind_cell(q.by_kind.get(kind), q.with_review) for q, _s in methods]
        for kind in ROLL_MIX
        if (n := run.kind_counts.get(kind, 0))
    ]
    return head, rows


def _rich(title: str, head: list[str], rows: list[list[str]]) -> Table:
    t = Table(title=title)
    for i, h in enumerate(head):
        t.add_column(h, justify="left" if i == 0 else "right", overflow="fold")
    for r in rows:
        t.add_row(*r)
    return t


def _md(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _title(run: LinkageRun) -> str:
    return (
        f"Linkage quality — a roll of {run.roll_size:,} against a register of "
        f"{run.register_size:,} (seed {run.seed})"
    )


def print_linkage(run: LinkageRun) -> None:
    out.print()
    out.print(_rich(_title(run), *_quality_rows(run)))
    out.print(_rich("Linkage — time of each stage", *_stage_rows(run)))
    out.print(
        _rich(
            "Linkage by kind of record — recall · false links (· lost: not linked and not in "
            "review with the person)",
            *_kind_rows(run),
        )
    )
    for line in _notes(run):
        out.print(line, highlight=False, markup=False)
    for t in run.targets():
        mark = "[green]✔ met[/]" if t["met"] else "[bold red]✘ missed[/]"
        out.print(f"target: {t['target']}: {t['value']} — {mark}", highlight=False)
    verdict = "no false links by mynumber" if not run.wrong else f"{len(run.wrong)} WRONG"
    out.print(f"linkage checked against the ground truth: {verdict}", highlight=False)
    for line in run.wrong[:20]:
        out.print(f"  [red]{line}", highlight=False)
    for f in run.files:
        out.print(f"[dim]written: {f}", highlight=False)


def _notes(run: LinkageRun) -> list[str]:
    """What the tables leave out: the register's history, mynumber's decisions and reasons,
    plain Splink's pairs and best threshold, peak RSS."""
    lines = ["register history: " + ", ".join(f"{k} {v:,}" for k, v in run.history.items())]
    for policy, by in run.decisions.items():
        lines.append(f"mynumber {policy}: " + ", ".join(f"{k} {v:,}" for k, v in by.items()))
        top = list(run.reasons.get(policy, {}).items())[:12]
        lines.append(f"mynumber {policy}, reasons: " + ", ".join(f"{k} {v:,}" for k, v in top))
    lines.append(
        f"plain Splink scored {run.splink_pairs:,} pairs; best threshold from the ground truth: "
        f"match weight > {run.splink_oracle_weight:.2f}"
    )
    lines.append("peak RSS: " + ", ".join(f"{k} {v:,.0f} MiB" for k, v in run.rss_mib.items()))
    return lines


def _machine_line(run: LinkageRun) -> str:
    m = run.machine
    if not m:
        return ""
    load = " ".join(map(str, m.get("loadavg_at_start", [])))
    end = " ".join(map(str, m.get("loadavg_at_end", [])))
    return (
        f"Machine: nproc {m.get('nproc')} · {m.get('cpu')} · {m.get('memory_gib')} GiB · "
        f"Python {m.get('python')} · load average {load} at start, {end} at end."
    )


def markdown(run: LinkageRun) -> str:
    parts = [
        f"### {_title(run)}",
        "",
        _machine_line(run),
        "",
        _md(*_quality_rows(run)),
        "",
        "Time of each stage:",
        "",
        _md(*_stage_rows(run)),
        "",
        "By kind of record (recall · false links · lost):",
        "",
        _md(*_kind_rows(run)),
        "",
    ]
    for t in run.targets():
        parts.append(f"- {'✔' if t['met'] else '✘'} {t['target']}: {t['value']}")
    parts += [f"- {line}" for line in _notes(run)]
    for line in run.wrong:
        parts.append(f"- WRONG: {line}")
    return "\n".join(parts) + "\n"


def _chart(run: LinkageRun, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6))
    if run.splink_curve:
        ax.plot(
            [f for _w, f, _r in run.splink_curve],
            [r for _w, _f, r in run.splink_curve],
            color="tab:gray",
            label="plain Splink, any threshold on the best candidate",
        )
    markers = "os^v<>Dx*"
    for n, q in enumerate(run.qualities):
        ax.scatter(
            [q.total.false_links],
            [q.total.recall],
            marker=markers[n % len(markers)],
            s=70,
            label=f"{q.method}: {q.total.recall:.1%}, {q.total.false_links:,} false",
            zorder=3,
        )
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("false links (the harm; symmetric log scale, 0 at the left)")
    ax.set_ylabel("recall (correct links ÷ records of living registered people)")
    ax.set_title(_title(run), fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_linkage(run: LinkageRun, out_dir: Path) -> None:
    """linkage-<register>-<roll>.json / .md / .png in `out_dir` (created)."""
    import json

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"linkage-{run.register_size}-{run.roll_size}"
    json_path, md_path, png_path = (stem.with_suffix(s) for s in (".json", ".md", ".png"))
    run.files = [str(json_path), str(md_path), str(png_path)]
    json_path.write_text(json.dumps(run.as_json(), ensure_ascii=False, indent=2) + "\n")
    md_path.write_text(markdown(run))
    try:
        _chart(run, png_path)
    except Exception as e:  # a chart is a convenience; the figures are in the JSON
        run.files.remove(str(png_path))
        err.print(f"[yellow]chart not written: {type(e).__name__}: {e}")


def linkage_results(run: LinkageRun) -> list[Result]:
    """mynumber's time beside plain Splink's, for the main table (throughputs, records/s)."""
    fixed, oracle = run.quality(SPLINK_FIXED), run.quality(SPLINK_ORACLE)
    if fixed is None or oracle is None:
        return []
    out: list[Result] = []
    for name in (STRICT, ASSISTED):
        q = run.quality(name)
        if q is None:
            continue
        n = q.total.records
        out.append(
            Result(
                benchmark=f"linkage, {name.removeprefix('mynumber ')}",
                backend="duckdb",
                value=n / q.seconds,
                unit="records/s",
                count=n,
                seconds=q.seconds,
                baseline="plain Splink (c)",
                baseline_value=n / fixed.seconds,
                baseline_seconds=fixed.seconds,
                target=n / fixed.seconds,
                target_text="time ≤ plain Splink's",
                notes=[
                    f"recall {q.total.recall:.2%}, {q.total.false_links:,} false links, "
                    f"{q.total.lost:,} lost; plain Splink at its best threshold: recall "
                    f"{oracle.total.recall:.2%}"
                ],
            )
        )
    return out
