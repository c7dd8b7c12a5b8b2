"""Synthetic residents (materialised before anything is timed) and five-item claims about them.

Claims are built from the generated rows, not read back from the database, so what a query
*should* answer is known independently of the code under test:

- exact (70%): the person's current items as registered → found, with their resident_code;
- variant (15%): the same items written another way that docs/normalisation.md declares equal
  (spaces, hiragana, half-width kana, full-width digits, 丁目番地 instead of 1-2-3, old or
  variant kanji) → found, with their resident_code;
- wrong (15%): one item changed (another given name or reading, birth date ± days, the other
  sex, the neighbouring house number) → none.

A person who shares all five keys with someone else in the register (a true duplicate) is
expected to come back "ambiguous"; the builder counts those. Wrong claims that happen to equal
another registered person are redrawn.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jaconv

from mynumber.identity import FiveItems, Keys, keys_of
from mynumber.jtext import VARIANT_FOLDS
from mynumber.synth import generate_residents

from .common import progress

__all__ = [
    "KINDS",
    "Claim",
    "build_claims",
    "clear_normalisation_caches",
    "generate_rows",
]

KINDS = ("exact", "variant", "wrong")
VARIANT_HOWS = ("spacing", "hiragana", "half-width", "house-number", "variant-kanji")
WRONG_HOWS = ("name", "kana", "birth_date", "sex", "address")

# standard kanji → one old form / 異体字 that the normaliser folds back to it
_UNFOLD: dict[str, str] = {}
for _old, _new in VARIANT_FOLDS.items():
    _UNFOLD.setdefault(_new, _old)

_HOUSE3 = re.compile(r"(\d+)-(\d+)-(\d+)")
_HOUSE2 = re.compile(r"(\d+)-(\d+)")
_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True, slots=True)
class Claim:
    kind: str
    """exact | variant | wrong"""
    how: str
    """Which notation (variant) or which item was changed (wrong); "as registered" for exact."""
    target: str
    """resident_code of the person the claim was built from."""
    items: FiveItems
    expect_outcome: str
    """found | none | ambiguous"""
    expect_code: str | None
    expect_candidates: int

    def body(self) -> dict[str, str]:
        """The claim as the JSON body of POST /api/jlis/five-item-queries."""
        it = self.items
        return {
            "name": it.name,
            "name_kana": it.name_kana,
            "birth_date": it.birth_date.isoformat(),
            "sex": str(it.sex),
            "address": it.address,
        }


def generate_rows(n: int, seed: int) -> list[dict[str, str]]:
    """`n` synthetic residents of 東京都新宿区 (synth.generate_residents), all in memory."""
    rows: list[dict[str, str]] = []
    with progress() as bar:
        task = bar.add_task(f"generate {n:,} residents (seed {seed})", total=n)
        for row in generate_residents(n, seed):
            rows.append(row)
            if len(rows) % 5000 == 0:
                bar.update(task, completed=len(rows))
        bar.update(task, completed=len(rows))
    return rows


def clear_normalisation_caches() -> None:
    """Empty the normalisers' LRU caches, so a timed phase does not start with the keys that
    building the register (or the claims) left there; a server process starts empty too."""
    from mynumber import jtext

    for name in ("normalise_name", "normalise_kana", "normalise_address"):
        clear: Callable[[], None] | None = getattr(getattr(jtext, name), "cache_clear", None)
        if clear is not None:
            clear()


def _items(row: dict[str, str]) -> FiveItems:
    return FiveItems(
        row["family_name"] + row["given_name"],
        row["family_name_kana"] + row["given_name_kana"],
        dt.date.fromisoformat(row["birth_date"]),
        int(row["sex"]),
        row["address"],
    )


class _Register:
    """The generated rows grouped as the query groups them (birth date, sex), with their keys."""

    def __init__(self, rows: Sequence[dict[str, str]]) -> None:
        self.rows = rows
        self.groups: dict[tuple[str, int], list[int]] = {}
        for i, row in enumerate(rows):
            self.groups.setdefault((row["birth_date"], int(row["sex"])), []).append(i)
        self._keys: dict[int, Keys] = {}

    def keys(self, i: int) -> Keys:
        k = self._keys.get(i)
        if k is None:
            row = self.rows[i]
            k = keys_of(
                row["family_name"] + row["given_name"],
                row["family_name_kana"] + row["given_name_kana"],
                row["address"],
            )
            self._keys[i] = k
        return k

    def same_keys(self, items: FiveItems, keys: Keys) -> list[int]:
        """Rows in the claim's (birth date, sex) group whose registered keys equal `keys`."""
        group = self.groups.get((items.birth_date.isoformat(), items.sex), [])
        return [i for i in group if self.keys(i) == keys]


