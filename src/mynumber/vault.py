"""Individual numbers at rest: AES-GCM ciphertext plus a keyed blind index for lookup (I5)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mynumber.keystore import Keystore

__all__ = ["NumberVault"]


class NumberVault:
    """Encrypts numbers for storage and derives their blind index; one per role, with its own keys."""

    def __init__(self, keystore: Keystore, role: str) -> None:
        self._aead = AESGCM(keystore.secret(f"{role}-number-enc"))
        self._index_key = keystore.secret(f"{role}-number-index")

    def index(self, number: str) -> bytes:
        """Keyed blind index: equal numbers give equal values, which reveal nothing without the key."""
        return hmac.new(self._index_key, number.encode(), hashlib.sha256).digest()[:16]

    def seal(self, number: str) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, number.encode(), b"individual-number")

    def open(self, sealed: bytes) -> str:
        return self._aead.decrypt(sealed[:12], sealed[12:], b"individual-number").decode()
