"""Signed tree heads (RFC 9162 §4.10) and what a holder of two of them can conclude. Pure.

A tree head says "after `tree_size` records the tree's hash was `root_hash`", at `timestamp`
(milliseconds since the epoch, UTC), signed by the log. What is signed is RFC 9162's
``TreeHeadDataToSign`` in TLS presentation language::

    uint64 timestamp; uint64 tree_size; opaque root_hash<32..2^8-1>;
    Extension sth_extensions<0..2^16-1>;   (empty)

The log signs with Ed25519 (deterministic, small, fast to verify offline); its log id is the
SHA-256 of its public key's DER SubjectPublicKeyInfo, as in RFC 6962.

- :func:`verify_head` checks a head's signature against the log's public key.
- :func:`is_fork` is the evidence of a split view: two validly signed heads of the same size with
  different roots (a log can never explain that away); heads of different sizes are checked with
  a consistency proof (:func:`mynumber.ledger.merkle.verify_consistency`), and
  :func:`verify_extends` combines both checks.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mynumber.ledger.merkle import HASH_SIZE, verify_consistency

__all__ = ["SignedTreeHead", "is_fork", "log_id", "sign_head", "verify_extends", "verify_head"]


def _to_sign(timestamp_ms: int, tree_size: int, root_hash: bytes) -> bytes:
    if len(root_hash) != HASH_SIZE:
        raise ValueError("a root hash is 32 bytes")
    return struct.pack(">QQB", timestamp_ms, tree_size, len(root_hash)) + root_hash + b"\0\0"


def log_id(public_key: Ed25519PublicKey) -> bytes:
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


@dataclass(frozen=True, slots=True)
class SignedTreeHead:
    log_id: bytes
    timestamp_ms: int
    tree_size: int
    root_hash: bytes
    signature: bytes

    def signed_data(self) -> bytes:
        return _to_sign(self.timestamp_ms, self.tree_size, self.root_hash)

    def to_json(self) -> dict[str, object]:
        return {
            "log_id": self.log_id.hex(),
            "timestamp_ms": self.timestamp_ms,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "signature": self.signature.hex(),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> SignedTreeHead:
        """ValueError (or KeyError/TypeError) for anything that is not a tree head."""
        ts, size = data["timestamp_ms"], data["tree_size"]
        if not isinstance(ts, int) or not isinstance(size, int) or ts < 0 or size < 0:
            raise ValueError("timestamp_ms and tree_size are non-negative integers")
        fields = [data[k] for k in ("log_id", "root_hash", "signature")]
        if not all(isinstance(f, str) for f in fields):
            raise ValueError("log_id, root_hash and signature are hex strings")
        lid, root, sig = (bytes.fromhex(str(f)) for f in fields)
        if len(lid) != HASH_SIZE or len(root) != HASH_SIZE or len(sig) != 64:
            raise ValueError("wrong lengths")
        return cls(lid, ts, size, root, sig)


def sign_head(
    key: Ed25519PrivateKey, tree_size: int, root_hash: bytes, timestamp_ms: int
) -> SignedTreeHead:
    signature = key.sign(_to_sign(timestamp_ms, tree_size, root_hash))
    return SignedTreeHead(log_id(key.public_key()), timestamp_ms, tree_size, root_hash, signature)


def verify_head(head: SignedTreeHead, public_key: Ed25519PublicKey) -> bool:
    """Whether `head` was signed by the log whose key is `public_key`."""
    if head.log_id != log_id(public_key):
        return False
    try:
        public_key.verify(head.signature, head.signed_data())
    except (InvalidSignature, ValueError):
        return False
    return True


def is_fork(a: SignedTreeHead, b: SignedTreeHead, public_key: Ed25519PublicKey) -> bool:
    """Proof that the log showed two histories: both heads are its own, of one size, and
    their roots differ."""
    return (
        a.tree_size == b.tree_size
        and a.root_hash != b.root_hash
        and verify_head(a, public_key)
        and verify_head(b, public_key)
    )


def verify_extends(
    earlier: SignedTreeHead,
    later: SignedTreeHead,
    proof: Sequence[bytes],
    public_key: Ed25519PublicKey,
) -> bool:
    """Whether `later` is a signed head of a tree that only grew from `earlier`'s: both heads
    are the log's and the consistency proof holds (for one size: the same root)."""
    return (
        verify_head(earlier, public_key)
        and verify_head(later, public_key)
        and verify_consistency(
            earlier.tree_size, later.tree_size, earlier.root_hash, later.root_hash, proof
        )
    )
