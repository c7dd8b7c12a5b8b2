"""A register with history and an agency roll about it, with the ground truth of every record.

Everything is drawn from ``random.Random`` seeded from one seed, so a seed always gives the same
register and the same roll in the same order.

**Register** (``size`` people): :func:`mynumber.synth.generate_residents` (households share the
surname and the address; twins, relatives and the many 同姓同名 of a small name table come from
there), then history is added, household by household:

- 10% of households *moved*: a new current address, the old one kept in ``earlier_addresses``;
- 60% of Japanese wives and mothers (妻, 母, 妻の母) *married in*: an earlier family name
  (``earlier_names`` / ``earlier_kanas``, drawn from the register's family names);
- about 1.8% of people are *deceased* (status ``deceased``; 7% of those aged 65 or more, 0.5% of
  the younger), 1% *moved out* (``moved_out``);
- 0.4% of people get a *doppelgänger*: someone of the same sex and family name in another
  household is given the same given name and birth date (同姓同名・同一生年月日, address differs);
- 15% of households with a male head and a son give the son the father's given name (ジュニア);
- twins (same household, same birth date, same surname, different given names) come from the
  generator (8% of households with two or more children).

Every person has an individual number: 11 random digits and the check digit of
:func:`mynumber.numbers.individual_check_digit`, unique in the register.

**Roll** (``roll_size`` records, in random order, each about a different person). Each record
has one *kind* (:data:`ROLL_MIX`, shares of the roll); 70% of records whose kind does not decide
it carry the person's own number, the rest none:

==========================  =====  ==========================================================
kind                        share  the record, compared with the person's current registration
==========================  =====  ==========================================================
clean                       42%    as registered
variant_kanji               4%     one kanji in an old / variant form (髙, 﨑, 邊, 澤 …)
hiragana                    3%     kana in hiragana, a space between family and given name
half_width                  3%     kana in half-width katakana (digits of the address
                                   full-width)
small_kana                  2%     small kana written large (ショウ → シヨウ)
long_vowel                  2%     a long vowel written ー (オオノ → オーノ, ユウコ → ユーコ)
long_vowel_ou               1%     オウ written オー (コウジ → コージ): *not* equal after the
                                   documented normalisation, one kana off
spacing                     4%     spaces added (name, kana, address) or the address's spaces
                                   removed
kana_typo                   3%     one kana replaced by another
day_month_swap              2%     day and month swapped (people born on day ≤ 12 only)
year_off                    2%     birth year one off
stale_address               4%     an earlier address of the person that the register knows
unknown_address             3%     an old address the register never knew for the person
married_name                3%     the person's earlier family name (kanji and kana)
family_number               3%     items right, number of another member of the household
number_typo_1               3%     items right, one digit of the own number mistyped
number_typo_2               2%     items right, two digits mistyped or two neighbours swapped
twin                        1%     as registered, about a twin
same_name_birthday          1%     as registered, about someone with a 同姓同名同生年月日
junior                      1%     as registered, about a father or son with the same name
combined                    4%     a notation slip (variant kanji, hiragana, half-width,
                                   spacing) and a content slip (kana typo, day/month swap,
                                   year off, stale or unknown address, married name) at once
deceased                    2%     as registered, about a deceased person
not_in_register             4%     someone not in the register (emigrated, never registered):
                                   generated like the residents; 30% claim a valid number
                                   J-LIS never issued
lookalike                   1%     someone not in the register with the name, kana, birth date
                                   and sex of a living registered person, another address
==========================  =====  ==========================================================

A kind whose people run out (e.g. too few twins in a tiny register) falls back to ``clean``;
the counts actually drawn are in :attr:`World.kind_counts`. Number typos are kept whatever
the check digit says: most fail it, some pass and name a number nobody holds.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from mynumber.agency.roll import RollRecord
from mynumber.agency.samples import number_typo
from mynumber.identity import FiveItems
from mynumber.jtext import normalise_kana
from mynumber.numbers import individual_check_digit
from mynumber.synth import REFERENCE_DATE, generate_residents

from ..data import _UNFOLD, _variant

__all__ = [
    "CONTENT_SLIPS",
    "NOTATION_SLIPS",
    "ROLL_MIX",
    "Register",
    "Roll",
    "World",
    "generate_world",
]

ROLL_MIX: dict[str, float] = {
    "clean": 0.42,
    "variant_kanji": 0.04,
    "hiragana": 0.03,
    "half_width": 0.03,
    "small_kana": 0.02,
    "long_vowel": 0.02,
    "long_vowel_ou": 0.01,
    "spacing": 0.04,
    "kana_typo": 0.03,
    "day_month_swap": 0.02,
    "year_off": 0.02,
    "stale_address": 0.04,
    "unknown_address": 0.03,
    "married_name": 0.03,
    "family_number": 0.03,
    "number_typo_1": 0.03,
    "number_typo_2": 0.02,
    "twin": 0.01,
    "same_name_birthday": 0.01,
    "junior": 0.01,
    "combined": 0.04,
    "deceased": 0.02,
    "not_in_register": 0.04,
    "lookalike": 0.01,
}
"""Kind of roll record → share of the roll (sums to 1)."""

NUMBER_SHARE = 0.70
"""Share of records that carry the person's own number, where the kind does not decide it."""
OUTSIDER_NUMBER_SHARE = 0.30
"""Share of not-in-register records that claim a valid number J-LIS never issued."""
MOVED_HOUSEHOLDS = 0.10
MAIDEN_NAMES = 0.60
DECEASED_ELDERLY = 0.07
"""Share of people aged 65 or more recorded as deceased (0.5% of the younger): ≈ 1.8% in all."""
DECEASED_YOUNGER = 0.005
MOVED_OUT = 0.01
DOPPELGANGERS = 0.004
JUNIORS = 0.15

