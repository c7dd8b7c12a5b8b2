"""Signed tree heads: signature, log id, JSON round trip, fork evidence, extension proofs."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from mynumber.ledger.heads import (
    SignedTreeHead,
    is_fork,
    log_id,
    sign_head,
    verify_extends,
    verify_head,
)
from mynumber.ledger.merkle import MerkleTree

KEY = Ed25519PrivateKey.generate()
PUB = KEY.public_key()
OTHER = Ed25519PrivateKey.generate()


def tree(n: int, tamper: int | None = None) -> MerkleTree:
    t = MerkleTree()
    for i in range(n):
        t.append(b"record %d%s" % (i, b"!" if i == tamper else b""))
    return t


def test_a_head_verifies_and_any_change_does_not() -> None:
    t = tree(10)
    head = sign_head(KEY, 10, t.root(), 1_764_000_000_000)
    assert verify_head(head, PUB)
    assert head.log_id == log_id(PUB)
    assert SignedTreeHead.from_json(head.to_json()) == head
    for changed in (
        SignedTreeHead(head.log_id, head.timestamp_ms + 1, 10, head.root_hash, head.signature),
        SignedTreeHead(head.log_id, head.timestamp_ms, 11, head.root_hash, head.signature),
        SignedTreeHead(head.log_id, head.timestamp_ms, 10, tree(10, 3).root(), head.signature),
        SignedTreeHead(head.log_id, head.timestamp_ms, 10, head.root_hash, bytes(64)),
    ):
        assert not verify_head(changed, PUB)
    assert not verify_head(head, OTHER.public_key())  # another log's key
    forged = sign_head(OTHER, 10, t.root(), head.timestamp_ms)
    assert not verify_head(forged, PUB)


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"log_id": "00", "timestamp_ms": 1, "tree_size": 1, "root_hash": "00", "signature": "00"},
        {"log_id": 1, "timestamp_ms": 1, "tree_size": 1, "root_hash": "", "signature": ""},
        {"log_id": "zz", "timestamp_ms": -1, "tree_size": 1, "root_hash": "", "signature": ""},
    ],
)
def test_what_is_not_a_head_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        SignedTreeHead.from_json(bad)


@settings(max_examples=60, deadline=None)
@given(first=st.integers(1, 40), grow=st.integers(0, 40), tamper=st.integers(0, 39))
def test_forks_are_detected_and_honest_growth_is_not(first: int, grow: int, tamper: int) -> None:
    second = first + grow
    honest = tree(second)
    early = sign_head(KEY, first, honest.root(first), 1000)
    late = sign_head(KEY, second, honest.root(), 2000)
    proof = honest.consistency_proof(first, second)
    assert verify_extends(early, late, proof, PUB)
    assert not is_fork(early, sign_head(KEY, first, honest.root(first), 1500), PUB)
    # The log rewrote a record below the earlier head: a second history.
    if tamper < first:
        rewritten = tree(second, tamper)
        other_early = sign_head(KEY, first, rewritten.root(first), 1200)
        assert is_fork(early, other_early, PUB)
        other_late = sign_head(KEY, second, rewritten.root(), 2000)
        assert not verify_extends(early, other_late, rewritten.consistency_proof(first), PUB)
        assert not verify_extends(early, other_late, proof, PUB)
