"""Chips at rest: one AES-GCM-sealed file per chip under a directory (the card's own storage).

A chip added to or loaded from a :class:`ChipStore` is bound to it: every change — each PIN try,
before its result is known — is written before the operation answers, so wrong tries and
lockouts survive a crash or restart. Files are written atomically (a temporary file in the same
directory, fsync, :func:`os.replace`, fsync of the directory) with mode 0600 in a 0700
directory.

Limits (for the threat model): the envelope stops reading and altering a file,
not replacing it with an *older* copy of itself, which would restore spent PIN tries; whoever
can write the directory can do that. A real card keeps its counter in tamper-resistant memory;
production keeps chips on cards or behind an HSM. One process at a time may own a chip file
(two live objects for one chip would each keep their own counter).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from mynumber.card.chip import Chip, check_chip_id
from mynumber.card.errors import CardExistsError, CardNotFoundError
from mynumber.clock import Clock
from mynumber.keystore import Keystore

__all__ = ["ChipStore"]

_SUFFIX = ".chip"


class ChipStore:
    """Sealed chip files in `directory`, keyed by the card role's secret in `keystore`."""

    def __init__(self, directory: Path, keystore: Keystore) -> None:
        self._dir = directory
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._keystore = keystore

    def path(self, chip_id: str) -> Path:
        return self._dir / (check_chip_id(chip_id) + _SUFFIX)

    def exists(self, chip_id: str) -> bool:
        return self.path(chip_id).exists()

    def add(self, chip: Chip) -> None:
        """Store a new chip and bind it; `card.exists` if its id is taken (never overwritten)."""
        tmp = self._write_temp(chip)
        try:
            os.link(tmp, self.path(chip.chip_id))
        except FileExistsError:
            raise CardExistsError() from None
        finally:
            tmp.unlink()
        self._sync_dir()
        chip.set_persistence(self.save)

    def save(self, chip: Chip) -> None:
        """Write `chip` over its file and bind it to this store."""
        tmp = self._write_temp(chip)
        try:
            os.replace(tmp, self.path(chip.chip_id))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._sync_dir()
        chip.set_persistence(self.save)

    def load(self, chip_id: str, clock: Clock) -> Chip:
        """The chip stored as `chip_id`, bound to this store (`card.not_found`,
        `card.file_tampered`)."""
        try:
            blob = self.path(chip_id).read_bytes()
        except FileNotFoundError:
            raise CardNotFoundError() from None
        chip = Chip.unseal(blob, chip_id=chip_id, keystore=self._keystore, clock=clock)
        chip.set_persistence(self.save)
        return chip

    def chip_ids(self) -> list[str]:
        """The ids of the chips stored here."""
        return sorted(f.name[: -len(_SUFFIX)] for f in self._dir.glob("*" + _SUFFIX))

    def remove(self, chip_id: str) -> None:
        """Delete the chip file (a chip that was never handed over); quiet if there is none."""
        self.path(chip_id).unlink(missing_ok=True)
        self._sync_dir()

    def _write_temp(self, chip: Chip) -> Path:
        blob = chip.seal(self._keystore)
        tmp = self._dir / f".{chip.chip_id}.{secrets.token_hex(8)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb", closefd=False) as fh:
                fh.write(blob)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        return tmp

    def _sync_dir(self) -> None:
        fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