NOTATION_SLIPS = ("variant_kanji", "hiragana", "half_width", "spacing")
CONTENT_SLIPS = (
    "kana_typo",
    "day_month_swap",
    "year_off",
    "stale_address",
    "unknown_address",
    "married_name",
)
_OUTSIDE_KINDS = frozenset({"not_in_register", "lookalike"})
_WIVES = frozenset({"妻", "母", "妻の母"})
_SMALL = re.compile("[ァィゥェォッャュョヮ]")
_KATAKANA = (
    "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワン"
)
_DIGITS = re.compile(r"\d+")
_VOWELS = "アイウエオ"


@dataclass
class Register:
    """The register, column by column (index i is one person)."""

    code: list[str] = field(default_factory=list)
    number: list[str] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    household: list[str] = field(default_factory=list)
    relationship: list[str] = field(default_factory=list)
    family: list[str] = field(default_factory=list)
    given: list[str] = field(default_factory=list)
    family_kana: list[str] = field(default_factory=list)
    given_kana: list[str] = field(default_factory=list)
    birth: list[dt.date] = field(default_factory=list)
    sex: list[int] = field(default_factory=list)
    address: list[str] = field(default_factory=list)
    japanese: list[bool] = field(default_factory=list)
    earlier_names: dict[int, list[str]] = field(default_factory=dict)
    earlier_kanas: dict[int, list[str]] = field(default_factory=dict)
    earlier_addresses: dict[int, list[str]] = field(default_factory=dict)
    tags: dict[int, set[str]] = field(default_factory=dict)
    """twin | same_name_birthday | junior | doppelganger | moved | married."""

    def __len__(self) -> int:
        return len(self.code)

    def append(self, row: dict[str, str]) -> None:
        self.code.append(row["resident_code"])
        self.status.append("active")
        self.household.append(row["household_id"])
        self.relationship.append(row["relationship"])
        self.family.append(row["family_name"])
        self.given.append(row["given_name"])
        self.family_kana.append(row["family_name_kana"])
        self.given_kana.append(row["given_name_kana"])
        self.birth.append(dt.date.fromisoformat(row["birth_date"]))
        self.sex.append(int(row["sex"]))
        self.address.append(row["address"])
        self.japanese.append(not row["nationality"])

    def name(self, i: int) -> str:
        return self.family[i] + self.given[i]

    def kana(self, i: int) -> str:
        return self.family_kana[i] + self.given_kana[i]

    def items(self, i: int) -> FiveItems:
        """Person i's current items as registered."""
        return FiveItems(self.name(i), self.kana(i), self.birth[i], self.sex[i], self.address[i])

    def tag(self, i: int, tag: str) -> None:
        self.tags.setdefault(i, set()).add(tag)

    def rows(self) -> Iterator[dict[str, Any]]:
        """Rows for :func:`mynumber.agency.bulk.register_table` (earlier values as written)."""
        for i in range(len(self.code)):
            yield {
                "resident_code": self.code[i],
                "status": self.status[i],
                "household_id": self.household[i],
                "name": self.name(i),
                "name_kana": self.kana(i),
                "family_name_kana": self.family_kana[i],
                "birth_date": self.birth[i],
                "sex": self.sex[i],
                "address": self.address[i],
                "earlier_names": self.earlier_names.get(i, ()),
                "earlier_kanas": self.earlier_kanas.get(i, ()),
                "earlier_addresses": self.earlier_addresses.get(i, ()),
            }

    def resolver(self) -> Callable[[Sequence[str]], dict[str, tuple[str, str | None]]]:
        """J-LIS's number_status for many numbers: ('active', owner) or ('unknown', None)."""
        owner = dict(zip(self.number, self.code, strict=True))

        def resolve(numbers: Sequence[str]) -> dict[str, tuple[str, str | None]]:
            out: dict[str, tuple[str, str | None]] = {}
            for n in numbers:
                rc = owner.get(n)
                out[n] = ("active", rc) if rc is not None else ("unknown", None)
            return out

        return resolve


