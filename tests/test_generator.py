"""The number generator (FF1 over the resident record code, then the check digit), pure."""

from __future__ import annotations

import random
from collections import Counter

import fastfpe.ff1
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mynumber.jlis.generator import NumberGenerator
from mynumber.numbers import DEFAULT_RESIDENT_CODE_SCHEME, parse_individual

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def resident_code(body: int) -> str:
    digits = f"{body:010d}"
    return digits + DEFAULT_RESIDENT_CODE_SCHEME.check_digit(digits)


def never(_: str) -> bool:
    return False


@pytest.fixture(scope="module")
def gen() -> NumberGenerator:
    return NumberGenerator(KEY)


@pytest.fixture(scope="module")
def sample() -> list[str]:
    rng = random.Random(8)
    bodies = rng.sample(range(10**9, 10**10), 20_000)
    return [resident_code(b) for b in bodies]


def test_numbers_are_valid_and_distinct_on_a_large_sample(
    gen: NumberGenerator, sample: list[str]
) -> None:
    numbers = [gen.generate(code, 0, never) for code in sample]
    assert len(set(numbers)) == len(sample) == 20_000
    for number in numbers:
        assert len(number) == 12 and number.isascii() and number.isdigit()
        assert parse_individual(number) == number
    # the eleven leading digits are spread over all of 0-9 at every position
    for pos in range(11):
        counts = Counter(n[pos] for n in numbers)
        assert set(counts) == set("0123456789")
        assert max(counts.values()) < 2 * min(counts.values())


def test_ff1_is_a_permutation_that_can_be_undone(gen: NumberGenerator, sample: list[str]) -> None:
    key = KEY.hex()
    for code in sample[:2000]:
        number = gen.generate(code, 0, never)
        assert fastfpe.ff1.decrypt(key, f"{0:08x}", "0123456789", number[:11]) == code


def test_same_input_same_number(gen: NumberGenerator) -> None:
    code = resident_code(1234567890)
    assert gen.generate(code, 0, never) == gen.generate(code, 0, never)
    assert NumberGenerator(KEY).generate(code, 0, never) == gen.generate(code, 0, never)


def test_generations_give_different_numbers(gen: NumberGenerator, sample: list[str]) -> None:
    for code in sample[:500]:
        numbers = {gen.generate(code, g, never) for g in range(6)}
        assert len(numbers) == 6


def test_cycle_walk_skips_taken_numbers(gen: NumberGenerator, sample: list[str]) -> None:
    for code in sample[:200]:
        first = gen.generate(code, 0, never)
        taken = {first}
        walked = gen.generate(code, 0, taken.__contains__)
        assert walked != first
        assert parse_individual(walked) == walked
        # take the next ones too: the walk keeps going and never returns a taken number
        for _ in range(5):
            taken.add(walked)
            walked = gen.generate(code, 0, taken.__contains__)
            assert walked not in taken
            assert parse_individual(walked) == walked
        assert len(taken) == 6


def test_cycle_walk_asks_about_every_candidate(gen: NumberGenerator) -> None:
    asked: list[str] = []

    def taken(number: str) -> bool:
        asked.append(number)
        return len(asked) <= 3

    result = gen.generate(resident_code(1111111111), 0, taken)
    assert len(asked) == 4 and asked[-1] == result
    assert len(set(asked)) == 4
    assert all(parse_individual(n) == n for n in asked)


def test_a_walk_that_never_ends_is_an_error_not_a_reuse(gen: NumberGenerator) -> None:
    with pytest.raises(RuntimeError):
        gen.generate(resident_code(1111111111), 0, lambda _: True)


def test_different_keys_give_unrelated_numbers(gen: NumberGenerator, sample: list[str]) -> None:
    other = NumberGenerator(OTHER_KEY)
    same_position = 0
    equal = 0
    for code in sample[:2000]:
        a, b = gen.generate(code, 0, never), other.generate(code, 0, never)
        equal += a == b
        same_position += sum(x == y for x, y in zip(a[:11], b[:11], strict=True))
    assert equal == 0
    # unrelated 11-digit strings agree in about 1 position in 10
    assert 0.07 < same_position / (2000 * 11) < 0.13


def test_twins_get_unrelated_numbers(gen: NumberGenerator) -> None:
    """Adjacent resident codes (siblings registered together) give numbers that share no
    visible structure."""
    diffs = []
    prefixes = 0
    rng = random.Random(3)
    for _ in range(1000):
        body = rng.randrange(10**9, 10**10 - 1)
        a = gen.generate(resident_code(body), 0, never)
        b = gen.generate(resident_code(body + 1), 0, never)
        diffs.append(sum(x != y for x, y in zip(a[:11], b[:11], strict=True)))
        prefixes += a[:4] == b[:4]
        assert abs(int(a) - int(b)) > 1000
    assert sum(diffs) / len(diffs) >= 8  # random: 9.9 of 11 differ
    assert min(diffs) >= 3
    assert prefixes <= 3


def test_numbers_do_not_reveal_the_code(gen: NumberGenerator, sample: list[str]) -> None:
    shared = sum(
        sum(x == y for x, y in zip(code, gen.generate(code, 0, never)[:11], strict=True))
        for code in sample[:2000]
    )
    assert shared / (2000 * 11) < 0.13


def test_bad_keys_are_refused() -> None:
    for size in (0, 8, 15, 17, 31, 33):
        with pytest.raises(ValueError):
            NumberGenerator(bytes(size))
    for size in (16, 24, 32):
        NumberGenerator(bytes(size)).generate(resident_code(1234567890), 0, never)


codes = st.integers(10**9, 10**10 - 1).map(resident_code)


@settings(max_examples=200, deadline=None)
@given(
    code=codes,
    generation=st.integers(0, 50),
    extra=st.lists(codes, max_size=20),
    block=st.integers(0, 8),
)
def test_never_returns_a_taken_number(
    code: str, generation: int, extra: list[str], block: int
) -> None:
    gen = NumberGenerator(KEY)
    # block the first `block` candidates of this walk plus other people's numbers
    taken = {gen.generate(c, generation, never) for c in extra}
    for _ in range(block):
        taken.add(gen.generate(code, generation, taken.__contains__))
    number = gen.generate(code, generation, taken.__contains__)
    assert number not in taken
    assert parse_individual(number) == number
    assert len(number) == 12
