"""Number formats of the My Number system, as pure functions (no I/O).

- individual number (個人番号): 12 digits, check digit last (平成26年総務省令第85号 第5条);
- corporate number (法人番号): 13 digits, check digit first (平成26年財務省令第70号 第2条);
- resident record code (住民票コード): 11 digits; the official weights are unconfirmed, so the
  check-digit scheme is pluggable (:class:`ResidentCodeScheme`);
- municipality code (全国地方公共団体コード): 6 digits, check digit last (JIS X 0401/0402).

:func:`parse` accepts what people type — full-width digits, spaces, hyphens — and rejects
everything else with a reason in Japanese and English.
"""

from __future__ import annotations

import enum
import functools
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from operator import mul

from mynumber.errors import ValidationError

__all__ = [
    "DEFAULT_RESIDENT_CODE_SCHEME",
    "Kind",
    "ResidentCodeScheme",
    "corporate_check_digit",
    "individual_check_digit",
    "mask",
    "municipality_check_digit",
    "normalise_digits",
    "parse",
    "parse_corporate",
    "parse_individual",
    "parse_municipality",
    "parse_resident_code",
]


class Kind(enum.StrEnum):
    INDIVIDUAL = "individual"
    CORPORATE = "corporate"
    RESIDENT_CODE = "resident-code"
    MUNICIPALITY = "municipality"


_LABELS = {
    Kind.INDIVIDUAL: ("individual number", "個人番号"),
    Kind.CORPORATE: ("corporate number", "法人番号"),
    Kind.RESIDENT_CODE: ("resident record code", "住民票コード"),
    Kind.MUNICIPALITY: ("municipality code", "地方公共団体コード"),
}
_LENGTHS = {Kind.INDIVIDUAL: 12, Kind.CORPORATE: 13, Kind.RESIDENT_CODE: 11, Kind.MUNICIPALITY: 6}

# Separators people type between digit groups; anything else is refused, not guessed at.
_SEPARATORS = frozenset(" \t-\u2010\u2011\u2012\u2013\u2014\u2212\u30fc")


def normalise_digits(value: str, kind: Kind = Kind.INDIVIDUAL, field: str | None = None) -> str:
    """ASCII digits of `value`: full-width folded, spaces and hyphens removed, anything else refused."""
    if len(value) == _LENGTHS[kind] and value.isascii() and value.isdigit():
        return value  # already clean: the common case in bulk imports
    en_label, ja_label = _LABELS[kind]
    out: list[str] = []
    for position, char in enumerate(unicodedata.normalize("NFKC", value), start=1):
        if "0" <= char <= "9":
            out.append(char)
        elif char in _SEPARATORS:
            continue
        else:
            shown = char if char.isprintable() else f"U+{ord(char):04X}"
            raise ValidationError(
                f"{kind}.invalid_character",
                f"The {en_label} contains '{shown}' at position {position}; only digits, "
                "spaces and hyphens are allowed.",
                f"{ja_label}の{position}文字目「{shown}」は使えません。数字・空白・ハイフンのみ使えます。",
                field=field,
            )
    digits = "".join(out)
    want = _LENGTHS[kind]
    if not digits:
        raise ValidationError(
            f"{kind}.empty",
            f"The {en_label} is empty.",
            f"{ja_label}が空です。",
            field=field,
        )
    if len(digits) != want:
        raise ValidationError(
            f"{kind}.length",
            f"The {en_label} must have {want} digits; {len(digits)} were given.",
            f"{ja_label}は{want}桁です（{len(digits)}桁が入力されました）。",
            field=field,
            extra={"expected_length": want, "given_length": len(digits)},
        )
    return digits


def _bad_check_digit(kind: Kind, field: str | None) -> ValidationError:
    en_label, ja_label = _LABELS[kind]
    return ValidationError(
        f"{kind}.check_digit",
        f"The check digit of the {en_label} is wrong: a digit was probably mistyped.",
        f"{ja_label}の検査用数字が一致しません。入力誤りの可能性があります。",
        field=field,
    )


def _weighted_mod11(body: str, weights: tuple[int, ...]) -> str:
    """0 if r ≤ 1 else 11 − r, r being the weighted digit sum mod 11 (weights left to right)."""
    r = sum(map(mul, map(int, body), weights)) % 11
    return "0" if r <= 1 else str(11 - r)