@dataclass
class Roll:
    """The roll, column by column, with its ground truth (index i is one record)."""

    record_id: list[str] = field(default_factory=list)
    name: list[str] = field(default_factory=list)
    kana: list[str] = field(default_factory=list)
    birth: list[dt.date] = field(default_factory=list)
    sex: list[int] = field(default_factory=list)
    address: list[str] = field(default_factory=list)
    claimed: list[str | None] = field(default_factory=list)
    truth: list[str | None] = field(default_factory=list)
    """Resident code of the person the record is about; None when not in the register."""
    person: list[int] = field(default_factory=list)
    """Register index of that person, or -1."""
    kind: list[str] = field(default_factory=list)
    detail: list[str] = field(default_factory=list)
    """What exactly was done (the slips of ``combined``, which number was claimed)."""

    def __len__(self) -> int:
        return len(self.record_id)

    def items(self, i: int) -> FiveItems:
        return FiveItems(self.name[i], self.kana[i], self.birth[i], self.sex[i], self.address[i])

    def records(self) -> list[RollRecord]:
        """The roll as :class:`RollRecord` (line = index + 2, after the header)."""
        return [
            RollRecord(i + 2, self.record_id[i], self.items(i), self.claimed[i])
            for i in range(len(self.record_id))
        ]


@dataclass
class World:
    register: Register
    roll: Roll
    seed: int
    kind_counts: dict[str, int]
    """Records drawn per kind (a kind short of people falls back to clean)."""
    history: dict[str, int]
    """How many people got each kind of history (moved, married, deceased, …)."""

    @cached_property
    def status_of(self) -> dict[str, str]:
        """Resident code → status (the register is not changed once generated)."""
        return dict(zip(self.register.code, self.register.status, strict=True))


# -- numbers ------------------------------------------------------------------------------------


