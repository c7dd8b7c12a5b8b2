"""The five identity items (kanji name, kana name, birth date, sex, address) and how they compare.

Pure functions over :mod:`mynumber.jtext`: what counts as equal is documented in
docs/normalisation.md. Used by the J-LIS five-item query and number verification, and later by
agency linkage (I3).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mynumber.jtext import normalise_address, normalise_kana, normalise_name

__all__ = [
    "ITEMS",
    "FiveItems",
    "ItemReport",
    "ItemResult",
    "Keys",
    "RegisteredIdentity",
    "compare",
    "items_from_json",
    "items_json",
    "keys_of",
]


ITEMS = ("name", "name_kana", "birth_date", "sex", "address")
"""The five items, in the order every report lists them."""


class ItemResult(enum.StrEnum):
    MATCH = "match"
    """Equal as written (ignoring surrounding white space)."""
    NORMALISED = "match_normalised"
    """Equal only after the documented normalisation."""
    MISMATCH = "mismatch"


@dataclass(frozen=True, slots=True)
class FiveItems:
    """The five identity items as someone wrote them; `name` and `name_kana` are full names."""

    name: str
    name_kana: str
    birth_date: dt.date
    sex: int
    address: str


def items_json(items: FiveItems) -> dict[str, str | int]:
    """The five items as stored in JSON (a review item's record): the date in ISO form."""
    return {
        "name": items.name,
        "name_kana": items.name_kana,
        "birth_date": items.birth_date.isoformat(),
        "sex": items.sex,
        "address": items.address,
    }


def items_from_json(doc: Mapping[str, Any]) -> FiveItems:
    """The inverse of :func:`items_json`."""
    return FiveItems(
        str(doc["name"]),
        str(doc["name_kana"]),
        dt.date.fromisoformat(str(doc["birth_date"])),
        int(doc["sex"]),
        str(doc["address"]),
    )


@dataclass(frozen=True, slots=True)
class Keys:
    """Normalised comparison keys of the text items."""

    name: str
    name_kana: str
    address: str


def keys_of(name: str, name_kana: str, address: str) -> Keys:
    return Keys(normalise_name(name), normalise_kana(name_kana), normalise_address(address))


@dataclass(frozen=True, slots=True)
class RegisteredIdentity:
    """A person as the register knows them: current items plus the normalised keys of earlier
    names, kana and addresses."""

    current: FiveItems
    earlier_name_keys: Sequence[str] = ()
    earlier_kana_keys: Sequence[str] = ()
    earlier_address_keys: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class ItemReport:
    item: str
    result: ItemResult
    matches_earlier: bool = False
    """For a mismatch: the claim matches a value the register recorded for this person earlier."""


@dataclass(frozen=True, slots=True)
class Comparison:
    items: tuple[ItemReport, ...] = field(default_factory=tuple)

    @property
    def all_match(self) -> bool:
        """Every item equal (after normalisation) to the current value."""
        return all(r.result is not ItemResult.MISMATCH for r in self.items)

    @property
    def all_match_or_earlier(self) -> bool:
        """Every item equal to the current value or to a value recorded earlier."""
        return all(r.result is not ItemResult.MISMATCH or r.matches_earlier for r in self.items)


_NAME_SEPARATORS = str.maketrans("", "", " \u3000")


def _as_written_name(s: str) -> str:
    """A full name as written, without the space that may separate family and given names
    (DESIGN: "family and given separated by a space, or not"): 鈴木 美加子 is 鈴木美加子 as
    written, not a variant of it."""
    return s.strip().translate(_NAME_SEPARATORS)


def _text(
    item: str,
    claim: str,
    current: str,
    earlier: Sequence[str],
    norm: Callable[[str], str],
    written: Callable[[str], str] = str.strip,
) -> ItemReport:
    if claim.strip() == current.strip():
        return ItemReport(item, ItemResult.MATCH)
    key, current_key = norm(claim), norm(current)
    # Also as written: equal but for the spaces `written` drops, when that leaves the key
    # unchanged (a space can keep a combining mark from its letter: "e\u3000\u0301" is not
    # "e\u0301"). So a match always has the current value's key, which the batch pool's SQL
    # relies on (agency.bulk.MAY_BE_TOLERANT).
    if written(claim) == written(current) and key == current_key:
        return ItemReport(item, ItemResult.MATCH)
    if key and key == current_key:
        return ItemReport(item, ItemResult.NORMALISED)
    return ItemReport(item, ItemResult.MISMATCH, bool(key) and key in earlier)


def compare(claim: FiveItems, person: RegisteredIdentity) -> Comparison:
    """A per-item report of `claim` against the registered `person`."""
    cur = person.current
    return Comparison(
        (
            _text(
                "name",
                claim.name,
                cur.name,
                person.earlier_name_keys,
                normalise_name,
                _as_written_name,
            ),
            _text(
                "name_kana",
                claim.name_kana,
                cur.name_kana,
                person.earlier_kana_keys,
                normalise_kana,
                _as_written_name,
            ),
            ItemReport(
                "birth_date",
                ItemResult.MATCH if claim.birth_date == cur.birth_date else ItemResult.MISMATCH,
            ),
            ItemReport("sex", ItemResult.MATCH if claim.sex == cur.sex else ItemResult.MISMATCH),
            _text(
                "address",
                claim.address,
                cur.address,
                person.earlier_address_keys,
                normalise_address,
            ),
        )
    )
