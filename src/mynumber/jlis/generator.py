"""Individual-number generation (番号法 第8条): keyed format-preserving encryption of the resident
record code, so a number is unique, never reused and reveals nothing without the key.

FF1 (NIST SP 800-38G) over the eleven digits of the resident record code gives eleven digits; the
check digit of 総務省令第85号 makes twelve. FF1 is a permutation, so two resident codes never
meet at the same number; a number already taken (issued or retired, after a change of number)
is skipped by cycle-walking: encrypting the candidate again until it is free.
"""

from __future__ import annotations

from collections.abc import Callable

import fastfpe.ff1

from mynumber.numbers import individual_check_digit

__all__ = ["NumberGenerator"]

_DIGITS = "0123456789"
_MAX_WALK = 1000


class NumberGenerator:
    """Pure: `generate(code, generation, taken)` with the FF1 key it was built with."""

    def __init__(self, key: bytes) -> None:
        if len(key) not in (16, 24, 32):
            raise ValueError("FF1 takes an AES key of 16, 24 or 32 bytes")
        self._key_hex = key.hex()

    def _ff1(self, digits: str, generation: int) -> str:
        # The tweak separates the numbers of a person's successive generations (a changed number).
        result: str = fastfpe.ff1.encrypt(self._key_hex, f"{generation:08x}", _DIGITS, digits)
        return result

    def generate(self, resident_code: str, generation: int, taken: Callable[[str], bool]) -> str:
        """The `generation`-th number of `resident_code`, skipping every number `taken` says is used."""
        candidate = self._ff1(resident_code, generation)
        for _ in range(_MAX_WALK):
            number = candidate + individual_check_digit(candidate)
            if not taken(number):
                return number
            candidate = self._ff1(candidate, generation)
        raise RuntimeError("cycle-walk did not find a free number")  # needs ~10^11 numbers taken
