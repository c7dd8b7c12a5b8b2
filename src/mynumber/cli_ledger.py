"""`mynumber verify-proof BUNDLE.json`: check, offline, that a record is in the transparency log
(its inclusion proof against a tree head the log signed, and optionally that the head only
extends an earlier one). Needs nothing but the bundle: no server, no data directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mynumber.cli import app, err, out
from mynumber.ledger.bundle import check_bundle

__all__ = ["verify_proof"]

_MESSAGES = {
    "bundle.malformed": (
        "The file is not a proof bundle.",
        "証明ファイルの形式が正しくありません。",
    ),
    "bundle.wrong_key": (
        "The log key is not an Ed25519 key.",
        "ログの鍵がEd25519鍵ではありません。",
    ),
    "head.bad_signature": (
        "The tree head is not signed by this log's key.",
        "ツリーヘッドはこのログの鍵で署名されていません。",
    ),
    "inclusion.failed": (
        "The record is not in the tree this head describes.",
        "記録はこのツリーヘッドの木に含まれていません。",
    ),
    "consistency.failed": (
        "The new head does not extend the earlier one: the log's history was changed.",
        "新しいツリーヘッドは以前のものを延長していません。ログの履歴が書き換えられています。",
    ),
    "subject.mismatch": (
        "The record is not about the person whose subject key the bundle carries.",
        "記録は、証明に含まれる本人鍵の本人に関するものではありません。",
    ),
    "head.fork": (
        "Two heads of the same size with different roots: the log showed two histories.",
        "同じサイズで根が異なる2つのツリーヘッド：ログが2つの履歴を示しています。",
    ),
}


@app.command("verify-proof")
def verify_proof(
    bundle: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
) -> None:
    """Verify a transparency-log proof bundle offline (exit 0: verified, 1: not)."""
    if bundle.stat().st_size > 1_000_000:
        report_findings = ["bundle.malformed"]
        size = index = None
        record = None
    else:
        report = check_bundle(bundle.read_bytes())
        report_findings, size, index = report.findings, report.tree_size, report.leaf_index
        record = report.record
    if not report_findings:
        out.print(f"verified / 検証済み: record {index} of {size} (signed tree head)")
        if record is not None:
            fields = ("at", "requester", "task", "provider", "item", "basis", "outcome", "reason")
            for f in fields:
                if record.get(f) is not None:
                    out.print(f"  {f}: {record[f]}", highlight=False, markup=False)
        return
    for code in report_findings:
        en, ja = _MESSAGES[code]
        err.print(f"[red]error[/red] {code}", highlight=False)
        err.print(f"  {ja}", highlight=False, markup=False)
        err.print(f"  {en}", highlight=False, markup=False)
    raise typer.Exit(1)
