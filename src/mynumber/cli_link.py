"""`mynumber link ROLL.csv --agency NAME --out OUT.csv`: batch linkage of an agency roll, stage 1
(:mod:`mynumber.agency.batch`). The whole roll is checked first (:mod:`mynumber.agency.roll`); a
bad roll is refused with its code, line and field and nothing is written — no output file, no
link, no review item. Individual numbers are only ever shown masked."""

from __future__ import annotations

import csv
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mynumber.charts import summary_chart
from mynumber.cli import DatabaseUrl, DataDir, app, err, fail, out, platform_for, progress_bar
from mynumber.errors import MynumberError

__all__ = ["link_cmd", "write_atomically", "write_samples"]

# Not imported from mynumber.cli_agency at module level: `python -m mynumber.cli` imports the
# cli_* modules while mynumber.cli is still initialising, so they must not import each other.
Agency = Annotated[str, typer.Option("--agency", help="The agency's id, e.g. kenpo-mirai.")]
Operator = Annotated[str, typer.Option("--operator", help="Who acts (recorded).")]


def write_atomically(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """Write a CSV (UTF-8) to a temporary file beside `path`, mode 0600, then rename it over
    `path`: readers see the old file or the whole new one, never a part."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(rows)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@app.command("link")
def link_cmd(
    roll: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="The agency's roll (CSV)."),
    ],
    agency: Agency,
    out_file: Annotated[
        Path, typer.Option("--out", dir_okay=False, help="Where to write the decisions (CSV).")
    ],
    operator: Operator,
    policy: Annotated[
        str, typer.Option(help="strict (all five items) | assisted (a one-item slip links).")
    ] = "strict",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Link a roll's records to individual numbers (I3): a deterministic five-item stage, then a
    probabilistic search (Splink) for the rest; each record linked or queued for review with its
    reasons and candidates. Decisions to --out, a summary chart beside it."""
    from mynumber.agency.batch import OUTPUT_COLUMNS, link_roll
    from mynumber.agency.roll import read_roll
    from mynumber.cli_agency import _check_agency, _invalid

    _check_agency(agency)
    if policy not in ("strict", "assisted"):
        _invalid(
            "policy", "The policy is strict or assisted.", "方針は strict または assisted です。"
        )
    if not operator.strip():
        _invalid("operator", "The operator is required.", "操作者は必須です。")
    target = out_file.resolve()
    if target == roll.resolve() or not target.parent.is_dir():
        _invalid(
            "out",
            "--out must name a new file (not the roll) in an existing directory.",
            "--out には既存のディレクトリ内の、名簿とは別のファイルを指定してください。",
        )
    try:
        records = read_roll(roll)
    except MynumberError as e:
        line = e.extra.get("line")
        fail(e, f"{roll}:{line}" if line else str(roll))
        return
    try:
        with platform_for(data_dir, database_url) as p, progress_bar() as bar:

            def stage(label: str, total: int) -> Callable[[int], None]:
                task = bar.add_task(label, total=total)
                return lambda n: bar.advance(task, n)

            decisions, result = link_roll(
                p, agency, records, operator=operator, policy=policy, progress=stage
            )
    except MynumberError as e:
        fail(e)
        return
    write_atomically(target, list(OUTPUT_COLUMNS), [d.row() for d in decisions])
    by_decision = Counter(d.decision for d in decisions)
    by_reason = Counter(r for d in decisions for r in d.reasons)
    chart = target.with_name(target.stem + ".summary.png")
    summary_chart(
        chart,
        f"{roll.name}: {len(decisions):,} records ({policy})",
        {f"{k} (decision)": v for k, v in by_decision.items()} | dict(by_reason),
        scores={
            kind: [
                d.weight
                for d in result.decisions
                if d.weight is not None and (d.decision == "linked") == (kind == "linked")
            ]
            for kind in ("linked", "not linked")
        },
        counts_title="decisions and reasons",
        scores_title="Splink's best candidate (probabilistic stage)",
        scores_label="match weight (bits)",
    )
    t = Table("decision", "records")
    for name in ("linked", "review", "unmatched", "rejected"):
        t.add_row(name, f"{by_decision[name]:,}")
    out.print(t)
    if by_reason:
        r = Table("reason", "records")
        for reason, n in sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
            r.add_row(escape(reason), f"{n:,}")
        out.print(r)
    s = Table("stage", "seconds")
    for name, seconds in result.stage_seconds.items():
        s.add_row(name, f"{seconds:.1f}")
    out.print(s)
    out.print(
        f"{len(decisions):,} records / {len(decisions):,} 件 → {escape(str(target))}"
        f" (chart: {escape(str(chart))})",
        highlight=False,
    )
    err.print("numbers in the output are masked / 出力の個人番号は下4桁のみです", highlight=False)


def write_samples(p: Any, directory: Path, records: int, links: int) -> tuple[Path, Path]:
    """``roll.csv`` and ``links.csv`` of the platform's own residents in `directory` (0600):
    something to try ``mynumber link`` and ``mynumber check-links`` on."""
    from mynumber.agency.checks import EXTRACT_COLUMNS
    from mynumber.agency.roll import ROLL_COLUMNS
    from mynumber.agency.samples import sample_extract, sample_roll
    from mynumber.municipality.bulk import export_residents

    directory.mkdir(parents=True, exist_ok=True)
    residents = list(export_residents(p.municipality))
    roll, _ = sample_roll(residents, records)
    extract, _ = sample_extract(residents, links)
    roll_file, links_file = directory / "roll.csv", directory / "links.csv"
    write_atomically(roll_file, list(ROLL_COLUMNS), roll)
    write_atomically(links_file, list(EXTRACT_COLUMNS), extract)
    return roll_file, links_file
