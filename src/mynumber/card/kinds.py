"""The two JPKI key pairs on a card and the PIN that guards each (facts §3, §4)."""

from __future__ import annotations

import enum

__all__ = ["MAX_TRIES", "KeyKind", "key_label", "pin_label"]


class KeyKind(enum.StrEnum):
    """Which of the chip's two key pairs (and so which PIN and which certificate)."""

    SIGNATURE = "signature"
    """署名用電子証明書: signs documents (e-Tax, contracts, eKYC); 6–16 letters and digits."""
    AUTHENTICATION = "authentication"
    """利用者証明用電子証明書: proves the holder is present (portal, kiosks, clinics); 4 digits."""


MAX_TRIES: dict[KeyKind, int] = {KeyKind.SIGNATURE: 5, KeyKind.AUTHENTICATION: 3}
"""Consecutive wrong PINs after which the PIN locks (I7)."""

_KEY_LABELS = {
    KeyKind.SIGNATURE: ("signature certificate", "署名用電子証明書"),
    KeyKind.AUTHENTICATION: ("user-authentication certificate", "利用者証明用電子証明書"),
}
_PIN_LABELS = {
    KeyKind.SIGNATURE: ("signature PIN", "署名用電子証明書の暗証番号"),
    KeyKind.AUTHENTICATION: ("user-authentication PIN", "利用者証明用電子証明書の暗証番号"),
}


def key_label(kind: KeyKind) -> tuple[str, str]:
    """(English, Japanese) name of the key / certificate of `kind`."""
    return _KEY_LABELS[kind]


def pin_label(kind: KeyKind) -> tuple[str, str]:
    """(English, Japanese) name of the PIN of `kind`."""
    return _PIN_LABELS[kind]