def _variant(how: str, row: dict[str, str], base: FiveItems, rng: random.Random) -> FiveItems:
    fam, giv = row["family_name"], row["given_name"]
    fk, gk = row["family_name_kana"], row["given_name_kana"]
    name, kana, address = base.name, base.name_kana, base.address
    if how == "spacing":
        name = f"{fam}\u3000{giv}" if giv else f" {fam} "
        kana = f"{fk} {gk}" if gk else f"{fk} "
        address = address.replace("都", "都 ", 1).replace("区", "区 ", 1)
    elif how == "hiragana":
        kana = jaconv.kata2hira(f"{fk}\u3000{gk}")
    elif how == "half-width":
        kana = jaconv.z2h(kana, kana=True, ascii=False, digit=False)
        address = jaconv.h2z(address, kana=False, ascii=True, digit=True)
    elif how == "house-number":
        if _HOUSE3.search(address):
            address = _HOUSE3.sub(r"\1丁目\2番\3号", address, count=1)
        elif _HOUSE2.search(address):
            address = _HOUSE2.sub(r"\1番地\2", address, count=1)
        else:
            address = jaconv.h2z(address, kana=False, ascii=True, digit=True)
    elif how == "variant-kanji":
        spots = [i for i, ch in enumerate(name) if ch in _UNFOLD]
        if spots:
            i = rng.choice(spots)
            name = name[:i] + _UNFOLD[name[i]] + name[i + 1 :]
        else:  # no kanji with a variant form: fall back to spacing in the name
            name = f"{fam}\u3000{giv}" if giv else f" {fam} "
    else:
        raise ValueError(how)
    return FiveItems(name, kana, base.birth_date, base.sex, address)


def _wrong(
    how: str, row: dict[str, str], base: FiveItems, reg: _Register, rng: random.Random
) -> FiveItems | None:
    if how in ("name", "kana"):
        part = "given_name" if how == "name" else "given_name_kana"
        for _ in range(20):
            other = reg.rows[rng.randrange(len(reg.rows))]
            if other["sex"] == row["sex"] and other[part] != row[part]:
                if how == "name":
                    return FiveItems(
                        row["family_name"] + other[part],
                        base.name_kana,
                        base.birth_date,
                        base.sex,
                        base.address,
                    )
                return FiveItems(
                    base.name,
                    row["family_name_kana"] + other[part],
                    base.birth_date,
                    base.sex,
                    base.address,
                )
        return None
    if how == "birth_date":
        days = rng.choice((-1, 1)) * rng.randint(1, 400)
        return FiveItems(
            base.name,
            base.name_kana,
            base.birth_date + dt.timedelta(days=days),
            base.sex,
            base.address,
        )
    if how == "sex":
        return FiveItems(base.name, base.name_kana, base.birth_date, 3 - base.sex, base.address)
    if how == "address":
        m = _DIGITS.search(base.address)
        if m is None:
            address = base.address + "別館"
        else:
            address = f"{base.address[: m.start()]}{int(m.group()) + 1}{base.address[m.end() :]}"
        return FiveItems(base.name, base.name_kana, base.birth_date, base.sex, address)
    raise ValueError(how)


def build_claims(
    rows: Sequence[dict[str, str]], k: int, seed: int, *, label: str = "claims"
) -> tuple[list[Claim], dict[str, Any]]:
    """`k` claims (70% exact, 15% variant, 15% wrong) about random residents, in random order,
    with what each must return; and a summary of how they were built."""
    rng = random.Random(seed)
    reg = _Register(rows)
    n_variant = round(k * 0.15)
    n_wrong = round(k * 0.15)
    kinds = ["exact"] * (k - n_variant - n_wrong) + ["variant"] * n_variant + ["wrong"] * n_wrong
    rng.shuffle(kinds)
    claims: list[Claim] = []
    redrawn = 0
    expected_ambiguous = 0
    with progress() as bar:
        task = bar.add_task(f"build {k:,} {label}", total=k)
        for n, kind in enumerate(kinds):
            while True:
                i = rng.randrange(len(rows))
                row = rows[i]
                base = _items(row)
                code = row["resident_code"]
                if kind == "wrong":
                    how = WRONG_HOWS[n % len(WRONG_HOWS)]
                    items = _wrong(how, row, base, reg, rng)
                    if items is None or reg.same_keys(
                        items, keys_of(items.name, items.name_kana, items.address)
                    ):
                        redrawn += 1  # it names a registered person after all: draw again
                        continue
                    claims.append(Claim(kind, how, code, items, "none", None, 0))
                    break
                if kind == "variant":
                    how = VARIANT_HOWS[n % len(VARIANT_HOWS)]
                    items = _variant(how, row, base, rng)
                else:
                    how, items = "as registered", base
                twins = reg.same_keys(base, reg.keys(i))
                if len(twins) == 1:
                    claims.append(Claim(kind, how, code, items, "found", code, 1))
                else:  # a true duplicate in the register: the only right answer is ambiguous
                    expected_ambiguous += 1
                    claims.append(Claim(kind, how, code, items, "ambiguous", None, len(twins)))
                break
            if n % 500 == 0:
                bar.update(task, completed=n)
        bar.update(task, completed=k)
    summary = {
        "claims": k,
        "by_kind": {kind: kinds.count(kind) for kind in KINDS},
        "expected_ambiguous": expected_ambiguous,
        "wrong_redrawn": redrawn,
    }
    return claims, summary
