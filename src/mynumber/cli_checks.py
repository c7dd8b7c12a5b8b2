"""`mynumber check-links EXTRACT.csv --out REPORT`: the general check (総点検) of an agency's
existing links (:mod:`mynumber.agency.checks`). REPORT is a directory (created when missing)
that receives ``report.csv`` and ``report.html``, each written atomically. A refused extract
writes nothing. Individual numbers are only ever shown masked (last four digits)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mynumber.cli import DatabaseUrl, DataDir, app, err, fail, out, platform_for, progress_bar
from mynumber.errors import MynumberError, ValidationError

__all__ = ["check_links_cmd"]


@app.command("check-links")
def check_links_cmd(
    extract: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="The agency's links: record_id, individual_number, name, name_kana, "
            "birth_date, sex, address (CSV; UTF-8 or Shift_JIS).",
        ),
    ],
    report: Annotated[
        Path,
        typer.Option("--out", file_okay=False, help="A directory for report.csv and report.html."),
    ],
    engine: Annotated[
        str, typer.Option(help="duckdb (one machine) | spark (a Spark session; see docs).")
    ] = "duckdb",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Classify every link of EXTRACT against the register (ok, variant_only, moved,
    name_changed, household_member_number, different_person, number_unknown, deceased) and
    write the report to --out."""
    from mynumber.agency.batch import platform_register
    from mynumber.agency.checks import CLASS_TEXT, CLASSES, check_links

    if engine not in ("duckdb", "spark"):
        fail(
            ValidationError(
                "checks.engine",
                "The engine is duckdb or spark.",
                "エンジンは duckdb または spark です。",
                field="engine",
            )
        )
    target = report.resolve()
    if not target.parent.is_dir() or target == extract.resolve().parent:
        fail(
            ValidationError(
                "checks.out",
                "--out must name a report directory (new or existing) inside an existing "
                "directory, not the extract's own directory.",
                "--out には既存のディレクトリ内のレポート用ディレクトリ（抽出ファイルのある"
                "ディレクトリ以外）を指定してください。",
                field="out",
            )
        )
    try:
        with platform_for(data_dir, database_url) as p, progress_bar() as bar:

            def progress(label: str, total: int) -> Callable[[int], None]:
                task = bar.add_task(label, total=total)
                return lambda n: bar.advance(task, n)

            result = check_links(
                lambda: platform_register(p, progress),
                extract,
                target,
                engine=engine,
                progress=progress,
            )
    except MynumberError as e:
        line = e.extra.get("line")
        fail(e, f"{extract}:{line}" if line else str(extract))
        return
    t = Table("class", "links", "share", "meaning")
    for cls in CLASSES:
        n = result.counts[cls]
        share = f"{100 * n / result.total:.3f}%" if result.total else "—"
        t.add_row(cls, f"{n:,}", share, f"{CLASS_TEXT[cls][0]} / {CLASS_TEXT[cls][1]}")
    out.print(t)
    out.print(
        f"{result.total:,} links / {result.total:,} 件 → {escape(str(target))}"
        " (report.csv, report.html)",
        highlight=False,
    )
    err.print("numbers in the report are masked / 出力の個人番号は下4桁のみです", highlight=False)
