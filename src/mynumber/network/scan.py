"""A person's (or anyone's) own check of the public log: rebuild the tree from every record,
confirm it gives the root the log signed, and pick out every record whose subject commitment is
the person's. Pure: the caller fetches the entries (``GET /api/ledger/entries``).

If the network's answer to "my records" leaves a record out, the scan finds it; if the log
served entries that are not the ones it signed, the root does not match.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mynumber.ledger.heads import SignedTreeHead
from mynumber.ledger.merkle import MerkleTree, leaf_hash
from mynumber.network.codes import subject_commitment

__all__ = ["ScanResult", "scan"]


@dataclass
class ScanResult:
    size: int = 0
    root_matches: bool = False
    bad_entries: list[int] = field(default_factory=list)
    """Indices whose record does not hash to the leaf hash served beside it."""
    erased: int = 0
    mine: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


def scan(entries: Iterable[dict[str, Any]], head: SignedTreeHead, subject_key: bytes) -> ScanResult:
    """`entries` in index order from 0 (each ``{"index", "leaf_hash", "data"}``, hex); `head`
    already verified by the caller against the log's key."""
    tree = MerkleTree()
    result = ScanResult()
    for e in entries:
        if e["index"] != tree.size:
            raise ValueError(f"entry {tree.size} is missing")
        h = bytes.fromhex(e["leaf_hash"])
        tree.append_hash(h)
        if e["data"] is None:
            result.erased += 1
            continue
        data = bytes.fromhex(e["data"])
        if leaf_hash(data) != h:
            result.bad_entries.append(e["index"])
            continue
        try:
            record = json.loads(data)
        except ValueError:
            continue
        rid = record.get("request_id") if isinstance(record, dict) else None
        if isinstance(rid, str) and record.get("subject") == (
            subject_commitment(subject_key, rid).hex()
        ):
            result.mine.append((e["index"], record))
    result.size = tree.size
    result.root_matches = tree.size >= head.tree_size and (
        tree.root(head.tree_size) == head.root_hash
    )
    return result
