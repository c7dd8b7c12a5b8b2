"""The linkage benchmark's generator, ground truth and counting (benchmarks/linkage)."""

from __future__ import annotations

import math

import pytest
from benchmarks.linkage.baselines import insurer_rules, register_arrow
from benchmarks.linkage.generate import ROLL_MIX, World, generate_world
from benchmarks.linkage.metrics import measure, oracle_weight, tradeoff_curve

from mynumber.jtext import normalise_kana, normalise_name
from mynumber.numbers import individual_check_digit


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(3000, 1500, 11)


def _indexes(w: World, kind: str) -> list[int]:
    return [i for i, k in enumerate(w.roll.kind) if k == kind]


def test_the_generator_is_deterministic() -> None:
    a = generate_world(1000, 400, 3)
    b = generate_world(1000, 400, 3)
    c = generate_world(1000, 400, 4)
    for col in ("name", "kana", "birth", "address", "claimed", "truth", "kind", "detail"):
        assert getattr(a.roll, col) == getattr(b.roll, col)
    assert a.register.number == b.register.number
    assert a.register.status == b.register.status
    assert a.register.earlier_addresses == b.register.earlier_addresses
    assert a.roll.truth != c.roll.truth


def test_every_kind_appears_in_the_proportions_asked(world: World) -> None:
    assert sum(ROLL_MIX.values()) == pytest.approx(1.0)
    assert len(world.roll) == 1500
    for kind, share in ROLL_MIX.items():
        n = len(_indexes(world, kind))
        assert n == world.kind_counts[kind]
        assert n > 0, kind
        if kind != "clean":  # clean takes what a kind short of people gives back
            assert n <= round(1500 * share) + 1, kind
    assert len(set(world.roll.record_id)) == 1500
    truths = [t for t in world.roll.truth if t is not None]
    assert len(truths) == len(set(truths))  # each person at most once


def test_register_numbers_are_valid_and_unique(world: World) -> None:
    nums = world.register.number
    assert len(set(nums)) == len(nums)
    assert all(len(n) == 12 and individual_check_digit(n[:11]) == n[11] for n in nums)


def test_clean_records_are_their_person_as_registered(world: World) -> None:
    reg, roll = world.register, world.roll
    for kind in ("clean", "twin", "same_name_birthday", "junior", "deceased"):
        for i in _indexes(world, kind):
            p = roll.person[i]
            assert roll.truth[i] == reg.code[p]
            assert roll.items(i) == reg.items(p)
            assert roll.claimed[i] in (None, reg.number[p])
    for i in _indexes(world, "deceased"):
        assert world.status_of[roll.truth[i] or ""] == "deceased"
    for i in _indexes(world, "clean"):
        assert world.status_of[roll.truth[i] or ""] != "deceased"
    for kind, tag in (("twin", "twin"), ("junior", "junior")):
        for i in _indexes(world, kind):
            assert tag in reg.tags[roll.person[i]]


def test_hard_cases_are_what_they_claim(world: World) -> None:
    reg, roll = world.register, world.roll
    for i in _indexes(world, "twin"):
        p = roll.person[i]
        twins = [
            j
            for j in range(len(reg))
            if j != p and reg.household[j] == reg.household[p] and reg.birth[j] == reg.birth[p]
        ]
        assert twins and all(reg.given[j] != reg.given[p] for j in twins)
        assert all(reg.family[j] == reg.family[p] for j in twins)
    for i in _indexes(world, "same_name_birthday"):
        p = roll.person[i]
        others = [
            j
            for j in range(len(reg))
            if j != p
            and (reg.name(j), reg.kana(j), reg.birth[j], reg.sex[j])
            == (reg.name(p), reg.kana(p), reg.birth[p], reg.sex[p])
        ]
        assert others and any(reg.household[j] != reg.household[p] for j in others)


def test_number_errors_claim_the_right_wrong_number(world: World) -> None:
    reg, roll = world.register, world.roll
    members: dict[str, list[int]] = {}
    for j, h in enumerate(reg.household):
        members.setdefault(h, []).append(j)
    for i in _indexes(world, "family_number"):
        p = roll.person[i]
        assert roll.items(i) == reg.items(p)
        claimed = roll.claimed[i]
        assert claimed is not None and claimed != reg.number[p]
        assert claimed in {reg.number[j] for j in members[reg.household[p]] if j != p}
    passed = 0
    for kind in ("number_typo_1", "number_typo_2"):
        for i in _indexes(world, kind):
            own, claimed = reg.number[roll.person[i]], roll.claimed[i]
            assert claimed is not None and len(claimed) == 12 and claimed != own
            diff = [k for k in range(12) if own[k] != claimed[k]]
            if kind == "number_typo_1":
                assert len(diff) == 1
            else:  # two digits changed, or two neighbours swapped
                assert len(diff) == 2
            passed += individual_check_digit(claimed[:11]) == claimed[11]
    assert passed < len(_indexes(world, "number_typo_1")) // 2  # most fail the check digit