def _number(body: int) -> str:
    text = f"{body:011d}"
    return text + individual_check_digit(text)


def _typo_2(number: str, rng: random.Random) -> str:
    if rng.random() < 0.5:
        spots = [i for i in range(11) if number[i] != number[i + 1]]
        if spots:
            i = rng.choice(spots)
            return number[:i] + number[i + 1] + number[i] + number[i + 2 :]
    i, j = sorted(rng.sample(range(12), 2))
    a = rng.choice([d for d in "0123456789" if d != number[i]])
    b = rng.choice([d for d in "0123456789" if d != number[j]])
    return number[:i] + a + number[i + 1 : j] + b + number[j + 1 :]


# -- text slips ---------------------------------------------------------------------------------


def _other_place(address: str, rng: random.Random) -> str:
    """`address` with its first number changed: another 丁目 / 番地 of the same town."""
    m = _DIGITS.search(address)
    if m is None:
        return address + f"{rng.randint(1, 30)}-{rng.randint(1, 20)}"
    n = int(m.group())
    new = rng.choice([k for k in range(1, max(n, 6) + 3) if k != n])
    return f"{address[: m.start()]}{new}{address[m.end() :]}"


def _small_kana(kana: str) -> str | None:
    """Small kana written large (ショウ → シヨウ), or None if there is none."""
    if not _SMALL.search(kana):
        return None
    return kana.translate(str.maketrans("ァィゥェォッャュョヮ", "アイウエオツヤユヨワ"))


def _long_vowel(kana: str, rng: random.Random, *, folded: bool) -> str | None:
    """One vowel kana written ー. folded: only where the documented normalisation reads ー back as
    that vowel (オオ → オー); else only オウ-type spots where it does not (コウ → コー)."""
    key = normalise_kana(kana)
    spots = []
    for j in range(1, len(kana)):
        if kana[j] not in _VOWELS or kana[j - 1] in "ーン":
            continue
        cand = kana[:j] + "ー" + kana[j + 1 :]
        same = normalise_kana(cand) == key
        if (folded and same) or (not folded and not same and kana[j] == "ウ"):
            spots.append(cand)
    return rng.choice(spots) if spots else None


def _kana_typo(kana: str, rng: random.Random) -> str:
    """One kana replaced by another, so that the normalised readings differ."""
    key = normalise_kana(kana)
    for _ in range(50):
        j = rng.randrange(len(kana))
        if kana[j] in "ー・":
            continue
        cand = kana[:j] + rng.choice(_KATAKANA) + kana[j + 1 :]
        if normalise_kana(cand) != key:
            return cand
    return kana + rng.choice(_KATAKANA)  # an inserted kana


def _year_off(birth: dt.date, rng: random.Random) -> dt.date:
    year = birth.year + rng.choice((-1, 1))
    day = 28 if (birth.month, birth.day) == (2, 29) else birth.day
    return birth.replace(year=year, day=day)


# -- register -----------------------------------------------------------------------------------


