"""The sample roll and extract drawn from a platform's residents (mynumber.agency.samples)."""

from __future__ import annotations

import random
from collections import Counter

from mynumber.agency.samples import kana_typo, number_typo, sample_extract, sample_roll
from mynumber.numbers import individual_check_digit
from mynumber.synth import generate_residents


def residents(n: int = 600) -> list[dict[str, str]]:
    rng = random.Random(3)
    rows = list(generate_residents(n, 5))
    for r in rows:
        body = f"{rng.randrange(10**10, 10**11):011d}"
        r["individual_number"] = body + individual_check_digit(body)
    return rows


def test_the_roll_is_deterministic_and_has_every_kind_with_what_it_says() -> None:
    people = residents()
    rows, kinds = sample_roll(people, 500)
    assert (rows, kinds) == sample_roll(people, 500)
    assert len(rows) == 500 and len({r[0] for r in rows}) == 500
    seen = Counter(kinds.values())
    for kind in ("clean", "half_width", "hiragana", "kana_typo", "family_number", "no_number"):
        assert seen[kind] > 0, seen
    by_number = {p["individual_number"]: p for p in people}
    for row in rows:
        rid, name, kana, _birth, _sex, _address, number = row
        kind = kinds[rid]
        if kind == "clean":
            p = by_number[number]
            assert (name, kana) == (
                f"{p['family_name']} {p['given_name']}",
                f"{p['family_name_kana']} {p['given_name_kana']}",
            )
        elif kind == "family_number":
            owner = by_number[number]
            # the number is someone else's in the household whose member the items name
            assert (
                name != f"{owner['family_name']} {owner['given_name']}"
                or _birth != owner["birth_date"]
            )
        elif kind in ("no_number", "not_in_register"):
            assert number == ""


def test_the_extract_names_wrong_links() -> None:
    people = residents()
    rows, kinds = sample_extract(people, 400)
    assert (rows, kinds) == sample_extract(people, 400)
    numbers = {p["individual_number"] for p in people}
    seen = Counter(kinds.values())
    assert seen["ok"] > 200 and seen["family_number"] > 0 and seen["number_typo"] > 0
    for rid, number, *_ in rows:
        if kinds[rid] in ("ok", "variant", "family_number", "stranger_number"):
            assert number in numbers


def test_typos_change_exactly_one_character() -> None:
    rng = random.Random(1)
    for _ in range(200):
        n = number_typo("123456789018", rng)
        assert len(n) == 12 and sum(a != b for a, b in zip(n, "123456789018", strict=True)) == 1
        k = kana_typo("ヤマダ タロウ", rng)
        assert sum(a != b for a, b in zip(k, "ヤマダ タロウ", strict=True)) == 1
    assert kana_typo("abc", rng) == "abc"
