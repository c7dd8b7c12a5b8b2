"""The proof bundle a person (or anyone) checks offline: "this record is in the log whose head
the log signed". Pure.

A bundle is JSON::

    {"log_public_key": "<PEM of the log's Ed25519 key, obtained out of band>",
     "tree_head": {SignedTreeHead.to_json()},
     "leaf_index": 17, "leaf_data": "<hex of the leaf's bytes>"   (or "leaf_hash": "<hex>"),
     "inclusion_path": ["<hex>", …],
     "earlier_head": {…}, "consistency_path": [...],        (optional: an earlier head kept)
     "subject_key": "<hex of the person's subject key>"}      (optional: whose record it is)

:func:`check_bundle` answers with a list of findings, each a stable code, so a verifier can say
exactly what failed: ``bundle.malformed``, ``bundle.wrong_key`` (not an Ed25519 key),
``head.bad_signature``, ``inclusion.failed``, ``consistency.failed``, ``head.fork`` (the
earlier head has the same size and another root), ``subject.mismatch`` (with ``subject_key``:
the record's subject commitment is not this person's, see :mod:`mynumber.network.codes`). An
empty list means everything verified.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from mynumber.ledger.heads import SignedTreeHead, is_fork, verify_extends, verify_head
from mynumber.ledger.merkle import HASH_SIZE, leaf_hash, verify_inclusion
from mynumber.network.codes import subject_commitment

__all__ = ["BundleReport", "check_bundle"]

_MAX_PATH = 64  # a tree of 2**64 leaves has paths of 64 hashes


@dataclass
class BundleReport:
    findings: list[str] = field(default_factory=list)
    tree_size: int | None = None
    leaf_index: int | None = None
    record: dict[str, Any] | None = None
    """The record's JSON, when the bundle carries the record and it is JSON."""

    @property
    def ok(self) -> bool:
        return not self.findings


def _hashes(value: Any) -> list[bytes]:
    if not isinstance(value, list) or len(value) > _MAX_PATH:
        raise ValueError("a path is a list of at most 64 hex hashes")
    out = [bytes.fromhex(v) if isinstance(v, str) else b"" for v in value]
    if any(len(h) != HASH_SIZE for h in out):
        raise ValueError("a hash is 32 bytes of hex")
    return out


def check_bundle(text: str | bytes) -> BundleReport:
    """Every check a bundle allows; the report lists what failed (empty: all verified)."""
    report = BundleReport()
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ValueError("a bundle is a JSON object")
        key = load_pem_public_key(str(doc["log_public_key"]).encode())
        head = SignedTreeHead.from_json(doc["tree_head"])
        index = doc["leaf_index"]
        if not isinstance(index, int) or isinstance(index, bool):
            raise ValueError("leaf_index is an integer")
        data = bytes.fromhex(str(doc["leaf_data"])) if "leaf_data" in doc else None
        if data is not None:
            leaf = leaf_hash(data)
        else:
            leaf = bytes.fromhex(str(doc["leaf_hash"]))
            if len(leaf) != HASH_SIZE:
                raise ValueError("leaf_hash is 32 bytes of hex")
        subject_key = None
        if "subject_key" in doc:
            subject_key = bytes.fromhex(str(doc["subject_key"]))
            if len(subject_key) != HASH_SIZE:
                raise ValueError("subject_key is 32 bytes of hex")
        path = _hashes(doc["inclusion_path"])
        earlier, consistency = None, []
        if "earlier_head" in doc:
            earlier = SignedTreeHead.from_json(doc["earlier_head"])
            consistency = _hashes(doc.get("consistency_path", []))
    except (ValueError, KeyError, TypeError, UnicodeError, RecursionError):
        report.findings.append("bundle.malformed")
        return report
    report.tree_size, report.leaf_index = head.tree_size, index
    report.record = _record(data)
    if not isinstance(key, Ed25519PublicKey):
        report.findings.append("bundle.wrong_key")
        return report
    if not verify_head(head, key):
        report.findings.append("head.bad_signature")
    if not verify_inclusion(leaf, index, head.tree_size, path, head.root_hash):
        report.findings.append("inclusion.failed")
    if earlier is not None:
        if is_fork(earlier, head, key):
            report.findings.append("head.fork")
        elif earlier.tree_size > head.tree_size or not verify_extends(
            earlier, head, consistency, key
        ):
            report.findings.append("consistency.failed")
    if subject_key is not None and report.record is not None:
        rid, subject = report.record.get("request_id"), report.record.get("subject")
        if not isinstance(rid, str) or subject != subject_commitment(subject_key, rid).hex():
            report.findings.append("subject.mismatch")
    return report


def _record(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None
