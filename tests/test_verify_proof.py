"""`mynumber verify-proof`: an offline bundle verifies; every alteration is named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mynumber.cli import app
from mynumber.ledger.bundle import check_bundle
from mynumber.ledger.heads import sign_head
from mynumber.ledger.merkle import MerkleTree

KEY = Ed25519PrivateKey.generate()


def pem(key: Any) -> str:
    return str(
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def records(n: int) -> list[bytes]:
    return [json.dumps({"seq": i, "who": f"c{i % 5}"}).encode() for i in range(n)]


def bundle(n: int = 20, index: int = 7, earlier: int | None = 12) -> dict[str, Any]:
    data = records(n)
    tree = MerkleTree()
    for d in data:
        tree.append(d)
    doc: dict[str, Any] = {
        "log_public_key": pem(KEY),
        "tree_head": sign_head(KEY, n, tree.root(), 2_000).to_json(),
        "leaf_index": index,
        "leaf_data": data[index].hex(),
        "inclusion_path": [h.hex() for h in tree.inclusion_proof(index)],
    }
    if earlier is not None:
        doc["earlier_head"] = sign_head(KEY, earlier, tree.root(earlier), 1_000).to_json()
        doc["consistency_path"] = [h.hex() for h in tree.consistency_proof(earlier)]
    return doc


def test_a_bundle_verifies_from_the_command_line(tmp_path: Path) -> None:
    f = tmp_path / "proof.json"
    f.write_text(json.dumps(bundle()))
    result = CliRunner().invoke(app, ["verify-proof", str(f)])
    assert result.exit_code == 0, result.output
    assert "record 7 of 20" in result.output


def _flip(hex_text: str) -> str:
    return ("1" if hex_text[0] == "0" else "0") + hex_text[1:]


@pytest.mark.parametrize(
    ("change", "finding"),
    [
        (lambda d: d.update(leaf_data=b"rewritten".hex()), "inclusion.failed"),
        (lambda d: d.update(leaf_index=8), "inclusion.failed"),
        (lambda d: d["inclusion_path"].__setitem__(0, _flip(d["inclusion_path"][0])), "inclusion.failed"),
        (lambda d: d["tree_head"].update(tree_size=21), "head.bad_signature"),
        (lambda d: d["tree_head"].update(root_hash=_flip(d["tree_head"]["root_hash"])), "head.bad_signature"),
        (lambda d: d.update(log_public_key=pem(Ed25519PrivateKey.generate())), "head.bad_signature"),
        (lambda d: d.update(log_public_key=pem(ec.generate_private_key(ec.SECP256R1()))), "bundle.wrong_key"),
        (lambda d: d["consistency_path"].pop(), "consistency.failed"),
        (lambda d: d.update(inclusion_path="nope"), "bundle.malformed"),
        (lambda d: d.pop("tree_head"), "bundle.malformed"),
    ],
)  # fmt: skip
def test_each_alteration_is_named(tmp_path: Path, change: Any, finding: str) -> None:
    doc = bundle()
    change(doc)
    assert finding in check_bundle(json.dumps(doc)).findings
    f = tmp_path / "proof.json"
    f.write_text(json.dumps(doc))
    result = CliRunner().invoke(app, ["verify-proof", str(f)])
    assert result.exit_code == 1
    assert finding in result.output


def test_a_fork_is_named() -> None:
    doc = bundle(earlier=None)
    other = MerkleTree()
    for d in records(19):
        other.append(d)
    other.append(b"a different last record")
    doc["earlier_head"] = sign_head(KEY, 20, other.root(), 1_500).to_json()
    doc["consistency_path"] = []
    assert check_bundle(json.dumps(doc)).findings == ["head.fork"]


@settings(max_examples=200, deadline=None)
@given(garbage=st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_garbage_is_malformed_never_a_crash(garbage: bytes | str) -> None:
    report = check_bundle(garbage)
    assert report.findings == ["bundle.malformed"]


def test_deep_nesting_is_malformed() -> None:
    assert check_bundle("[" * 200_000 + "]" * 200_000).findings == ["bundle.malformed"]
