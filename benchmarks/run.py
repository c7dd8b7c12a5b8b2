"""`python -m benchmarks`: generate, import, query, serve; print the table; write JSON."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Any

from rich.table import Table

from .backends import Backend, postgres_backend, postgres_database, postgres_version, sqlite_backend
from .bench_checks import ChecksRun, checks_results, run_checks
from .bench_http import http_results, run_http
from .bench_import import as_tuples, import_results, run_import
from .bench_kiosk import KioskRun, kiosk_results, run_kiosk
from .bench_merkle import MerkleRun, merkle_results, run_merkle
from .bench_network import (
    LEDGER_APPENDS,
    LedgerRun,
    NetworkRun,
    ledger_results,
    network_results,
    run_ledger,
    run_network,
)
from .bench_pki import PkiRun, login_bench, pki_results, run_pki
from .bench_query import Tally, query_result, run_bare_lookup, run_queries
from .common import Result, err, fmt_rate, machine_info, out
from .data import build_claims, generate_rows
from .linkage.run import LinkageRun, linkage_results, print_linkage, run_linkage, write_linkage

__all__ = ["main"]

PHASES = ("import", "query", "http", "pki", "merkle", "network", "linkage", "checks", "kiosk")
REGISTER_PHASES = frozenset({"import", "query", "http", "pki"})
"""The phases that need the synthetic register generated and imported (network seeds its own
small deployment, merkle needs none)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="mynumber benchmarks: each figure beside a floor measured in the same run.",
    )
    p.add_argument("--rows", type=int, default=1_000_000, help="residents to import (1,000,000)")
    p.add_argument("--queries", type=int, default=20_000, help="five-item claims (20,000)")
    p.add_argument(
        "--postgres",
        metavar="URL",
        help="also run on PostgreSQL: a database is created on this server and dropped after",
    )
    p.add_argument(
        "--only",
        choices=PHASES,
        action="append",
        help="report only this benchmark (repeatable); the register is imported for any but "
        "merkle, network, linkage and checks",
    )
    p.add_argument("--json", metavar="FILE", type=Path, help="also write the results as JSON")
    p.add_argument("--seed", type=int, default=1, help="seed of the synthetic register (1)")
    p.add_argument("--workers", type=int, default=2, help="server worker processes (2)")
    p.add_argument("--concurrency", type=int, default=32, help="HTTP requests in flight (32)")
    p.add_argument(
        "--http-client",
        choices=("httpx", "lean", "both"),
        default="both",
        help="HTTP client(s): httpx.AsyncClient, and/or a lean asyncio one that shows what the "
        "server itself sustains (both)",
    )
    p.add_argument(
        "--http-time-limit",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="upper bound of each timed HTTP phase (300)",
    )
    p.add_argument(
        "--pki-holders",
        type=int,
        default=2000,
        help="residents given certificates for the OCSP and login benchmarks (2,000)",
    )
    p.add_argument(
        "--pki-requests",
        type=int,
        default=10_000,
        help="OCSP requests and logins to time (10,000)",
    )
    p.add_argument(
        "--merkle-leaves",
        type=int,
        default=1_000_000,
        help="leaves appended to the transparency log's Merkle tree (1,000,000; the target "
        "run is 10,000,000)",
    )
    p.add_argument(
        "--network-exchanges",
        type=int,
        default=5_000,
        help="brokered exchanges per timed network run, in process and over HTTP (5,000; "
        "0: only the ledger store)",
    )
    p.add_argument(
        "--network-residents",
        type=int,
        default=10_000,
        help="residents of the network phase's own seeded deployment (10,000)",
    )
    p.add_argument(
        "--ledger-leaves",
        type=int,
        default=1_000_000,
        help="leaves of the network phase's ledger store in its database (1,000,000; the target "
        "run is 10,000,000; 0: skip)",
    )
    p.add_argument(
        "--linkage-register",
        type=int,
        default=20_000,
        metavar="N",
        help="people in the linkage benchmark's register (20,000; the target run is 1,000,000)",
    )
    p.add_argument(
        "--linkage-roll",
        type=int,
        metavar="M",
        help="records in its roll (default: half the register; the target run is 500,000)",
    )
    p.add_argument(
        "--linkage-out",
        type=Path,
        default=Path("var/bench"),
        metavar="DIR",
        help="where the linkage benchmark writes linkage-N-M.json/.md/.png (var/bench)",
    )
    p.add_argument("--kiosks", type=int, default=64, metavar="N", help="kiosks at once (64)")
    p.add_argument(
        "--kiosk-rounds",
        type=int,
        default=4,
        metavar="N",
        help="documents each kiosk prints in the timed phase (4)",
    )
    p.add_argument(
        "--checks-links",
        type=int,
        default=200_000,
        metavar="N",
        help="links of the general check's extract (200,000; the target run is 10,000,000)",
    )
    p.add_argument(
        "--checks-register",
        type=int,
        default=None,
        metavar="N",
        help="people of the general check's register (default: as many as links, at most "
        "2,000,000)",
    )
    return p