# 総務省令第85号 第5条: Qn = n+1 (n ≤ 6) / n−5 (n ≥ 7), n counted from the right; left to right:
_INDIVIDUAL_WEIGHTS = (6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
# Hypothesis (facts §1.5): the same scheme over ten digits.
_RESIDENT_WEIGHTS = _INDIVIDUAL_WEIGHTS[1:]


def individual_check_digit(body: str) -> str:
    """Check digit for the 11 leading digits of an individual number."""
    if len(body) != 11 or not body.isascii() or not body.isdigit():
        raise ValueError("an individual number body is 11 ASCII digits")
    return _weighted_mod11(body, _INDIVIDUAL_WEIGHTS)


def corporate_check_digit(base: str) -> str:
    """Leading check digit for the 12-digit base number of a corporate number."""
    if len(base) != 12 or not base.isascii() or not base.isdigit():
        raise ValueError("a corporate base number is 12 ASCII digits")
    # Qn = 1 for odd n, 2 for even n, counting n from the rightmost digit.
    total = sum(int(d) * (2 if n % 2 == 0 else 1) for n, d in enumerate(reversed(base), start=1))
    return str(9 - total % 9)


def municipality_check_digit(body: str) -> str:
    """Check digit for a 5-digit local-government code (weights 6,5,4,3,2; ones digit of 11 - r)."""
    if len(body) != 5 or not body.isascii() or not body.isdigit():
        raise ValueError("a municipality code body is 5 ASCII digits")
    total = sum(int(d) * w for d, w in zip(body, (6, 5, 4, 3, 2), strict=True))
    return str((11 - total % 11) % 10)


@dataclass(frozen=True)
class ResidentCodeScheme:
    """A check-digit algorithm for the resident record code, swappable once the official one is known."""

    name: str
    check_digit: Callable[[str], str]


def _mod11_resident(body: str) -> str:
    if len(body) != 10 or not body.isascii() or not body.isdigit():
        raise ValueError("a resident record code body is 10 ASCII digits")
    return _weighted_mod11(body, _RESIDENT_WEIGHTS)


DEFAULT_RESIDENT_CODE_SCHEME = ResidentCodeScheme("mod11-weighted", _mod11_resident)


def parse_individual(value: str, field: str | None = None) -> str:
    """The 12-digit individual number typed as `value`, or a ValidationError saying why not."""
    digits = normalise_digits(value, Kind.INDIVIDUAL, field)
    if individual_check_digit(digits[:11]) != digits[11]:
        raise _bad_check_digit(Kind.INDIVIDUAL, field)
    return digits


def parse_corporate(value: str, field: str | None = None) -> str:
    digits = normalise_digits(value, Kind.CORPORATE, field)
    if corporate_check_digit(digits[1:]) != digits[0]:
        raise _bad_check_digit(Kind.CORPORATE, field)
    return digits


def parse_resident_code(
    value: str,
    field: str | None = None,
    scheme: ResidentCodeScheme = DEFAULT_RESIDENT_CODE_SCHEME,
) -> str:
    digits = normalise_digits(value, Kind.RESIDENT_CODE, field)
    if scheme.check_digit(digits[:10]) != digits[10]:
        raise _bad_check_digit(Kind.RESIDENT_CODE, field)
    return digits


@functools.lru_cache(maxsize=4096)
def parse_municipality(value: str, field: str | None = None) -> str:
    digits = normalise_digits(value, Kind.MUNICIPALITY, field)
    if municipality_check_digit(digits[:5]) != digits[5]:
        raise _bad_check_digit(Kind.MUNICIPALITY, field)
    return digits


_PARSERS: dict[Kind, Callable[[str, str | None], str]] = {
    Kind.INDIVIDUAL: parse_individual,
    Kind.CORPORATE: parse_corporate,
    Kind.RESIDENT_CODE: parse_resident_code,
    Kind.MUNICIPALITY: parse_municipality,
}


def parse(value: str, kind: Kind | str = Kind.INDIVIDUAL, field: str | None = None) -> str:
    """Normalise and validate `value` as a number of `kind`."""
    return _PARSERS[Kind(kind)](value, field)


def mask(number: str) -> str:
    """The number with all but its last four digits hidden, as it may be shown or logged (I5)."""
    return "*" * max(len(number) - 4, 0) + number[-4:]
