"""Sample files for trying batch linkage and the general check on a platform's own residents:
a roll (``mynumber link``) and an extract of existing links (``mynumber check-links``), drawn
from the register with the errors agencies really make. Pure and deterministic in (residents,
size, seed); the residents are :func:`mynumber.municipality.bulk.export_residents` rows. The
numbers in them are synthetic residents' numbers; the files are written mode 0600 all the same.

Roll (:data:`ROLL_MIX`): as registered; kana half-width or in hiragana; spaces added or removed;
one kana mistyped; day and month swapped; another household member's number; one digit of the
number mistyped; no number at all; someone the register does not know.

Extract (:data:`EXTRACT_MIX`): links as they should be; written another way; a household
member's number; a stranger's number; a number with a digit mistyped.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import jaconv

__all__ = [
    "EXTRACT_MIX",
    "ROLL_MIX",
    "kana_typo",
    "number_typo",
    "sample_extract",
    "sample_roll",
]

ROLL_MIX: tuple[tuple[str, float], ...] = (
    ("clean", 0.55),
    ("half_width", 0.08),
    ("hiragana", 0.05),
    ("spacing", 0.05),
    ("kana_typo", 0.05),
    ("day_month_swap", 0.03),
    ("family_number", 0.05),
    ("number_typo", 0.04),
    ("no_number", 0.08),
    ("not_in_register", 0.02),
)
EXTRACT_MIX: tuple[tuple[str, float], ...] = (
    ("ok", 0.80),
    ("variant", 0.08),
    ("family_number", 0.05),
    ("stranger_number", 0.04),
    ("number_typo", 0.03),
)
_KATAKANA = (
    "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワン"
)


def kana_typo(kana: str, rng: random.Random) -> str:
    """One katakana letter of `kana` replaced by another (the same string if it has none)."""
    places = [i for i, ch in enumerate(kana) if ch in _KATAKANA]
    if not places:
        return kana
    i = rng.choice(places)
    other = rng.choice([k for k in _KATAKANA if k != kana[i]])
    return kana[:i] + other + kana[i + 1 :]


def number_typo(number: str, rng: random.Random) -> str:
    """One digit of `number` changed (the check digit then almost always fails)."""
    i = rng.randrange(len(number))
    return number[:i] + str((int(number[i]) + rng.randint(1, 9)) % 10) + number[i + 1 :]


def _pick(mix: Sequence[tuple[str, float]], rng: random.Random) -> str:
    x, acc = rng.random(), 0.0
    for kind, share in mix:
        acc += share
        if x < acc:
            return kind
    return mix[0][0]


def _items(r: Mapping[str, str]) -> list[str]:
    return [
        f"{r['family_name']} {r['given_name']}",
        f"{r['family_name_kana']} {r['given_name_kana']}",
        r["birth_date"],
        r["sex"],
        r["address"],
    ]


def _households(residents: Sequence[Mapping[str, str]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(residents):
        out[f"{r['municipality_code']}:{r['household_id']}"].append(i)
    return out


def _family_number(
    residents: Sequence[Mapping[str, str]], households: Mapping[str, list[int]], i: int
) -> str | None:
    r = residents[i]
    others = [j for j in households[f"{r['municipality_code']}:{r['household_id']}"] if j != i]
    return residents[others[0]]["individual_number"] if others else None


def _draw(
    residents: Iterable[Mapping[str, str]], size: int, seed: int
) -> tuple[list[Mapping[str, str]], dict[str, list[int]], random.Random, list[int]]:
    """The residents with a number, their households, the generator, and whom to draw."""
    people = [r for r in residents if r.get("individual_number")]
    rng = random.Random(seed)
    return people, _households(people), rng, rng.sample(range(len(people)), min(size, len(people)))


def sample_roll(
    residents: Iterable[Mapping[str, str]], size: int, seed: int = 1
) -> tuple[list[list[str]], dict[str, str]]:
    """A roll of `size` records (ROLL_COLUMNS order: record_id, name, name_kana, birth_date,
    sex, address, individual_number) and the kind of each record by id."""
    people, households, rng, chosen = _draw(residents, size, seed)
    rows: list[list[str]] = []
    kinds: dict[str, str] = {}
    for n, i in enumerate(chosen):
        r = people[i]
        kind = _pick(ROLL_MIX, rng)
        name, kana, birth, sex, address = _items(r)
        number = r["individual_number"]
        if kind == "half_width":
            kana = jaconv.z2h(kana, kana=True, digit=False, ascii=False)
        elif kind == "hiragana":
            kana = jaconv.kata2hira(kana)
        elif kind == "spacing":
            name, kana, address = name.replace(" ", ""), kana.replace(" ", "　"), f"{address} "
        elif kind == "kana_typo":
            kana = kana_typo(kana, rng)
        elif kind == "day_month_swap":
            b = dt.date.fromisoformat(birth)
            if b.day <= 12 and b.day != b.month:
                birth = b.replace(month=b.day, day=b.month).isoformat()
            else:
                kind = "clean"
        elif kind == "family_number":
            found = _family_number(people, households, i)
            kind, number = ("family_number", found) if found else ("clean", number)
        elif kind == "number_typo":
            number = number_typo(number, rng)
        elif kind == "no_number":
            number = ""
        elif kind == "not_in_register":
            name, kana = f"{name.split()[0]} 架空", f"{kana.split()[0]} カクウ"
            number = ""
        rid = f"S{n + 1:07d}"
        kinds[rid] = kind
        rows.append([rid, name, kana, birth, sex, address, number])
    return rows, kinds


def sample_extract(
    residents: Iterable[Mapping[str, str]], size: int, seed: int = 2
) -> tuple[list[list[str]], dict[str, str]]:
    """Existing links (EXTRACT columns: record_id, individual_number, name, name_kana,
    birth_date, sex, address) of `size` people, some of them wrong, and each one's kind."""
    people, households, rng, chosen = _draw(residents, size, seed)
    rows: list[list[str]] = []
    kinds: dict[str, str] = {}
    for n, i in enumerate(chosen):
        r = people[i]
        kind = _pick(EXTRACT_MIX, rng)
        name, kana, birth, sex, address = _items(r)
        number = r["individual_number"]
        if kind == "variant":
            kana = jaconv.z2h(kana, kana=True, digit=False, ascii=False)
        elif kind == "family_number":
            found = _family_number(people, households, i)
            kind, number = ("family_number", found) if found else ("ok", number)
        elif kind == "stranger_number":
            number = people[rng.randrange(len(people))]["individual_number"]
        elif kind == "number_typo":
            number = number_typo(number, rng)
        rid = f"L{n + 1:07d}"
        kinds[rid] = kind
        rows.append([rid, number, name, kana, birth, sex, address])
    return rows, kinds