def _holders(backend: Backend, n: int) -> list[str]:
    from sqlalchemy import select

    from mynumber.jlis import models as m

    t = m.identities.c
    with backend.platform.jlis.engine.connect() as conn:
        return list(
            conn.execute(
                select(t.resident_code)
                .where(t.status == "active")
                .order_by(t.resident_code)
                .limit(n)
            ).scalars()
        )


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally: server stopped, dirs removed


def _ratio(r: Result) -> str:
    x = r.ratio
    if x != x:
        return "—"
    return f"{x:.3f} (1/{1 / x:,.1f})" if x < 1 else f"{x:.2f}×"


def _target(r: Result) -> str:
    if r.met is None:
        return r.target_text or "—"
    mark = "[green]✔ met" if r.met else "[bold red]✘ missed"
    return f"{r.target_text} {mark}"


def _table(results: list[Result]) -> Table:
    t = Table(title="mynumber benchmarks — ratio = figure ÷ baseline (throughput; 1.0 = the floor)")
    t.add_column("benchmark")
    t.add_column("figure", justify="right")
    t.add_column("baseline figure")
    t.add_column("ratio", justify="right", no_wrap=True)
    t.add_column("target")
    last = None
    for r in results:
        if last is not None and r.backend != last:
            t.add_section()
        last = r.backend
        t.add_row(
            f"{r.backend}: {r.benchmark}",
            f"{fmt_rate(r.value, r.unit)} · {r.seconds:,.2f} s",
            f"{fmt_rate(r.baseline_value, r.unit)} {r.baseline} · {r.baseline_seconds:,.2f} s",
            _ratio(r),
            _target(r),
        )
    return t


def _machine_lines(m: dict[str, Any], args: argparse.Namespace) -> list[str]:
    lines = [
        f"machine: nproc {m['nproc']} · {m['cpu']} · {m['memory_gib']} GiB · {m['os']}",
        f"software: Python {m['python']} · SQLite {m['sqlite']}"
        + (f" · PostgreSQL {m['postgresql']}" if m.get("postgresql") else "")
        + f" · SQLAlchemy {m['sqlalchemy']} · psycopg {m['psycopg']} · httpx {m['httpx']}",
        f"load average: {' '.join(map(str, m['loadavg_at_start']))} at start, "
        f"{' '.join(map(str, m.get('loadavg_at_end', [])))} at end "
        "(other work on the machine skews every figure)",
        f"run: {args.rows:,} residents (seed {args.seed}), {args.queries:,} claims, "
        f"HTTP: {args.workers} server workers, {args.concurrency} in flight",
    ]
    if not set(args.only or PHASES) & REGISTER_PHASES:
        lines.pop()  # no register generated
    if "linkage" in set(args.only or PHASES):
        lines.append(
            f"linkage: a roll of {args.linkage_roll:,} against a register of "
            f"{args.linkage_register:,} (seed {args.seed})"
        )
    if "checks" in set(args.only or PHASES):
        lines.append(f"general check: {args.checks_links:,} links (seed {args.seed})")
    if "kiosk" in set(args.only or PHASES):
        lines.append(
            f"kiosk: {args.kiosks} kiosks, {args.kiosk_rounds} documents each, "
            f"{args.workers} server workers"
        )
    if "merkle" in set(args.only or PHASES):
        lines.append(f"Merkle log: {args.merkle_leaves:,} leaves")
    if "network" in set(args.only or PHASES):
        lines.append(
            (
                f"network: {args.network_residents:,} residents (seed {args.seed}) and five demo "
                f"agencies, {args.network_exchanges:,} exchanges per run"
                if args.network_exchanges
                else "network: exchanges skipped"
            )
            + "; ledger store: "
            + (f"{args.ledger_leaves:,} leaves" if args.ledger_leaves else "skipped")
        )
    return lines


