"""The `mynumber` command line (Typer + Rich). Commands are thin: they parse, call a service,
and print. Errors name the row and field, in Japanese and English, and exit non-zero."""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from mynumber.config import Settings
from mynumber.errors import MynumberError, NotFoundError

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="mynumber — Japan's My Number system."
)
number_app = typer.Typer(
    no_args_is_help=True, help="Check individual, corporate, resident and municipality numbers."
)
import_app = typer.Typer(no_args_is_help=True, help="Import data (residents CSV).")
export_app = typer.Typer(no_args_is_help=True, help="Export data (residents CSV).")
token_app = typer.Typer(no_args_is_help=True, help="Staff bearer tokens.")
municipality_app = typer.Typer(no_args_is_help=True, help="Municipalities of this deployment.")
app.add_typer(number_app, name="number")
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")
app.add_typer(token_app, name="token")
app.add_typer(municipality_app, name="municipality")

out = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", envvar="MYNUMBER_DATA_DIR", help="Where this deployment keeps its data."
    ),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="MYNUMBER_DATABASE_URL",
        help="PostgreSQL URL (default: SQLite files).",
    ),
]


def settings_for(data_dir: Path | None, database_url: str | None) -> Settings:
    values: dict[str, Any] = {}
    if data_dir is not None:
        values["data_dir"] = data_dir
    if database_url:
        values["database_url"] = database_url
    return Settings(**values)


def fail(e: MynumberError, where: str = "") -> None:
    prefix = f"{where}: " if where else ""
    # Field names in brackets would be read as Rich markup and vanish: escape what is not ours.
    where_field = f" [{e.field}]" if e.field else ""
    err.print(f"[red]error[/red] {escape(prefix + e.code + where_field)}", highlight=False)
    err.print(f"  {e.ja}", highlight=False, markup=False)
    err.print(f"  {e.en}", highlight=False, markup=False)
    raise typer.Exit(1)


@contextmanager
def platform_for(data_dir: Path | None, database_url: str | None, **kw: Any) -> Iterator[Any]:
    from mynumber.platform import Platform

    p = Platform(settings_for(data_dir, database_url), **kw)
    try:
        yield p
    finally:
        p.close()


# Events per mirror transaction in bulk: large, for the same reason as the import's WRITE_CHUNK.
SYNC_BATCH = 100_000


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


# -- numbers ---------------------------------------------------------------------------------


@number_app.command("check")
def number_check(
    value: Annotated[
        str, typer.Argument(help="The number as typed (full-width, spaces, hyphens are fine).")
    ],
    kind: Annotated[
        str, typer.Option(help="individual | corporate | resident-code | municipality")
    ] = "individual",
) -> None:
    """Print the normalised number and exit 0, or the reason it is wrong and exit 1."""
    from mynumber.numbers import Kind, mask, parse

    if kind not in {k.value for k in Kind}:
        err.print(
            f"[red]error[/red] unknown kind '{kind}': individual, corporate, resident-code, municipality"
        )
        raise typer.Exit(2)
    try:
        normalised = parse(value, kind)
    except MynumberError as e:
        fail(e)
        return
    # An individual number is never printed whole (I5): the check digit says it is well formed.
    shown = mask(normalised) if kind == Kind.INDIVIDUAL else normalised
    out.print(shown, highlight=False)


# -- synthetic data --------------------------------------------------------------------------


