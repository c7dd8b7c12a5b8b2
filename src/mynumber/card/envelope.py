"""The AES-GCM envelope a chip is kept in at rest.

Layout: ``MAGIC (8) ‖ nonce (12) ‖ AES-256-GCM ciphertext+tag``. The key is derived per chip
with HKDF-SHA256 from one card-role secret of the :class:`~mynumber.keystore.Keystore`
(``card-chip-store``) with the chip id in `info`, and the magic and chip id are also the
associated data: a file renamed to another chip's id, truncated, or altered in any bit fails
authentication and is refused as `card.file_tampered`. One keystore secret serves every chip,
so a deployment with millions of cards does not hold millions of keystore entries.
"""

from __future__ import annotations

import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mynumber.card.errors import FileTamperedError
from mynumber.keystore import Keystore

__all__ = ["KEYSTORE_NAME", "MAGIC", "open_sealed", "seal"]

MAGIC = b"MNCHIP\x00\x01"
KEYSTORE_NAME = "card-chip-store"


def _aead(keystore: Keystore, chip_id: str) -> AESGCM:
    info = b"mynumber card chip v1 " + chip_id.encode()
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
        keystore.secret(KEYSTORE_NAME)
    )
    return AESGCM(key)


def seal(keystore: Keystore, chip_id: str, plaintext: bytes) -> bytes:
    nonce = secrets.token_bytes(12)
    aad = MAGIC + chip_id.encode()
    return MAGIC + nonce + _aead(keystore, chip_id).encrypt(nonce, plaintext, aad)


def open_sealed(keystore: Keystore, chip_id: str, blob: bytes) -> bytes:
    """The plaintext of `blob`, or :class:`FileTamperedError` if it does not authenticate."""
    if len(blob) < len(MAGIC) + 12 + 16 or not blob.startswith(MAGIC):
        raise FileTamperedError()
    nonce = blob[len(MAGIC) : len(MAGIC) + 12]
    try:
        return _aead(keystore, chip_id).decrypt(
            nonce, blob[len(MAGIC) + 12 :], MAGIC + chip_id.encode()
        )
    except InvalidTag:
        raise FileTamperedError() from None
