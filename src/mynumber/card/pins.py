"""PIN rules of the card's JPKI application, as pure functions and values (no I/O).

Format (facts §3, I7):

- user-authentication PIN (利用者証明用): exactly 4 ASCII digits; locks after 3 consecutive
  wrong tries;
- signature PIN (署名用): 6–16 characters, capital letters A–Z and digits 0–9 only, at least
  one of each; locks after 5.

Nothing is folded: the PIN is what the terminal sends. A UI that lets people type full-width
digits or small letters folds them before calling the chip.

A PIN that others could guess is refused when it is *set* (at issuance, change or counter
reset), never when it is *tried*. Given the holder's birth date, e.g. 1984-05-30 (昭和59年):

- birth-date forms — YYYYMMDD, YYMMDD, YYYY, YYMM, MMDD, DDMM, DDMMYY, MMDDYY, DDMMYYYY,
  MMDDYYYY and the 和暦 forms EEMMDD, EEMM (era year, two digits): 19840530, 840530, 1984,
  8405, 0530, 3005, 300584, 053084, 30051984, 05301984, 590530, 5905;
- repetition — one digit four times (0000, 1111) or a pair twice (1212, 1122);
- sequences — consecutive digits up or down, wrapping at 9/0 (0123, 1234, 7890, 9876, 3210);
- common 4-digit choices: keypad lines 2580, 0852, 1379, 1397, 7931, 9731, 1357, 2468,
  7531, 8642, and 1004;
- for the signature PIN (which must hold a letter, so no pure digit form can occur), split it
  into its letters and its digits (in order). It is guessable when its letters are *trivial* —
  at most one letter, one letter repeated, or an alphabet run (ABC, ZYX) — and its digits are
  a birth-date form (S590530, AB1984), or trivial too (ABC123, A1B2C3, A00000, ABCDE1); or when
  its letters are a common word (PASSWORD, QWERTY, ADMIN, MYNUMBER … see ``COMMON_WORDS``)
  and its digits are trivial (PASSWORD1, MYNUMBER123); or when it is on ``COMMON_SIGNATURE``
  (keyboard walks and leet spellings: 1QAZ2WSX, PASSW0RD …).

PINs are never stored: a PIN becomes a salted scrypt digest (:class:`PinRecord`), compared with
:func:`hmac.compare_digest`. The digest is defence in depth only — 10,000 four-digit PINs fall to
any KDF — the protection is the retry counter and the AES-GCM envelope the chip file is kept in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import itertools
import secrets
from dataclasses import dataclass, field

from mynumber.card.errors import PinFormatError, PinGuessableError, UnlockUnauthorisedError
from mynumber.card.kinds import MAX_TRIES, KeyKind
from mynumber.dates import era_of
from mynumber.errors import ValidationError
from mynumber.numbers import parse_municipality

__all__ = [
    "AUTHORISATION_MAX_AGE",
    "COMMON_SIGNATURE",
    "COMMON_WORDS",
    "IDENTITY_CHECKS",
    "CounterAuthorisation",
    "PinKdf",
    "PinRecord",
    "birth_date_forms",
    "check_counter_authorisation",
    "check_new_pin",
    "check_pin_format",
    "guessable_reason",
    "is_well_formed",
]

_DIGITS = frozenset("0123456789")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LETTERS = frozenset(_ALPHABET)

COMMON_AUTH = frozenset(
    {"2580", "0852", "1379", "1397", "7931", "9731", "1357", "2468", "7531", "8642", "1004"}
)
COMMON_WORDS = frozenset(
    {
        "PASSWORD", "PASSWD", "PASS", "PW", "QWERTY", "ASDF", "ZXCV", "ADMIN", "ROOT", "USER",
        "LOGIN", "LETMEIN", "WELCOME", "SECRET", "ILOVEYOU", "TEST", "MYNUMBER", "MYNA", "PIN",
        "JPKI", "JAPAN", "NIPPON", "TOKYO",
    }
)  # fmt: skip
COMMON_SIGNATURE = frozenset(
    {
        "PASSW0RD", "P4SSW0RD", "P4SSWORD", "1QAZ2WSX", "ZAQ12WSX", "1Q2W3E4R", "Q1W2E3R4",
        "1Q2W3E", "Q1W2E3", "1Q2W3E4R5T", "QWE123", "ASD123", "ZXC123", "QAZ123", "MYNA1234",
    }
)  # fmt: skip


# --- format ---------------------------------------------------------------------------------


def is_well_formed(kind: KeyKind, pin: str) -> bool:
    """Whether `pin` has the format of a `kind` PIN (see the module docstring)."""
    if kind is KeyKind.AUTHENTICATION:
        return len(pin) == 4 and all(c in _DIGITS for c in pin)
    if not 6 <= len(pin) <= 16:
        return False
    has_letter = has_digit = False
    for c in pin:
        if c in _LETTERS:
            has_letter = True
        elif c in _DIGITS:
            has_digit = True
        else:
            return False
    return has_letter and has_digit


def check_pin_format(kind: KeyKind, pin: object) -> str:
    """`pin` if it is a well-formed `kind` PIN, else :class:`PinFormatError` (`card.pin_format`)."""
    if not isinstance(pin, str) or not is_well_formed(kind, pin):
        raise PinFormatError(kind)
    return pin


# --- guessable PINs -------------------------------------------------------------------------


def birth_date_forms(birth_date: dt.date) -> frozenset[str]:
    """The digit strings a birth date is commonly written as (Western and 和暦)."""
    yyyy, mm, dd = f"{birth_date.year:04d}", f"{birth_date.month:02d}", f"{birth_date.day:02d}"
    yy = yyyy[2:]
    forms = {
        yyyy + mm + dd,
        yy + mm + dd,
        yyyy,
        yy + mm,
        mm + dd,
        dd + mm,
        dd + mm + yy,
        mm + dd + yy,
        dd + mm + yyyy,
        mm + dd + yyyy,
    }
    era = era_of(birth_date)
    if era is not None:
        ee = f"{birth_date.year - era.start.year + 1:02d}"
        forms |= {ee + mm + dd, ee + mm}
    return frozenset(forms)


def _is_run(text: str, alphabet: str) -> bool:
    """Each character is the next (or each the previous) one in `alphabet`, wrapping around."""
    if len(text) < 2:
        return False
    pos = [alphabet.index(c) for c in text]
    steps = {(b - a) % len(alphabet) for a, b in itertools.pairwise(pos)}
    return steps in ({1}, {len(alphabet) - 1})


def _trivial(text: str, alphabet: str) -> bool:
    return len(text) <= 1 or len(set(text)) == 1 or _is_run(text, alphabet)


def guessable_reason(kind: KeyKind, pin: str, birth_date: dt.date) -> str | None:
    """Why a well-formed `pin` is too easy to guess ("birth_date", "repeated", "sequence",
    "common"), or None if it is not."""
    forms = birth_date_forms(birth_date)
    if kind is KeyKind.AUTHENTICATION:
        if pin in forms:
            return "birth_date"
        if len(set(pin)) == 1 or pin[:2] == pin[2:] or (pin[0] == pin[1] and pin[2] == pin[3]):
            return "repeated"
        if _is_run(pin, "0123456789"):
            return "sequence"
        return "common" if pin in COMMON_AUTH else None
    if pin in COMMON_SIGNATURE:
        return "common"
    letters = "".join(c for c in pin if c in _LETTERS)
    digits = "".join(c for c in pin if c in _DIGITS)
    trivial_digits = _trivial(digits, "0123456789")
    if letters in COMMON_WORDS and trivial_digits:
        return "common"
    if _trivial(letters, _ALPHABET):
        if digits in forms:
            return "birth_date"
        if trivial_digits:
            runs = _is_run(letters, _ALPHABET) or _is_run(digits, "0123456789")
            return "sequence" if runs else "repeated"
    return None


def check_new_pin(kind: KeyKind, pin: object, birth_date: dt.date) -> str:
    """`pin` if it may be set as the `kind` PIN: well-formed (`card.pin_format`) and not
    guessable (`card.pin_guessable`)."""
    checked = check_pin_format(kind, pin)
    reason = guessable_reason(kind, checked, birth_date)
    if reason is not None:
        raise PinGuessableError(kind, reason)
    return checked


# --- stored PINs and retry counters ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PinKdf:
    """scrypt cost, stored with each PIN digest so it can be raised later without a migration.

    The default (n=2**14, r=8, p=1: ~40 ms, 16 MiB) is the interactive-login setting of
    RFC 7914. Tests may lower `n`; a digest always verifies under the cost it was made with.
    """

    n: int = 2**14
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        if self.n < 2 or self.n & (self.n - 1) or self.r < 1 or self.p < 1:
            raise ValueError("scrypt needs n a power of two >= 2, r >= 1 and p >= 1")

    def derive(self, pin: str, salt: bytes) -> bytes:
        return hashlib.scrypt(
            pin.encode(), salt=salt, n=self.n, r=self.r, p=self.p, maxmem=2**26, dklen=32
        )


@dataclass(frozen=True, slots=True)
class PinRecord:
    """One PIN as the chip keeps it: salt, digest, cost and the consecutive-wrong-tries counter.

    Immutable: every try yields a new record, which the chip persists before it answers.
    """

    kind: KeyKind
    salt: bytes = field(repr=False)
    digest: bytes = field(repr=False)
    kdf: PinKdf
    wrong_tries: int = 0
    locked_at: dt.datetime | None = None

    @classmethod
    def new(cls, kind: KeyKind, pin: str, kdf: PinKdf) -> PinRecord:
        """A fresh record for `pin` (already checked with :func:`check_new_pin`), counter at 0."""
        salt = secrets.token_bytes(16)
        return cls(kind, salt, kdf.derive(pin, salt), kdf)

    @property
    def limit(self) -> int:
        return MAX_TRIES[self.kind]

    @property
    def locked(self) -> bool:
        return self.wrong_tries >= self.limit

    @property
    def remaining(self) -> int:
        return max(self.limit - self.wrong_tries, 0)

    def matches(self, pin: str) -> bool:
        """Whether `pin` is this PIN, in time independent of where they differ."""
        return hmac.compare_digest(self.kdf.derive(pin, self.salt), self.digest)

    def counted(self, now: dt.datetime) -> PinRecord:
        """This record with one more wrong try (a try counts until it is proved right)."""
        tries = min(self.wrong_tries + 1, self.limit)
        locked_at = self.locked_at or (now if tries >= self.limit else None)
        return dataclasses.replace(self, wrong_tries=tries, locked_at=locked_at)

    def cleared(self) -> PinRecord:
        """This record after the right PIN: the counter back at 0."""
        return dataclasses.replace(self, wrong_tries=0, locked_at=None)


# --- reset at the municipality counter ------------------------------------------------------

IDENTITY_CHECKS = frozenset({"photo_id", "two_documents"})
"""One photo ID ("A" document: licence, passport, residence card …) or two "B" documents."""

AUTHORISATION_MAX_AGE = dt.timedelta(minutes=10)
"""How long after the identity check the chip accepts the counter's authorisation."""
_CLOCK_SKEW = dt.timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class CounterAuthorisation:
    """What a municipality counter hands the chip after checking the holder's identity in person.

    Made by the municipality role (the only place that performs the identity check). For now it is
    a plain value trusted in-process; across processes it must be signed by the counter terminal
    and bound to the chip id — see the threat model.
    """

    municipality_code: str
    staff_id: str
    identity_check: str
    at: dt.datetime