def _register_phases(
    args: argparse.Namespace,
    only: set[str],
    clients: tuple[str, ...],
    results: list[Result],
    tallies: list[Tally],
    details: dict[str, list[dict[str, Any]]],
    pki_runs: list[PkiRun],
) -> dict[str, Any]:
    """Generate the register, import it into each backend and run the phases that need it;
    results, tallies, details and PKI runs are appended to; the claims' summary is returned."""
    rows = generate_rows(args.rows, args.seed)
    tuples = as_tuples(rows) if "import" in only else None
    claims: list[Any] = []
    warm: list[Any] = []
    claim_summary: dict[str, Any] = {}
    if only & {"query", "http"}:
        claims, claim_summary = build_claims(rows, args.queries, args.seed + 1)
        warm, _ = build_claims(rows, 200, args.seed + 2, label="warm-up claims")

    root = Path(tempfile.mkdtemp(prefix="mynumber-bench-"))
    err.print(f"[dim]temporary data dir: {root} (removed at the end)")
    try:
        with ExitStack() as stack:
            makers: list[tuple[str, Any]] = [("sqlite", lambda: sqlite_backend(root))]
            if args.postgres:

                def make_pg() -> Backend:
                    url = stack.enter_context(postgres_database(args.postgres))
                    return postgres_backend(root, url)

                makers.append(("postgresql", make_pg))
            for _name, make in makers:
                backend: Backend = make()
                try:
                    run = run_import(backend, rows, tuples)
                    details["import"].append(run.as_json())
                    if "import" in only:
                        results += import_results(run)
                    if "pki" in only:
                        pr = run_pki(
                            backend,
                            _holders(backend, args.pki_holders),
                            args.pki_requests,
                            args.seed,
                            login=login_bench,
                        )
                        pki_runs.append(pr)
                        details["pki"].append(pr.as_json())
                        results += pki_results(pr)
                    if not only & {"query", "http"}:
                        continue
                    bare = run_bare_lookup(backend, claims, warm)
                    details["bare_lookup"].append(bare.as_json())
                    if "query" in only:
                        seconds, tally = run_queries(backend, claims, warm)
                        results.append(query_result(backend.name, seconds, len(claims), bare))
                        tallies.append(tally)
                    if "http" in only:
                        hr = run_http(
                            backend,
                            claims,
                            warm,
                            clients=clients,
                            workers=args.workers,
                            concurrency=args.concurrency,
                            time_limit=args.http_time_limit,
                            log_dir=root,
                        )
                        details["http"].append(hr.as_json())
                        results += http_results(hr, bare)
                        tallies += [c.tally for c in hr.clients]
                    if bare.targets_missing:
                        tallies[-1].wrong.append(
                            f"bare lookup missed {bare.targets_missing} persons (floor broken)"
                        )
                finally:
                    backend.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return claim_summary


