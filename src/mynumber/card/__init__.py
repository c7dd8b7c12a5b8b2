"""The card role: the My Number card's IC chip, or its smartphone form (I7 "keys stay on the card").

- :mod:`mynumber.card.chip` — :class:`Chip`: two RSA-2048 JPKI key pairs generated inside and
  never exported, PIN-guarded signing and authentication, certificate requests and installation,
  card-face data;
- :mod:`mynumber.card.pins` — PIN formats, guessable-PIN rules, salted scrypt digests, retry
  counters, and the municipality counter's :class:`CounterAuthorisation` for a reset;
- :mod:`mynumber.card.store` — :class:`ChipStore`: one AES-GCM-sealed file per chip;
- :mod:`mynumber.card.errors` — :class:`CardError` and its subclasses (codes ``card.*``).

Plain Python, no network I/O.
"""

from __future__ import annotations

from mynumber.card.chip import KEY_BITS, NONCE_BYTES, SIGNATURE_SCHEME, CardFace, Chip
from mynumber.card.errors import (
    AlreadyCertifiedError,
    CardError,
    CardExistsError,
    CardNotFoundError,
    CertificateMismatchError,
    CertificateValidityError,
    ChipIdError,
    CsrSubjectError,
    FileTamperedError,
    NoCertificateError,
    NoFaceDataError,
    NonceError,
    PinFormatError,
    PinGuessableError,
    PinLockedError,
    PinWrongError,
    UnlockUnauthorisedError,
)
from mynumber.card.kinds import MAX_TRIES, KeyKind
from mynumber.card.pins import CounterAuthorisation, PinKdf
from mynumber.card.store import ChipStore

__all__ = [
    "KEY_BITS",
    "MAX_TRIES",
    "NONCE_BYTES",
    "SIGNATURE_SCHEME",
    "AlreadyCertifiedError",
    "CardError",
    "CardExistsError",
    "CardFace",
    "CardNotFoundError",
    "CertificateMismatchError",
    "CertificateValidityError",
    "Chip",
    "ChipIdError",
    "ChipStore",
    "CounterAuthorisation",
    "CsrSubjectError",
    "FileTamperedError",
    "KeyKind",
    "NoCertificateError",
    "NoFaceDataError",
    "NonceError",
    "PinFormatError",
    "PinGuessableError",
    "PinKdf",
    "PinLockedError",
    "PinWrongError",
    "UnlockUnauthorisedError",
]