def _build_register(
    size: int, outsiders: int, seed: int, tick: Callable[[int], None]
) -> tuple[Register, Register, dict[str, int]]:
    reg, out = Register(), Register()
    for n, row in enumerate(generate_residents(size + outsiders, seed)):
        (reg if n < size else out).append(row)
        if n % 5000 == 4999:
            tick(5000)
    tick((size + outsiders) % 5000)
    rng = random.Random(seed * 1_000_003 + 1)
    history = {"moved": 0, "married": 0, "deceased": 0, "moved_out": 0}

    households: dict[str, list[int]] = {}
    for i, h in enumerate(reg.household):
        households.setdefault(h, []).append(i)
    addresses = list(reg.address)  # before anyone moves

    for members in households.values():
        if rng.random() < MOVED_HOUSEHOLDS:
            old = reg.address[members[0]]
            new = _other_place(addresses[rng.randrange(len(addresses))], rng)
            if new == old:
                continue
            for i in members:
                reg.earlier_addresses[i] = [old]
                reg.address[i] = new
                reg.tag(i, "moved")
                history["moved"] += 1

    families = sorted(
        {(f, k) for f, k, j in zip(reg.family, reg.family_kana, reg.japanese, strict=True) if j}
    )
    for i in range(len(reg)):
        if (
            reg.sex[i] == 2
            and reg.japanese[i]
            and reg.relationship[i] in _WIVES
            and families
            and rng.random() < MAIDEN_NAMES
        ):
            fam, fk = families[rng.randrange(len(families))]
            if fk == reg.family_kana[i]:
                continue
            reg.earlier_names[i] = [fam + reg.given[i]]
            reg.earlier_kanas[i] = [fk + reg.given_kana[i]]
            reg.tag(i, "married")
            history["married"] += 1

    # doppelgängers: same family name and sex, another household → same given name and birth
    groups: dict[tuple[str, str, int], list[int]] = {}
    for i in range(len(reg)):
        groups.setdefault((reg.family[i], reg.family_kana[i], reg.sex[i]), []).append(i)
    history["doppelganger"] = 0
    changed = set(reg.earlier_names)  # a name changed once is not changed again
    for _ in range(round(len(reg) * DOPPELGANGERS)):
        a = rng.randrange(len(reg))
        group = groups[(reg.family[a], reg.family_kana[a], reg.sex[a])]
        b = group[rng.randrange(len(group))]
        if b == a or reg.household[b] == reg.household[a] or {a, b} & changed:
            continue
        changed.update((a, b))
        reg.given[b], reg.given_kana[b], reg.birth[b] = (
            reg.given[a],
            reg.given_kana[a],
            reg.birth[a],
        )
        reg.tag(a, "doppelganger")
        reg.tag(b, "doppelganger")
        history["doppelganger"] += 1

    history["junior"] = 0
    for members in households.values():
        head = members[0]
        if reg.relationship[head] != "世帯主" or reg.sex[head] != 1:
            continue
        sons = [i for i in members if reg.relationship[i] == "子" and reg.sex[i] == 1]
        if sons and rng.random() < JUNIORS:
            son = sons[rng.randrange(len(sons))]
            if son in changed or head in changed:
                continue
            reg.given[son], reg.given_kana[son] = reg.given[head], reg.given_kana[head]
            reg.tag(head, "junior")
            reg.tag(son, "junior")
            history["junior"] += 1

    elderly = dt.date(REFERENCE_DATE.year - 65, REFERENCE_DATE.month, REFERENCE_DATE.day)
    for i in range(len(reg)):
        r = rng.random()
        if r < (DECEASED_ELDERLY if reg.birth[i] <= elderly else DECEASED_YOUNGER):
            reg.status[i] = "deceased"
            history["deceased"] += 1
        elif r > 1 - MOVED_OUT:
            reg.status[i] = "moved_out"
            history["moved_out"] += 1

    # the hard cases, as they are after all changes
    twins: dict[tuple[str, dt.date], list[int]] = {}
    same: dict[tuple[str, str, dt.date, int], list[int]] = {}
    for i in range(len(reg)):
        twins.setdefault((reg.household[i], reg.birth[i]), []).append(i)
        same.setdefault((reg.name(i), reg.kana(i), reg.birth[i], reg.sex[i]), []).append(i)
    for group in twins.values():
        if len(group) > 1 and all(reg.relationship[i] == "子" for i in group):
            for i in group:
                reg.tag(i, "twin")
    for group in same.values():
        if len({reg.household[i] for i in group}) > 1:
            for i in group:
                reg.tag(i, "same_name_birthday")
    history["twin"] = sum(1 for t in reg.tags.values() if "twin" in t)
    history["same_name_birthday"] = sum(1 for t in reg.tags.values() if "same_name_birthday" in t)

    taken: set[int] = set()
    for people in (reg, out):
        for _ in range(len(people)):
            body = rng.randrange(10**10, 10**11)
            while body in taken:
                body = rng.randrange(10**10, 10**11)
            taken.add(body)
            people.number.append(_number(body))
    return reg, out, history