def test_slips_change_what_they_say_and_only_that(world: World) -> None:
    reg, roll = world.register, world.roll
    for i in _indexes(world, "stale_address"):
        p = roll.person[i]
        assert roll.address[i] in reg.earlier_addresses[p] and roll.address[i] != reg.address[p]
        assert (roll.name[i], roll.kana[i], roll.birth[i]) == (
            reg.name(p),
            reg.kana(p),
            reg.birth[p],
        )
    for i in _indexes(world, "unknown_address"):
        p = roll.person[i]
        assert roll.address[i] not in (reg.address[p], *reg.earlier_addresses.get(p, ()))
    for i in _indexes(world, "married_name"):
        p = roll.person[i]
        assert roll.name[i] in reg.earlier_names[p] and roll.kana[i] in reg.earlier_kanas[p]
    for i in _indexes(world, "day_month_swap"):
        b, r = reg.birth[roll.person[i]], roll.birth[i]
        assert (r.year, r.month, r.day) == (b.year, b.day, b.month) and r != b
    for i in _indexes(world, "year_off"):
        assert abs(roll.birth[i].year - reg.birth[roll.person[i]].year) == 1
    # notation the documented normalisation declares equal
    for kind in ("hiragana", "half_width", "small_kana", "long_vowel", "spacing"):
        for i in _indexes(world, kind):
            p = roll.person[i]
            assert normalise_kana(roll.kana[i]) == normalise_kana(reg.kana(p)), kind
            assert normalise_name(roll.name[i]) == normalise_name(reg.name(p)), kind
    for i in _indexes(world, "variant_kanji"):
        p = roll.person[i]
        assert roll.name[i] != reg.name(p)
        assert normalise_name(roll.name[i]) == normalise_name(reg.name(p))
    for kind in ("kana_typo", "long_vowel_ou"):
        for i in _indexes(world, kind):
            assert normalise_kana(roll.kana[i]) != normalise_kana(reg.kana(roll.person[i])), kind


def test_people_outside_the_register_have_no_ground_truth(world: World) -> None:
    reg, roll = world.register, world.roll
    codes = set(reg.code)
    numbers = set(reg.number)
    registered = {(reg.name(j), reg.kana(j), reg.birth[j], reg.sex[j]) for j in range(len(reg))}
    for kind in ("not_in_register", "lookalike"):
        for i in _indexes(world, kind):
            assert roll.truth[i] is None and roll.person[i] == -1
            assert roll.claimed[i] is None or roll.claimed[i] not in numbers
    for i in _indexes(world, "lookalike"):
        assert (roll.name[i], roll.kana[i], roll.birth[i], roll.sex[i]) in registered
    assert all(t is None or t in codes for t in roll.truth)


def test_the_insurers_rule_links_every_lookalike_to_the_wrong_person(world: World) -> None:
    reg_t = register_arrow(world.register)
    _unique, anyone = insurer_rules(world.register, reg_t, world.roll)
    q = measure(
        "a′", anyone.linked, world.roll.truth, world.roll.kind, world.status_of, seconds=1.0
    )
    lookalikes = q.by_kind["lookalike"]
    assert lookalikes.linked == lookalikes.records == lookalikes.false_links > 0
    assert lookalikes.false_outsiders == lookalikes.records
    assert q.by_kind["clean"].recall == 1.0  # the current kana, birth date and sex always match


def test_measure_counts_false_links_on_a_hand_made_list() -> None:
    status = {"A": "active", "B": "active", "C": "deceased", "D": "moved_out"}
    truth = ["A", "B", "C", None, "D", "A", "B", None, "D", "B", "A"]
    kinds = ["x", "x", "y", "z", "x", "y", "y", "z", "x", "w", "w"]
    linked = ["A", "A", "C", "B", None, None, None, None, "D", "C", None]
    review = [False, False, False, False, True, True, False, True, False, False, True]
    cands: list[tuple[str, ...]] = [(), (), (), (), ("B", "D"), ("B",), (), ("A",), (), (), ()]
    q = measure("m", linked, truth, kinds, status, seconds=2.0, review=review, candidates=cands)
    t = q.total
    assert (t.records, t.linkable, t.linked) == (11, 8, 6)
    assert t.correct == 2  # record 0 (A) and record 8 (D, moved out but alive)
    # record 1 (B's record linked to A), 3 (outsider → B), 9 (B's record → C, deceased)
    assert t.false_links == 3
    assert t.false_outsiders == 1
    assert t.deceased_links == 2  # record 2: the right person, but deceased; record 9: wrong
    assert t.review == 4
    # not linked: 4 (D, in review with D), 5 (A, not among its candidates), 6 (B, not in review),
    # 10 (A, in review with no candidate at all)
    assert (t.not_linked, t.reached, t.lost, t.no_candidates) == (4, 1, 3, 1)
    assert t.precision == pytest.approx(2 / 6)
    assert t.recall == pytest.approx(2 / 8)
    assert q.by_kind["x"].false_links == 1 and q.by_kind["z"].false_outsiders == 1
    assert q.by_kind["y"].deceased_links == 1 and q.by_kind["y"].lost == 2
    w = q.by_kind["w"]
    assert (w.false_links, w.deceased_links, w.false_outsiders) == (1, 1, 0)
    assert (w.lost, w.no_candidates) == (1, 1)
    with pytest.raises(ValueError):
        measure("m", linked[:-1], truth, kinds, status, seconds=1.0)


def test_the_oracle_threshold_is_just_above_the_best_false_candidate() -> None:
    status = {"A": "active", "B": "active", "C": "active"}
    best = ["A", "B", "A", None, "C"]
    weight: list[float | None] = [20.0, 9.0, 12.0, None, 3.0]
    truth = ["A", "B", "C", "B", None]
    assert oracle_weight(best, weight, truth) == 12.0  # record 2: C's record, best A
    curve = tradeoff_curve(best, weight, truth, status)
    assert curve[0] == (20.0, 0, pytest.approx(1 / 4))
    assert curve[-1] == (3.0, 2, pytest.approx(2 / 4))
    assert oracle_weight(["A"], [1.0], ["A"]) == -math.inf