@app.command()
def synth(
    residents: Annotated[
        int, typer.Option("--residents", min=1, max=10_000_000, help="How many residents.")
    ] = 10_000,
    seed: Annotated[int, typer.Option(help="Same seed, same people.")] = 1,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write CSV here instead of into the database.")
    ] = None,
    municipality: Annotated[
        str | None, typer.Option(help="Municipality code (default: 新宿区 131041).")
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Generate a synthetic municipality: households, twins, elderly parents, foreign residents."""
    from mynumber.synth import DEFAULT_MUNICIPALITIES, generate_residents, write_csv

    chosen = DEFAULT_MUNICIPALITIES[0]
    if municipality:
        matches = [m for m in DEFAULT_MUNICIPALITIES if m.code == municipality]
        if not matches:
            codes = ", ".join(f"{m.code} {m.name}" for m in DEFAULT_MUNICIPALITIES)
            err.print(
                f"[red]error[/red] unknown synthetic municipality {municipality}; choose one of: {codes}"
            )
            raise typer.Exit(2)
        chosen = matches[0]
    rows = generate_residents(residents, seed, chosen)
    if out_file is not None:
        with progress_bar() as bar:
            task = bar.add_task("synth", total=residents)
            n = write_csv(rows, out_file, progress=lambda done: bar.update(task, completed=done))
        err.print(f"wrote {n:,} residents of {chosen.name} to {out_file}")
        return
    with platform_for(data_dir, database_url) as p:
        p.municipality.create_municipality(chosen.code, chosen.prefecture, chosen.name)
        report = _import(p, ((i + 2, r) for i, r in enumerate(rows)), residents, None, False)
    err.print(f"imported {report.imported:,} residents of {chosen.name} ({chosen.code})")


# -- import / export -------------------------------------------------------------------------


def _import(
    p: Any,
    rows: Any,
    total: int,
    municipality: str | None,
    skip_invalid: bool,
    create_municipalities: bool = False,
) -> Any:
    from mynumber.municipality.bulk import import_residents

    with progress_bar() as bar:
        task = bar.add_task("check", total=total)
        write_task = bar.add_task("import", total=None)
        p.auto_sync = False
        report = import_residents(
            p.municipality,
            rows,
            municipality=municipality,
            skip_invalid=skip_invalid,
            create_municipalities=create_municipalities,
            progress=lambda n: bar.advance(task, n),
            written=lambda done, of: bar.update(write_task, completed=done, total=of),
        )
        bar.update(task, total=report.read, completed=report.read)
        if report.committed and report.imported:
            sync_task = bar.add_task("J-LIS mirror", total=report.imported)
            for code in p.municipality.municipality_codes():
                while events := p.jlis.sync_once(p.municipality, code, SYNC_BATCH):
                    bar.advance(sync_task, events)
    return report


@import_app.command("residents")
def import_residents_cmd(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    municipality: Annotated[
        str | None, typer.Option(help="Code for rows whose municipality_code is empty.")
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Commit the good rows; report the rest.")
    ] = False,
    report_file: Annotated[
        Path | None, typer.Option("--report", help="Where to write the report of bad rows (CSV).")
    ] = None,
    create_municipalities: Annotated[
        bool,
        typer.Option(
            "--create-municipalities",
            help="Register municipality codes not yet in this deployment (else such rows are refused).",
        ),
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Import residents; with any bad row nothing is committed unless --skip-invalid."""
    from mynumber.csvio import count_lines, detect_encoding, read_residents

    encoding = "utf-8"
    try:
        with file.open("rb") as fh:
            encoding = detect_encoding(fh.read(1 << 16))
        if encoding == "cp932":
            err.print(
                "note: the file is Shift_JIS (CP932); it is read as such / Shift_JIS として読み込みます"
            )
        total = max(count_lines(file) - 1, 0)
        with (
            file.open(encoding=encoding, newline="") as fh,
            platform_for(data_dir, database_url) as p,
        ):
            report = _import(
                p, read_residents(fh), total, municipality, skip_invalid, create_municipalities
            )
    except UnicodeDecodeError:
        # Past the sample detect_encoding judged by; nothing was committed.
        shown = "Shift_JIS (CP932)" if encoding == "cp932" else "UTF-8"
        err.print(f"[red]error[/red] {escape(str(file))}: csv.encoding", highlight=False)
        err.print(
            f"  ファイルの途中に {shown} として読めない文字があります。UTF-8 で保存してください。",
            highlight=False,
        )
        err.print(
            f"  Part of the file is not valid {shown}; save the whole file as UTF-8.",
            highlight=False,
        )
        raise typer.Exit(1) from None
    except MynumberError as e:
        fail(e, str(file))
        return
    for bad in report.errors[:20]:
        where = f" [{bad.field}]" if bad.field else ""
        err.print(
            f"  line {bad.row}{where} {bad.code}: {bad.ja} / {bad.en}",
            highlight=False,
            markup=False,
        )
    if len(report.errors) > 20:
        err.print(f"  … and {len(report.errors) - 20:,} more")
    if report.errors:
        path = report_file or file.with_suffix(".errors.csv")
        with path.open("w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["row", "field", "code", "message_ja", "message_en"])
            for bad in report.errors:
                w.writerow([bad.row, bad.field or "", bad.code, bad.ja, bad.en])
        err.print(f"report of {len(report.errors):,} bad row(s): {path}", markup=False)
    if report.municipalities_added:
        err.print(f"municipalities added: {', '.join(report.municipalities_added)}")
    if not report.committed:
        err.print(
            f"[red]nothing imported[/red]: {len(report.errors):,} bad row(s); fix them or use --skip-invalid / 不正な行があるため取り込みませんでした"
        )
        raise typer.Exit(1)
    out.print(
        f"imported {report.imported:,} of {report.read:,} rows / {report.imported:,} 件を取り込みました"
    )


@export_app.command("residents")
def export_residents_cmd(
    file: Annotated[Path, typer.Argument(dir_okay=False)],
    municipality: Annotated[str | None, typer.Option(help="Only this municipality.")] = None,
    include_closed: Annotated[
        bool, typer.Option("--include-closed", help="Also 除票 (moved out, deceased).")
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Export residents in the import format, whole numbers included (file mode 0600)."""
    from mynumber.csvformat import RESIDENT_COLUMNS
    from mynumber.municipality.bulk import export_residents

    n = 0
    # Written beside the target and renamed at the end: a failed export leaves no partial file.
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    try:
        with platform_for(data_dir, database_url) as p:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=RESIDENT_COLUMNS)
                w.writeheader()
                for row in export_residents(
                    p.municipality, municipality, include_closed=include_closed
                ):
                    w.writerow(row)
                    n += 1
        tmp.replace(file)
    except MynumberError as e:
        fail(e)
    finally:
        tmp.unlink(missing_ok=True)
    out.print(f"exported {n:,} residents to {file}")


# -- administration --------------------------------------------------------------------------


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="Who or what uses the token.")],
    scope: Annotated[list[str], typer.Option(help="Repeat for several scopes.")],
    agency: Annotated[
        str | None,
        typer.Option(
            "--agency",
            help="The one agency an agency:link token acts for (registered with the network).",
        ),
    ] = None,
    kiosk_operator: Annotated[
        str | None,
        typer.Option(
            "--kiosk-operator",
            help="The kiosk operator a kiosk:issue token speaks for (kiosk ids OPERATOR-*).",
        ),
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a staff bearer token; it is printed once and stored only as a digest.

    An agency:link token is bound to one registered agency (--agency) and acts for it alone;
    agency:admin is the platform-wide scope that acts for every agency. A kiosk:issue token is
    bound to one kiosk operator (--kiosk-operator) and speaks for its kiosks alone."""
    from mynumber.api.auth import SCOPES, TokenStore

    s = settings_for(data_dir, database_url)
    s.data_dir.mkdir(parents=True, exist_ok=True)
    store = TokenStore(s.data_dir / "tokens.json")
    try:
        TokenStore.validate(scope, agency=agency, kiosk_operator=kiosk_operator)
    except ValueError as e:
        err.print(f"[red]error[/red] {escape(str(e))}; scopes: {', '.join(SCOPES)}")
        raise typer.Exit(2) from None
    if agency is not None:
        with platform_for(data_dir, database_url) as p:
            registered = p.network.agency(agency)
        if registered is None or not registered.active:
            fail(
                NotFoundError(
                    "network.unknown_agency",
                    "No active agency is registered with the network under that id.",
                    "その機関IDで登録された有効な機関はネットワークにありません。",
                    field="agency",
                )
            )
    token = store.create(name, scope, agency=agency, kiosk_operator=kiosk_operator)
    out.print(token, highlight=False)


@municipality_app.command("add")
def municipality_add(
    code: str,
    prefecture: Annotated[str, typer.Option()],
    name: Annotated[str, typer.Option()],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Register a municipality in this deployment."""
    try:
        with platform_for(data_dir, database_url) as p:
            p.municipality.create_municipality(code, prefecture, name)
    except MynumberError as e:
        fail(e)


@municipality_app.command("list")
def municipality_list(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    with platform_for(data_dir, database_url) as p:
        rows = p.municipality.list_municipalities()
    t = Table("code", "prefecture", "name", "residents")
    for r in rows:
        t.add_row(r["code"], r["prefecture"], r["name"], f"{r['residents']:,}")
    out.print(t)


@app.command()
def sync(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Bring the J-LIS identity mirror up to date with the municipalities' events."""
    with platform_for(data_dir, database_url) as p:
        n = p.sync()
    out.print(f"applied {n:,} events")


# -- the server ------------------------------------------------------------------------------


WORKER_HEALTHCHECK_SECONDS = 60
"""How long a server worker may leave its supervisor's ping unanswered before it is deemed hung."""


@app.command()
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=32)] = 1,
    seed_residents: Annotated[
        int, typer.Option(help="Seed a synthetic municipality of this size if empty (0: none).")
    ] = 0,
    seed_cards: Annotated[
        int,
        typer.Option(
            min=0,
            help="With --seed-residents: give this many adults a card (PINs: cards/DEMO-PINS.csv).",
        ),
    ] = 100,
    seed_agencies: Annotated[
        bool,
        typer.Option(
            help="With --seed-residents: register five demo agencies and run exchanges between them."
        ),
    ] = True,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Start the HTTP server (API, OpenAPI docs, landing page). `kill -USR1` on it or a worker
    writes every thread's stack to the log."""
    import faulthandler
    import signal

    import uvicorn

    faulthandler.register(signal.SIGUSR1, all_threads=True)

    from mynumber.api.auth import SCOPES, TokenStore

    s = settings_for(data_dir, database_url)
    s.data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["MYNUMBER_DATA_DIR"] = str(s.data_dir.resolve())
    if database_url:
        os.environ["MYNUMBER_DATABASE_URL"] = database_url
    demo_chip: str | None = None
    with platform_for(s.data_dir, database_url) as p:
        if seed_residents and not p.municipality.municipality_codes():
            from mynumber.synth import DEFAULT_MUNICIPALITIES, generate_residents

            m = DEFAULT_MUNICIPALITIES[0]
            err.print(f"seeding {seed_residents:,} synthetic residents of {m.prefecture}{m.name} …")
            p.municipality.create_municipality(m.code, m.prefecture, m.name)
            rows = generate_residents(seed_residents, 1, m)
            _import(p, ((i + 2, r) for i, r in enumerate(rows)), seed_residents, None, False)
        if seed_residents and seed_cards:
            from mynumber.cli_card import seed_demo_cards

            seed_demo_cards(p, seed_cards)
            from mynumber.jlis.card_seed import DEMO_PINS
            from mynumber.municipality.seal_seed import seed_seals

            pins = s.data_dir / "cards" / DEMO_PINS
            added, held = seed_seals(p.seals, p.municipality, pins)
            err.print(f"seals: {added:,} registered, {held:,} already held (card holders)")
            demo_chip = _first_chip(pins)
        if seed_residents and seed_agencies:
            from mynumber.agency.seed import seed_agencies as seed_demo_agencies

            err.print("seeding the demo agencies and their exchanges over the network …")
            seed_demo_agencies(p, progress=lambda msg: err.print(f"  {msg}"))
            from mynumber.cli_link import write_samples

            roll_file, links_file = write_samples(p, s.data_dir / "samples", 2_000, 5_000)
            err.print(f"  samples to try: {roll_file} (mynumber link), {links_file} (check-links)")
        token_file = s.data_dir / "demo-token"
        # The demo token is also a registered verifier's, so OCSP and 基本4情報提供 answer it;
        # with every scope it holds the platform-wide agency:admin and acts for every agency.
        demo_verifier = (
            None if token_file.exists() else p.verifiers.register("demo", ["signature", "auth"])
        )
    if demo_verifier is not None:
        token = TokenStore(s.data_dir / "tokens.json").create(
            "demo", sorted(SCOPES), verifier=demo_verifier.id
        )
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
    url = f"http://{host}:{port}/"
    out.print(f"\n  mynumber is running at [bold]{url}[/bold]   (API docs: {url}docs)")
    out.print(f"  data: {s.data_dir}   demo staff token: {token_file}")
    if seed_residents and seed_cards and demo_chip:
        here = url.rstrip("/")
        to = "" if here == s.base_url.rstrip("/") else f" --url {here}"
        out.print(
            f"  kiosk: mynumber kiosk --chip {demo_chip} --out juminhyo.pdf --data-dir {s.data_dir}"
            f"{to}   (PIN: {s.data_dir / 'cards' / 'DEMO-PINS.csv'})"
        )
        out.print(f"  check a document: {url}verify  or  mynumber verify-document FILE.pdf")
    out.print("")
    sys.stdout.flush()
    uvicorn.run(
        "mynumber.api.server:app",
        host=host,
        port=port,
        workers=workers,
        factory=False,
        log_level="warning",
        # uvicorn kills a worker that does not answer its supervisor's ping in time. Its
        # default, 5 s, is less than a worker building the platform on a loaded 2-core machine
        # may need: it was killed and restarted over and over, silently, and never served (CI).
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
    )


def _first_chip(pins: Path) -> str | None:
    """The first demo card's chip id (never its PINs: they stay in the 0600 file)."""
    if not pins.is_file():
        return None
    rows = [r for r in pins.read_text().splitlines() if r and not r.startswith("chip_id,")]
    return rows[0].split(",")[0] if rows else None


import mynumber.cli_agency  # noqa: E402  (agency enrol|reviews|review|decide)
import mynumber.cli_checks  # noqa: E402  (check-links EXTRACT --out REPORT)
import mynumber.cli_document  # noqa: E402  (certificate issue|support-measure, verify-document)
import mynumber.cli_kiosk  # noqa: E402  (kiosk: card, PIN, choice, preview, print)
import mynumber.cli_ledger  # noqa: E402  (verify-proof)
import mynumber.cli_link  # noqa: E402  (link ROLL --agency --out)
import mynumber.cli_network  # noqa: E402  (ledger audit|scan, network …)
import mynumber.cli_seal  # noqa: E402  (seal register|abolish|lost|history)
import mynumber.cli_verify  # noqa: E402, F401  (sign, verify-signature, verifier …)
from mynumber.cli_card import card_app  # noqa: E402

app.add_typer(card_app, name="card")


def main() -> None:
    app()


if __name__ == "__main__":
    # `python -m mynumber.cli`: run the module proper, on whose app other modules register.
    from mynumber.cli import main as _main

    _main()