# -- roll ---------------------------------------------------------------------------------------


def _counts(size: int) -> dict[str, int]:
    """Records per kind: shares of `size`, largest remainders rounded up."""
    raw = {k: size * s for k, s in ROLL_MIX.items()}
    counts = {k: int(v) for k, v in raw.items()}
    rest = sorted(raw, key=lambda k: raw[k] - counts[k], reverse=True)
    for k in rest[: size - sum(counts.values())]:
        counts[k] += 1
    return counts


class _Drafter:
    """Draws the person of each record and writes the record."""

    def __init__(self, reg: Register, out: Register, rng: random.Random) -> None:
        self.reg, self.out, self.rng = reg, out, rng
        self.used = bytearray(len(reg))
        self.living = [i for i in range(len(reg)) if reg.status[i] != "deceased"]
        self.households: dict[str, list[int]] = {}
        for i, h in enumerate(reg.household):
            self.households.setdefault(h, []).append(i)
        self.pools: dict[str, list[int]] = {
            tag: [i for i in self.living if tag in reg.tags.get(i, ())]
            for tag in ("twin", "same_name_birthday", "junior")
        }
        self.pools["stale_address"] = [i for i in self.living if i in reg.earlier_addresses]
        self.pools["married_name"] = [i for i in self.living if i in reg.earlier_names]
        self.pools["family_number"] = [
            i for i in self.living if len(self.households[reg.household[i]]) > 1
        ]
        self.pools["deceased"] = [i for i in range(len(reg)) if reg.status[i] == "deceased"]
        for pool in self.pools.values():
            rng.shuffle(pool)
        self.next_outsider = 0
        self.issued = set(reg.number)

    def take(self, pool: list[int], ok: Callable[[int], bool] | None = None) -> int | None:
        while pool:
            i = pool.pop()
            if not self.used[i] and (ok is None or ok(i)):
                self.used[i] = 1
                return i
        return None

    def any_living(self, ok: Callable[[int], bool] | None = None, tries: int = 400) -> int | None:
        for _ in range(tries):
            i = self.living[self.rng.randrange(len(self.living))]
            if not self.used[i] and (ok is None or ok(i)):
                self.used[i] = 1
                return i
        return None

    def outsider(self) -> int:
        i = self.next_outsider
        self.next_outsider += 1
        return i

    def never_issued(self) -> str:
        while True:
            n = _number(self.rng.randrange(10**10, 10**11))
            if n not in self.issued:
                return n


@dataclass
class _Draft:
    family: str
    given: str
    family_kana: str
    given_kana: str
    birth: dt.date
    sex: int
    address: str
    name: str | None = None
    kana: str | None = None

    def items(self) -> FiveItems:
        return FiveItems(
            self.name if self.name is not None else self.family + self.given,
            self.kana if self.kana is not None else self.family_kana + self.given_kana,
            self.birth,
            self.sex,
            self.address,
        )

    def row(self) -> dict[str, str]:
        return {
            "family_name": self.family,
            "given_name": self.given,
            "family_name_kana": self.family_kana,
            "given_name_kana": self.given_kana,
        }


def _draft(reg: Register, i: int) -> _Draft:
    return _Draft(
        reg.family[i],
        reg.given[i],
        reg.family_kana[i],
        reg.given_kana[i],
        reg.birth[i],
        reg.sex[i],
        reg.address[i],
    )


_DATA_HOW = {
    "variant_kanji": "variant-kanji",
    "hiragana": "hiragana",
    "half_width": "half-width",
    "spacing": "spacing",
}