def check_counter_authorisation(auth: object, now: dt.datetime) -> CounterAuthorisation:
    """`auth` if it is a complete, fresh :class:`CounterAuthorisation`, else
    :class:`UnlockUnauthorisedError` (`card.unlock_unauthorised`) naming what is wrong."""
    if not isinstance(auth, CounterAuthorisation):
        raise UnlockUnauthorisedError("missing")
    try:
        if not isinstance(auth.municipality_code, str):
            raise UnlockUnauthorisedError("municipality_code")
        parse_municipality(auth.municipality_code)
    except ValidationError:
        raise UnlockUnauthorisedError("municipality_code") from None
    staff = auth.staff_id
    if not isinstance(staff, str) or not 1 <= len(staff) <= 64 or not staff.isprintable():
        raise UnlockUnauthorisedError("staff_id")
    if not staff.strip():
        raise UnlockUnauthorisedError("staff_id")
    if not isinstance(auth.identity_check, str) or auth.identity_check not in IDENTITY_CHECKS:
        raise UnlockUnauthorisedError("identity_check")
    if not isinstance(auth.at, dt.datetime) or auth.at.utcoffset() is None:
        raise UnlockUnauthorisedError("time")
    if auth.at > now + _CLOCK_SKEW:
        raise UnlockUnauthorisedError("future")
    if now - auth.at > AUTHORISATION_MAX_AGE:
        raise UnlockUnauthorisedError("expired")
    return auth