def _network_phase(
    args: argparse.Namespace,
    clients: tuple[str, ...],
    results: list[Result],
    details: dict[str, list[dict[str, Any]]],
    network_runs: list[NetworkRun],
    ledger_runs: list[LedgerRun],
) -> None:
    """On each backend: seed the network's own deployment and run the exchanges (unless
    --network-exchanges is 0), then the ledger store at --ledger-leaves (unless 0) in a file or
    a database of its own, removed as soon as it is measured."""
    root = Path(tempfile.mkdtemp(prefix="mynumber-bench-"))
    err.print(f"[dim]temporary data dir: {root} (removed at the end)")
    try:
        for name in ("sqlite", "postgresql") if args.postgres else ("sqlite",):
            if args.network_exchanges:
                with ExitStack() as stack:
                    if name == "sqlite":
                        backend = sqlite_backend(root)
                    else:
                        url = stack.enter_context(postgres_database(args.postgres))
                        backend = postgres_backend(root, url)
                    stack.callback(backend.close)
                    nr = run_network(
                        backend,
                        residents=args.network_residents,
                        exchanges=args.network_exchanges,
                        seed=args.seed,
                        clients=clients,
                        workers=args.workers,
                        concurrency=args.concurrency,
                        time_limit=args.http_time_limit,
                        log_dir=root,
                    )
                network_runs.append(nr)
                details["network"].append(nr.as_json())
                results += network_results(nr)
            if not args.ledger_leaves:
                continue
            if name == "sqlite":
                store = root / "ledger-store.sqlite3"
                try:
                    lr = run_ledger(name, f"sqlite:///{store}", args.ledger_leaves, args.seed)
                finally:
                    for suffix in ("", "-wal", "-shm"):
                        Path(f"{store}{suffix}").unlink(missing_ok=True)
            else:
                with postgres_database(args.postgres) as url:
                    lr = run_ledger(name, url, args.ledger_leaves, args.seed)
            ledger_runs.append(lr)
            details["ledger"].append(lr.as_json())
            results += ledger_results(lr)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    only = set(args.only or PHASES)
    clients = ("httpx", "lean") if args.http_client == "both" else (args.http_client,)
    if args.rows < 1 or args.queries < 1:
        err.print("[red]--rows and --queries must be positive")
        return 2
    if "merkle" in only and args.merkle_leaves < 2:
        err.print("[red]--merkle-leaves must be at least 2")
        return 2
    if "network" in only and (
        args.network_exchanges == 1
        or args.network_exchanges < 0
        or args.network_residents < 100
        or args.ledger_leaves < 0
        or 0 < args.ledger_leaves <= LEDGER_APPENDS
        or not (args.network_exchanges or args.ledger_leaves)
    ):
        err.print(
            "[red]--network-exchanges must be 0 or at least 2, --network-residents at least 100, "
            f"--ledger-leaves 0 or more than {LEDGER_APPENDS:,}, and not both 0"
        )
        return 2
    if args.linkage_roll is None:
        args.linkage_roll = args.linkage_register // 2
    if "linkage" in only and (
        args.linkage_register < 1000 or not 1 <= args.linkage_roll <= args.linkage_register // 2
    ):
        err.print("[red]--linkage-register must be at least 1,000, --linkage-roll 1 to half of it")
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    if not out.is_terminal:
        out.width = max(out.width, 180)

    machine = machine_info()
    if args.postgres:
        machine["postgresql"] = postgres_version(args.postgres)
    started = time.time()

    results: list[Result] = []
    tallies: list[Tally] = []
    details: dict[str, list[dict[str, Any]]] = {
        "import": [],
        "bare_lookup": [],
        "http": [],
        "pki": [],
        "merkle": [],
        "network": [],
        "ledger": [],
        "linkage": [],
        "checks": [],
        "kiosk": [],
    }
    pki_runs: list[PkiRun] = []
    merkle_runs: list[MerkleRun] = []
    network_runs: list[NetworkRun] = []
    ledger_runs: list[LedgerRun] = []
    linkage_runs: list[LinkageRun] = []
    claim_summary: dict[str, Any] = {}
    if only & REGISTER_PHASES:
        claim_summary = _register_phases(args, only, clients, results, tallies, details, pki_runs)
    if "merkle" in only:
        mr = run_merkle(args.merkle_leaves, args.seed)
        merkle_runs.append(mr)
        details["merkle"].append(mr.as_json())
        results += merkle_results(mr)
    if "network" in only:
        _network_phase(args, clients, results, details, network_runs, ledger_runs)
    if "linkage" in only:
        lkr = run_linkage(args.linkage_register, args.linkage_roll, args.seed)
        write_linkage(lkr, args.linkage_out)
        linkage_runs.append(lkr)
        details["linkage"].append(lkr.as_json())
        results += linkage_results(lkr)
    checks_runs: list[ChecksRun] = []
    if "checks" in only:
        cr = run_checks(args.checks_links, args.checks_register, args.seed)
        checks_runs.append(cr)
        details["checks"].append(cr.as_json())
        results += checks_results(cr)

    kiosk_runs: list[KioskRun] = []
    if "kiosk" in only:
        root = Path(tempfile.mkdtemp(prefix="mynumber-bench-"))
        try:
            for name in ("sqlite", "postgresql") if args.postgres else ("sqlite",):
                with ExitStack() as stack:
                    url = (
                        stack.enter_context(postgres_database(args.postgres))
                        if name == "postgresql"
                        else None
                    )
                    kr = run_kiosk(
                        kiosks=args.kiosks,
                        per_kiosk=args.kiosk_rounds,
                        database_url=url,
                        workers=args.workers,
                        log_dir=root,
                    )
                kiosk_runs.append(kr)
                details["kiosk"].append(kr.as_json())
                results += kiosk_results(kr)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    machine["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out.print()
    for line in _machine_lines(machine, args):
        out.print(line, highlight=False)
    if claim_summary:
        by = claim_summary["by_kind"]
        out.print(
            f"claims: {by['exact']:,} exact, {by['variant']:,} variant notation, "
            f"{by['wrong']:,} with one wrong item ({claim_summary['wrong_redrawn']:,} redrawn "
            f"because they named someone); {claim_summary['expected_ambiguous']:,} true "
            "duplicates in the register (expected ambiguous)",
            highlight=False,
        )
    out.print()
    out.print(_table(results))
    for r in results:
        for note in r.notes:
            out.print(f"  {r.backend}: {r.benchmark.strip()} — {note}", highlight=False)
    out.print()
    for tally in tallies:
        tally.print()
    for pr in pki_runs:
        verdict = "all right" if not pr.wrong else f"{len(pr.wrong)} WRONG"
        out.print(f"{pr.backend}: PKI answers checked: {verdict}", highlight=False)
        for line in pr.wrong[:10]:
            out.print(f"  {line}", highlight=False)
    for mr in merkle_runs:
        verdict = "all right" if not mr.wrong else f"{len(mr.wrong)} WRONG"
        out.print(f"Merkle proofs checked ({2 * mr.proofs:,}): {verdict}", highlight=False)
        for line in mr.wrong[:10]:
            out.print(f"  {line}", highlight=False)
    for nr in network_runs:
        verdict = "all right" if not nr.wrong_count else f"{nr.wrong_count} WRONG"
        checked = sum(r.count for r in nr.runs) + sum(h.exchanges.sent for h in nr.http)
        out.print(
            f"{nr.backend}: network answers checked ({checked:,} exchanges and their leaves, "
            f"{nr.bundles_checked} proof bundles, ledger audit of {nr.log_size:,} leaves): {verdict}",
            highlight=False,
        )
        for line in nr.wrong[:10]:
            out.print(f"  {line}", highlight=False)
    for lr in ledger_runs:
        verdict = "all right" if not lr.wrong else f"{len(lr.wrong)} WRONG"
        out.print(
            f"{lr.backend}: ledger store checked ({lr.proofs:,} proof bundles, "
            f"{2 * lr.appends:,} appends' indices, audit): {verdict}",
            highlight=False,
        )
        for line in lr.wrong[:10]:
            out.print(f"  {line}", highlight=False)
    for lkr in linkage_runs:
        print_linkage(lkr)
    for cr in checks_runs:
        verdict = "all right" if not cr.wrong else f"{len(cr.wrong)} WRONG"
        out.print(
            f"general check: DuckDB and plain-Python classes compared on {cr.floor_links:,} "
            f"links: {verdict}",
            highlight=False,
        )
        for line in cr.wrong[:10]:
            out.print(f"  {line}", highlight=False)
    failed = (
        any(not t.ok for t in tallies)
        or any(pr.wrong for pr in pki_runs)
        or any(mr.wrong for mr in merkle_runs)
        or any(nr.wrong_count for nr in network_runs)
        or any(lr.wrong for lr in ledger_runs)
        or any(lkr.wrong for lkr in linkage_runs)
        or any(cr.wrong for cr in checks_runs)
        or any(kr.wrong for kr in kiosk_runs)
    )

    if args.json:
        doc = {
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "seconds": time.time() - started,
            "parameters": {
                "rows": args.rows,
                "queries": args.queries,
                "seed": args.seed,
                "postgres": bool(args.postgres),
                "only": sorted(only),
                "server_workers": args.workers,
                "concurrency": args.concurrency,
                "http_clients": list(clients),
                "http_time_limit": args.http_time_limit,
                "merkle_leaves": args.merkle_leaves,
                "network_exchanges": args.network_exchanges,
                "network_residents": args.network_residents,
                "ledger_leaves": args.ledger_leaves,
                "linkage_register": args.linkage_register,
                "linkage_roll": args.linkage_roll,
                "checks_links": args.checks_links,
                "checks_register": args.checks_register,
            },
            "machine": machine,
            "ratio_definition": "figure / baseline, both throughputs (= baseline time / our time)",
            "results": [r.as_json() for r in results],
            "claims": claim_summary,
            "correctness": [t.as_json() for t in tallies],
            "details": details,
            "all_answers_right": not failed,
        }
        args.json.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
        err.print(f"[dim]results written to {args.json}")
    return 1 if failed else 0