def _applicable(slip: str, reg: Register, i: int, rng: random.Random) -> bool:
    """Whether `slip` changes person i's record (a check before drawing them)."""
    if slip == "variant_kanji":
        return any(ch in _UNFOLD for ch in reg.name(i))
    if slip == "small_kana":
        return _SMALL.search(reg.kana(i)) is not None
    if slip in ("long_vowel", "long_vowel_ou"):
        return _long_vowel(reg.kana(i), rng, folded=slip == "long_vowel") is not None
    if slip == "day_month_swap":
        b = reg.birth[i]
        return b.day <= 12 and b.day != b.month
    return True


def _apply(slip: str, d: _Draft, reg: Register, i: int, rng: random.Random) -> None:
    """Apply a content slip to the parts of `d` (notation slips come after, on the items)."""
    if slip == "small_kana":
        d.kana = _small_kana(d.family_kana + d.given_kana)
    elif slip in ("long_vowel", "long_vowel_ou"):
        d.kana = _long_vowel(d.family_kana + d.given_kana, rng, folded=slip == "long_vowel")
    elif slip == "kana_typo":
        if rng.random() < 0.5 and d.given_kana:
            d.given_kana = _kana_typo(d.given_kana, rng)
        else:
            d.family_kana = _kana_typo(d.family_kana, rng)
    elif slip == "day_month_swap":
        d.birth = d.birth.replace(month=d.birth.day, day=d.birth.month)
    elif slip == "year_off":
        d.birth = _year_off(d.birth, rng)
    elif slip == "stale_address":
        d.address = rng.choice(reg.earlier_addresses[i])
    elif slip == "unknown_address":
        known = {d.address, *reg.earlier_addresses.get(i, ())}
        for _ in range(20):
            addr = _other_place(reg.address[rng.randrange(len(reg))], rng)
            if addr not in known:
                d.address = addr
                break
    elif slip == "married_name":
        earlier_name = reg.earlier_names[i][0]
        earlier_kana = reg.earlier_kanas[i][0]
        d.family = earlier_name[: len(earlier_name) - len(d.given)]
        d.family_kana = earlier_kana[: len(earlier_kana) - len(d.given_kana)]
    else:
        raise ValueError(slip)


def _notation(slip: str, d: _Draft, rng: random.Random) -> FiveItems:
    items = d.items()
    if slip == "spacing" and rng.random() < 0.5 and " " in items.address:
        # the other direction: the address's spaces left out, the kana's doubled
        return FiveItems(
            items.name,
            f"{d.family_kana}  {d.given_kana}",
            items.birth_date,
            items.sex,
            items.address.replace(" ", ""),
        )
    return _variant(_DATA_HOW[slip], d.row(), items, rng)


def _build_roll(
    reg: Register, out: Register, counts: dict[str, int], seed: int, tick: Callable[[int], None]
) -> tuple[Roll, dict[str, int]]:
    rng = random.Random(seed * 1_000_003 + 2)
    dr = _Drafter(reg, out, rng)
    plan: list[str] = []
    for kind, n in counts.items():
        plan += [kind] * n
    rng.shuffle(plan)
    drawn: dict[str, int] = dict.fromkeys(ROLL_MIX, 0)
    rows: list[tuple[FiveItems, str | None, str | None, int, str, str]] = []
    for kind in plan:
        rows.append(_record(kind, dr, drawn))
        if len(rows) % 5000 == 0:
            tick(5000)
    tick(len(rows) % 5000)
    rng.shuffle(rows)
    roll = Roll()
    for n, (items, claimed, truth, person, kind, detail) in enumerate(rows):
        roll.record_id.append(f"R{n + 1:07d}")
        roll.name.append(items.name)
        roll.kana.append(items.name_kana)
        roll.birth.append(items.birth_date)
        roll.sex.append(items.sex)
        roll.address.append(items.address)
        roll.claimed.append(claimed)
        roll.truth.append(truth)
        roll.person.append(person)
        roll.kind.append(kind)
        roll.detail.append(detail)
    return roll, drawn


