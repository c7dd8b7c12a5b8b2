"""RFC 9162 (Certificate Transparency 2.0) Merkle trees: hashing, proofs, verification. Pure.

- Leaf hash ``SHA-256(0x00 ‖ data)``, node hash ``SHA-256(0x01 ‖ left ‖ right)``, the empty
  tree's hash ``SHA-256("")`` (§2.1.1). A tree of n leaves splits at k, the largest power of two
  smaller than n: the left part is always a complete subtree.
- :class:`MerkleTree` keeps every complete subtree's hash by level (≈ 2n hashes for n leaves),
  so an append costs amortised two hashes, and the root, an inclusion proof (§2.1.3) or a
  consistency proof (§2.1.4) for any earlier tree size costs O(log n) node hashes to assemble
  from stored subtrees: the hash of a ragged right edge is recomputed from at most log n stored
  complete subtrees.
- :func:`verify_inclusion` and :func:`verify_consistency` are the RFC's verification
  algorithms (§2.1.3.2, §2.1.4.2): what a person or an auditor runs offline, needing only the
  proof, the sizes and the tree heads.

Checked against the Certificate Transparency reference vectors (tests/test_merkle.py) and, by
Hypothesis, against the RFC's recursive definitions for every shape of tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleTree",
    "leaf_hash",
    "node_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _pair(row: bytearray) -> bytes:
    """The node hash of the last two hashes of `row`."""
    return hashlib.sha256(b"\x01" + row[-2 * HASH_SIZE :]).digest()


def _split(n: int) -> int:
    """k: the largest power of two smaller than n (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An append-only tree of leaf hashes with every complete subtree's hash kept.

    Level h holds, packed 32 bytes each in one ``bytearray``, the hashes of the complete
    subtrees of 2**h leaves in order (10 M leaves: ≈ 640 MB rather than the ≈ 2 GB of one
    ``bytes`` object per hash). Not thread-safe: the ledger service serialises appends.
    """

    def __init__(self, leaf_hashes: Sequence[bytes] = ()) -> None:
        self._levels: list[bytearray] = [bytearray()]
        for h in leaf_hashes:
            self.append_hash(h)

    @property
    def size(self) -> int:
        return len(self._levels[0]) // HASH_SIZE

    def _node(self, level: int, i: int) -> bytes:
        row = self._levels[level]
        return bytes(row[i * HASH_SIZE : (i + 1) * HASH_SIZE])

    def append(self, data: bytes) -> int:
        """Append a leaf for `data`; its index."""
        return self.append_hash(leaf_hash(data))

    def append_hash(self, h: bytes) -> int:
        """Append a leaf given its leaf hash; its index."""
        if len(h) != HASH_SIZE:
            raise ValueError("a leaf hash is 32 bytes")
        levels = self._levels
        index = self.size
        levels[0] += h
        level = 0
        # Each time a level's count becomes even, a complete subtree one level up is closed.
        while (len(levels[level]) // HASH_SIZE) % 2 == 0:
            row = levels[level]
            if level + 1 == len(levels):
                levels.append(bytearray())
            levels[level + 1] += _pair(row)
            level += 1
        return index

    def truncate(self, size: int) -> None:
        """Forget every leaf from `size` on (to undo appends whose transaction rolled back)."""
        if not 0 <= size <= self.size:
            raise ValueError("cannot truncate to a size the tree does not have")
        for level, row in enumerate(self._levels):
            del row[(size >> level) * HASH_SIZE :]

    def leaf(self, index: int) -> bytes:
        if not 0 <= index < self.size:
            raise IndexError(index)
        return self._node(0, index)

    def _hash(self, start: int, count: int) -> bytes:
        """MTH of the `count` leaves from `start` (a range the RFC's recursion produces: its
        complete left parts are aligned, so they are stored)."""
        if count & (count - 1) == 0 and start % count == 0:
            return self._node(count.bit_length() - 1, start // count)
        k = _split(count)
        return node_hash(self._hash(start, k), self._hash(start + k, count - k))

    def root(self, size: int | None = None) -> bytes:
        """The tree head hash of the first `size` leaves (default: all)."""
        size = self._size(size)
        return EMPTY_ROOT if size == 0 else self._hash(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The audit path of leaf `index` in the tree of the first `size` leaves (§2.1.3.1)."""
        size = self._size(size)
        if not 0 <= index < size:
            raise ValueError("the leaf is not in a tree of that size")
        path: list[bytes] = []
        start, n, m = 0, size, index
        while n > 1:
            k = _split(n)
            if m < k:
                path.append(self._hash(start + k, n - k))
                n = k
            else:
                path.append(self._hash(start, k))
                start, n, m = start + k, n - k, m - k
        path.reverse()  # the RFC lists the path from the leaf up
        return path

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        """The proof that the tree of `first` leaves is a prefix of the tree of `second`
        (§2.1.4.1); empty when first is 0 or equals second."""
        second = self._size(second)
        if not 0 <= first <= second:
            raise ValueError("a consistency proof needs 0 ≤ first ≤ second ≤ size")
        if first == 0 or first == second:
            return []
        proof: list[bytes] = []
        start, n, m, whole = 0, second, first, True
        while m != n:
            k = _split(n)
            if m <= k:
                proof.append(self._hash(start + k, n - k))
                n = k
            else:
                proof.append(self._hash(start, k))
                start, n, m, whole = start + k, n - k, m - k, False
        if not whole:
            proof.append(self._hash(start, m))
        proof.reverse()
        return proof

    def _size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise ValueError("no tree of that size has been published")
        return size


def _shift_while_even(fn: int, sn: int) -> tuple[int, int]:
    while fn & 1 == 0 and fn != 0:
        fn, sn = fn >> 1, sn >> 1
    return fn, sn


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether `proof` shows the leaf hash `leaf` at `index` in the tree of `size` leaves
    whose head is `root` (RFC 9162 §2.1.3.2)."""
    if not 0 <= index < size or any(len(p) != HASH_SIZE for p in proof):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                fn, sn = _shift_while_even(fn, sn)
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether `proof` shows the tree of `first` leaves (head `first_root`) to be a prefix of
    the tree of `second` leaves (head `second_root`) (RFC 9162 §2.1.4.2)."""
    if not 0 <= first <= second or any(len(p) != HASH_SIZE for p in proof):
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof and first_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                fn, sn = _shift_while_even(fn, sn)
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == first_root and sr == second_root
