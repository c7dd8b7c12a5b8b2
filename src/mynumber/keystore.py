"""A keystore interface; the default keeps each key in a wrapped file under the data directory.

Keys never leave the process through logs or errors. A production deployment plugs in a PKCS#11
(SoftHSM2 / HSM) keystore behind the same interface.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["FileKeystore", "Keystore", "file_lock"]


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on `path` (created 0600) across processes: server workers
    starting together on an empty data directory create a key once and share it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class Keystore(Protocol):
    def secret(self, name: str, size: int = 32) -> bytes:
        """The secret key called `name`, created on first use."""
        ...


class FileKeystore:
    """Secret keys as files, each AES-GCM-wrapped under a master key.

    The master key comes from MYNUMBER_MASTER_KEY (hex) where set; otherwise it is generated into
    `keys/master.key`, which protects nothing against someone who can read the directory — say so
    in the threat model, and set the variable (or use an HSM) in production.
    """

    def __init__(self, directory: Path, master_key_hex: str | None = None) -> None:
        self._dir = directory
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._cache: dict[str, bytes] = {}
        if master_key_hex:
            master = bytes.fromhex(master_key_hex)
        else:
            master = self._read_or_create(self._dir / "master.key", lambda: secrets.token_bytes(32))
        if len(master) != 32:
            raise ValueError("the master key must be 32 bytes (64 hex digits)")
        self._aead = AESGCM(master)

    @staticmethod
    def _read_or_create(path: Path, make: Callable[[], bytes]) -> bytes:
        if path.exists():
            return path.read_bytes()
        data = make()
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            # link() fails if another process created the key first: theirs wins, everywhere.
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        return path.read_bytes()

    def secret(self, name: str, size: int = 32) -> bytes:
        if name in self._cache:
            return self._cache[name]
        if not name.replace("-", "").replace("_", "").isalnum():
            raise ValueError("key names are letters, digits, - and _")
        aad = name.encode()

        def wrap() -> bytes:
            nonce = secrets.token_bytes(12)
            return nonce + self._aead.encrypt(nonce, secrets.token_bytes(size), aad)

        blob = self._read_or_create(self._dir / f"{name}.key", wrap)
        key = self._aead.decrypt(blob[:12], blob[12:], aad)
        self._cache[name] = key
        return key