def _record(
    kind: str, dr: _Drafter, drawn: dict[str, int]
) -> tuple[FiveItems, str | None, str | None, int, str, str]:
    reg, rng = dr.reg, dr.rng
    if kind in _OUTSIDE_KINDS:
        own = dr.out.items(dr.outsider())
        if kind == "lookalike":
            src = dr.living[rng.randrange(len(dr.living))]
            s = reg.items(src)
            own = FiveItems(s.name, s.name_kana, s.birth_date, s.sex, own.address)
        never = dr.never_issued() if rng.random() < OUTSIDER_NUMBER_SHARE else None
        drawn[kind] += 1
        return own, never, None, -1, kind, "never-issued number" if never else "no number"

    slips: tuple[str, ...] = ()
    i: int | None = None
    if kind in dr.pools:  # the people the kind needs, drawn in advance
        i = dr.take(dr.pools[kind])
        slips = (kind,) if kind in CONTENT_SLIPS else ()
    elif kind == "combined":
        notation = rng.choice(NOTATION_SLIPS)
        content = rng.choice(CONTENT_SLIPS)
        pool = dr.pools.get(content)
        if pool is not None:
            i = dr.take(pool, lambda j: _applicable(notation, reg, j, rng))
        else:
            i = dr.any_living(
                lambda j: _applicable(notation, reg, j, rng) and _applicable(content, reg, j, rng)
            )
        slips = (content, notation)
    elif kind in ("clean", "number_typo_1", "number_typo_2"):
        i = dr.any_living()
    else:
        i = dr.any_living(lambda j: _applicable(kind, reg, j, rng))
        slips = (kind,)
    if i is None:  # the kind's people ran out: a clean record instead
        kind, slips = "clean", ()
        i = dr.any_living(tries=10_000)
        if i is None:
            raise ValueError("the register is too small for a roll this size")
    drawn[kind] += 1

    d = _draft(reg, i)
    items: FiveItems | None = None
    for slip in slips:
        if slip in NOTATION_SLIPS:
            items = _notation(slip, d, rng)
        else:
            _apply(slip, d, reg, i, rng)
    if items is None:
        items = d.items()

    number = reg.number[i]
    if kind == "family_number":
        others = [j for j in dr.households[reg.household[i]] if j != i]
        j = others[rng.randrange(len(others))]
        claimed: str | None = reg.number[j]
        detail = f"number of household member ({reg.relationship[j]})"
    elif kind == "number_typo_1":
        claimed, detail = number_typo(number, rng), "one digit mistyped"
    elif kind == "number_typo_2":
        claimed, detail = _typo_2(number, rng), "two digits mistyped or swapped"
    elif rng.random() < NUMBER_SHARE:
        claimed, detail = number, "own number"
    else:
        claimed, detail = None, "no number"
    if slips:
        detail = "+".join(slips) + "; " + detail
    return items, claimed, reg.code[i], i, kind, detail


def generate_world(
    register_size: int,
    roll_size: int,
    seed: int,
    *,
    tick: Callable[[int], None] | None = None,
) -> World:
    """A register of `register_size` people with history and a roll of `roll_size` records
    about them (and about people not in it), deterministic given `seed`. `tick(n)` is called
    as rows are generated (register + outsiders, then the roll's records)."""
    if roll_size > register_size // 2 + 1 and roll_size > 50:
        raise ValueError("the roll may be at most about half the register")
    if register_size < 100 or roll_size < 1:
        raise ValueError("a register of at least 100 people and a roll of at least 1 record")
    counts = _counts(roll_size)
    outsiders = counts["not_in_register"] + counts["lookalike"]
    t = tick or (lambda n: None)
    reg, out, history = _build_register(register_size, outsiders, seed, t)
    roll, drawn = _build_roll(reg, out, counts, seed, t)
    return World(reg, roll, seed, drawn, history)
