"""RFC 9162 Merkle trees: the Certificate Transparency reference vectors, the RFC's recursive
definitions for every shape of tree (Hypothesis), and proofs that fail once anything is changed."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mynumber.ledger.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

# Reference data of the Certificate Transparency implementations (RFC 6962 / 9162 trees).
CT_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
CT_CONSISTENCY = [
    (1, 8, [h for _, _, path in CT_INCLUSION[:1] for h in path]),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        8,  # not one of the published CT cases: worked out from the tree above
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


def ct_tree() -> MerkleTree:
    tree = MerkleTree()
    for data in CT_LEAVES:
        tree.append(data)
    return tree


def test_reference_roots() -> None:
    tree = ct_tree()
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert [tree.root(n).hex() for n in range(9)] == CT_ROOTS


@pytest.mark.parametrize(("index", "size", "path"), CT_INCLUSION)
def test_reference_inclusion_proofs(index: int, size: int, path: list[str]) -> None:
    tree = ct_tree()
    proof = tree.inclusion_proof(index, size)
    assert [p.hex() for p in proof] == path
    assert verify_inclusion(tree.leaf(index), index, size, proof, tree.root(size))


@pytest.mark.parametrize(("first", "second", "path"), CT_CONSISTENCY)
def test_reference_consistency_proofs(first: int, second: int, path: list[str]) -> None:
    tree = ct_tree()
    proof = tree.consistency_proof(first, second)
    assert [p.hex() for p in proof] == path
    assert verify_consistency(first, second, tree.root(first), tree.root(second), proof)


# -- the RFC's recursive definitions, written out naively, as the oracle ------------------


def mth(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*subproof(m, leaves[:k], whole), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


sizes = st.integers(min_value=1, max_value=70)


@settings(max_examples=150, deadline=None)
@given(size=sizes, data=st.data())
def test_proofs_agree_with_the_rfc_and_verify(size: int, data: st.DataObject) -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    tree = MerkleTree(leaves)
    n = data.draw(st.integers(min_value=1, max_value=size), label="tree size")
    index = data.draw(st.integers(min_value=0, max_value=n - 1), label="leaf")
    first = data.draw(st.integers(min_value=1, max_value=n), label="earlier size")
    assert tree.root(n) == mth(leaves[:n])
    proof = tree.inclusion_proof(index, n)
    assert proof == path(index, leaves[:n])
    assert verify_inclusion(leaves[index], index, n, proof, tree.root(n))
    consistency = tree.consistency_proof(first, n)
    assert consistency == ([] if first == n else subproof(first, leaves[:n], True))
    assert verify_consistency(first, n, tree.root(first), tree.root(n), consistency)


@settings(max_examples=150, deadline=None)
@given(size=st.integers(min_value=2, max_value=70), data=st.data())
def test_any_change_breaks_a_proof(size: int, data: st.DataObject) -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    tree = MerkleTree(leaves)
    root = tree.root()
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = tree.inclusion_proof(index)
    other = leaf_hash(b"a record that was never appended")
    assert not verify_inclusion(other, index, size, proof, root)  # a rewritten record
    assert not verify_inclusion(leaves[index], index, size, proof, other)  # another head
    if proof:
        i = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        bent = list(proof)
        bent[i] = bytes([bent[i][0] ^ 1]) + bent[i][1:]
        assert not verify_inclusion(leaves[index], index, size, bent, root)
        assert not verify_inclusion(leaves[index], index, size, proof[:-1], root)
    assert not verify_inclusion(leaves[index], index, size, [*proof, other], root)
    wrong = data.draw(st.integers(min_value=0, max_value=size - 1).filter(lambda j: j != index))
    assert not verify_inclusion(leaves[index], wrong, size, proof, root) or (
        leaves[wrong] == leaves[index]
    )
    # A fork: another tree of the same size, or a history rewritten below an earlier head.
    first = data.draw(st.integers(min_value=1, max_value=size - 1))
    consistency = tree.consistency_proof(first)
    forked = MerkleTree([*leaves[: first - 1], other, *leaves[first:]])
    assert not verify_consistency(first, size, forked.root(first), root, consistency)
    assert not verify_consistency(first, size, tree.root(first), forked.root(), consistency)
    assert not verify_consistency(first, size, tree.root(first), root, consistency[:-1])


def test_bad_arguments_are_refused() -> None:
    tree = ct_tree()
    with pytest.raises(ValueError):
        tree.inclusion_proof(8, 8)
    with pytest.raises(ValueError):
        tree.root(9)
    with pytest.raises(ValueError):
        tree.consistency_proof(5, 4)
    with pytest.raises(ValueError):
        tree.append_hash(b"short")
    assert tree.consistency_proof(0, 8) == [] and tree.consistency_proof(8, 8) == []
    assert verify_consistency(0, 8, EMPTY_ROOT, tree.root(), [])
    assert not verify_consistency(3, 2, tree.root(3), tree.root(2), [])
    assert not verify_inclusion(tree.leaf(0), 0, 0, [], EMPTY_ROOT)
    assert not verify_inclusion(tree.leaf(0), 0, 8, [b"x"], tree.root())
