"""`mynumber ledger …` and `mynumber network …`: check the log, scan it for one person's records,
the auditor's report, retention, and the network's traffic."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mynumber.cli import DatabaseUrl, DataDir, app, err, out, platform_for, progress_bar

__all__ = ["ledger_app", "network_app"]

ledger_app = typer.Typer(help="The transparency log: audit it, scan it.", no_args_is_help=True)
network_app = typer.Typer(
    help="The information-provision network: traffic, anomalies, retention.",
    no_args_is_help=True,
)
app.add_typer(ledger_app, name="ledger")
app.add_typer(network_app, name="network")

_PAGE = 1000


@ledger_app.command("audit")
def ledger_audit(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Re-check the whole log from its store: every record against its leaf, every signed head
    against the leaves and the key (exit 0: intact; 1: each finding printed)."""
    with platform_for(data_dir, database_url) as p:
        findings = p.ledger.audit()
        head = p.ledger.head()
    if findings:
        for f in findings:
            err.print(f"[red]error[/red] ledger.tampered: {f}", highlight=False)
        raise typer.Exit(1)
    size = 0 if head is None else head.tree_size
    out.print(f"intact / 改ざんなし: {size:,} records, every signed head verified")


@ledger_app.command("scan")
def ledger_scan(
    url: Annotated[str, typer.Argument(help="The deployment, e.g. http://127.0.0.1:8000")],
    subject_key: Annotated[
        str, typer.Option(help="Your subject key (hex), shown with your records.")
    ],
    log_key: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="The log's public key (PEM) obtained out of band; default: fetched (trust on "
            "first use, said so).",
        ),
    ] = None,
) -> None:
    """Walk the whole public log: rebuild the tree, check it against the signed head, and list
    every record about you — including any the network's answer left out."""
    import httpx
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from mynumber.ledger.heads import SignedTreeHead, verify_head
    from mynumber.network.scan import scan

    try:
        key_bytes = bytes.fromhex(subject_key)
    except ValueError:
        key_bytes = b""
    if len(key_bytes) != 32:
        err.print("[red]error[/red] request.invalid [subject_key]", highlight=False)
        err.print("  本人鍵は32バイトの16進数です。", highlight=False, markup=False)
        err.print("  The subject key is 32 bytes of hex.", highlight=False, markup=False)
        raise typer.Exit(1)
    base = url.rstrip("/")
    with httpx.Client(base_url=base, timeout=30, trust_env=False) as client:
        pem = log_key.read_bytes() if log_key else client.get("/api/ledger/key").content
        if log_key is None:
            err.print("note: the log's key was fetched from the server itself (trust on first use)")
        key = load_pem_public_key(pem)
        head = SignedTreeHead.from_json(client.get("/api/ledger/head").json())
        if not isinstance(key, Ed25519PublicKey) or not verify_head(head, key):
            err.print("[red]error[/red] head.bad_signature", highlight=False)
            raise typer.Exit(1)

        def entries() -> Iterator[dict[str, Any]]:
            with progress_bar() as bar:
                task = bar.add_task("log", total=head.tree_size)
                for start in range(0, head.tree_size, _PAGE):
                    end = min(start + _PAGE, head.tree_size)
                    r = client.get("/api/ledger/entries", params={"start": start, "end": end})
                    r.raise_for_status()
                    page: list[dict[str, Any]] = r.json()
                    yield from page
                    bar.advance(task, len(page))

        result = scan(entries(), head, key_bytes)
    if not result.root_matches or result.bad_entries:
        err.print("[red]error[/red] inclusion.failed", highlight=False)
        err.print("  ログの記録が署名済みの根と一致しません。", highlight=False, markup=False)
        err.print(
            f"  The records served do not give the signed root ({len(result.bad_entries)} "
            "records do not hash to their leaves).",
            highlight=False,
            markup=False,
        )
        raise typer.Exit(1)
    t = Table("leaf", "at", "requester", "task", "provider", "item", "outcome")
    for index, rec in result.mine:
        t.add_row(
            str(index),
            str(rec.get("at")),
            str(rec.get("requester")),
            str(rec.get("task")),
            str(rec.get("provider")),
            str(rec.get("item")),
            str(rec.get("outcome") if not rec.get("reason") else rec.get("reason")),
        )
    out.print(t)
    out.print(
        f"{len(result.mine)} records about you in {result.size:,} (signed head verified; "
        f"{result.erased:,} erased after retention)"
    )


@network_app.command("stats")
def network_stats(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Exchanges by requester, provider and outcome."""
    with platform_for(data_dir, database_url) as p:
        counts = p.network.counts()
    t = Table("requester", "provider", "outcome", "count")
    for row in counts["exchanges"]:
        t.add_row(row["requester"], row["provider"], row["outcome"], f"{row['count']:,}")
    out.print(t)
    out.print(f"{counts['total']:,} exchanges")


@network_app.command("anomalies")
def network_anomalies(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    days: Annotated[int, typer.Option(min=1, help="Look back this many days.")] = 30,
) -> None:
    """The auditor's anomaly report (exit 0 either way; findings are printed)."""
    with platform_for(data_dir, database_url) as p:
        since = p.clock.now() - dt.timedelta(days=days)
        findings = p.network.anomalies(since)
    t = Table("kind", "requester", "from", "to", "count", "baseline")
    for f in findings:
        t.add_row(
            f.kind,
            f.requester,
            f.start.isoformat(timespec="minutes"),
            f.end.isoformat(timespec="minutes"),
            str(f.count),
            f"{f.baseline:.1f}",
        )
    out.print(t)
    out.print(f"{len(findings)} findings in the last {days} days")


@network_app.command("erase-expired")
def network_erase_expired(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Apply the seven-year retention (番号法施行令 30条): the network's rows deleted, the log's
    payloads erased; leaves stay, so proofs still verify."""
    with platform_for(data_dir, database_url) as p:
        rows, payloads = p.network.erase_expired()
    out.print(f"{rows:,} network records deleted, {payloads:,} log payloads erased")
