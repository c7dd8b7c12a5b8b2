"""What others do with the same roll, timed in the same run (benchmarks/README.md §7).

All of them see the fields with white space (ASCII and ideographic) removed — the least anyone
cleaning a roll does — and nothing else: no kana folding, no variant kanji, no address notation.
The register side of every baseline is prepared before its clock starts (as mynumber's register
keys are: the J-LIS mirror stores them); the roll side, the joins and the choice are timed.

- (a) **insurers' rule** (the 3情報 of 2023): exact kana name + birth date + sex, against the
  current registration. ``unique``: linked when exactly one person matches; ``any``: linked to
  one of them whenever any matches (what some insurers did: a different person with the same kana
  and birth date got the link).
- (a″) **number as written**: a claimed number that passes its check digit and belongs to
  someone is linked to its owner without comparing anything; records without one go through
  (a) ``any`` — insurers' practice before June 2023, the cause of the family-number mislinks.
- (b) **exact kanji name + birth date**, linked when exactly one person matches.
- (c) **plain Splink** 5 on DuckDB with its stock comparisons (NameComparison on the kanji and
  kana names, DateOfBirthComparison, ExactMatch on sex, LevenshteinAtThresholds on the address),
  blocking on the birth date, on kana + birth year and on name + address; u by random sampling,
  m by two EM sessions (blocked on birth date, then on kana + birth year); the best-scoring
  register person per record. Its links are counted at a threshold fixed in advance
  (match probability ≥ 0.99) and at the best threshold the ground truth allows (see
  :mod:`.metrics`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from mynumber import duck
from mynumber.numbers import individual_check_digit

from .generate import Register, Roll

__all__ = [
    "EXACT_KANJI",
    "INSURERS_ANY",
    "INSURERS_UNIQUE",
    "NUMBER_AS_WRITTEN",
    "SPLINK_THRESHOLD",
    "Answer",
    "SplinkAnswer",
    "exact_kanji_rule",
    "insurer_rules",
    "number_as_written",
    "plain_splink",
    "register_arrow",
    "roll_arrow",
]

SPLINK_THRESHOLD = 0.99
"""Match probability at or above which plain Splink's best candidate counts as linked, fixed
without looking at the ground truth."""

INSURERS_UNIQUE = "(a) insurers' rule: kana + birth date + sex, unique"
INSURERS_ANY = "(a′) insurers' rule, linked even when several match"
NUMBER_AS_WRITTEN = "(a″) number as written, else (a′)"
EXACT_KANJI = "(b) exact kanji name + birth date, unique"

_SPACES = str.maketrans("", "", " \u3000\t")


def _strip(s: str) -> str:
    return s.translate(_SPACES)


@dataclass
class Answer:
    """One method's links, one entry per roll record (None: not linked)."""

    method: str
    linked: list[str | None]
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class SplinkAnswer:
    """Plain Splink's best candidate per roll record and its match weight (None: no pair)."""

    best: list[str | None]
    weight: list[float | None]
    seconds: float
    stage_seconds: dict[str, float]
    pairs: int
    """Pairs scored by predict()."""

    def linked_at(self, weight: float) -> list[str | None]:
        """Best candidates whose match weight is at least `weight`."""
        return [
            b if w is not None and w >= weight else None
            for b, w in zip(self.best, self.weight, strict=True)
        ]


def _arrow(
    name: Sequence[str],
    kana: Sequence[str],
    birth: Sequence[dt.date],
    sex: Sequence[int],
    address: Sequence[str],
) -> pa.Table:
    """Columns as the baselines see them (white space removed); uid = index."""
    return pa.table(
        {
            "uid": pa.array(range(len(name)), pa.int64()),
            "name": [_strip(s) for s in name],
            "name_kana": [_strip(s) for s in kana],
            "birth_date": pa.array(birth, pa.date32()),
            "birth_year": pa.array([b.year for b in birth], pa.int16()),
            "sex": pa.array(sex, pa.int8()),
            "address": [_strip(a) for a in address],
        }
    )


def register_arrow(reg: Register) -> pa.Table:
    """The register as the baselines see it (white space removed, current values only)."""
    people = range(len(reg))
    return _arrow(
        [reg.name(i) for i in people],
        [reg.kana(i) for i in people],
        reg.birth,
        reg.sex,
        reg.address,
    )


def roll_arrow(roll: Roll) -> pa.Table:
    """The roll as the baselines see it (white space removed)."""
    return _arrow(roll.name, roll.kana, roll.birth, roll.sex, roll.address)


def _match_counts(reg_t: pa.Table, roll_t: pa.Table, on: str) -> tuple[list[int], list[int | None]]:
    """Per roll record: how many register people share the columns `on`, and the lowest
    register index among them."""
    con = duck.connect()
    con.register("reg", reg_t)
    con.register("roll", roll_t)
    rows = con.execute(
        f"SELECT roll.uid, count(*), min(reg.uid) FROM roll JOIN reg USING ({on}) GROUP BY roll.uid"
    ).fetchall()
    con.close()
    count = [0] * roll_t.num_rows
    first: list[int | None] = [None] * roll_t.num_rows
    for uid, n, lo in rows:
        count[uid] = int(n)
        first[uid] = int(lo)
    return count, first


def insurer_rules(reg: Register, reg_t: pa.Table, roll: Roll) -> tuple[Answer, Answer]:
    """(a) exact kana + birth date + sex: linked if exactly one matches / if any matches."""
    t0 = time.perf_counter()
    roll_t = roll_arrow(roll)
    count, first = _match_counts(reg_t, roll_t, "name_kana, birth_date, sex")
    unique = [
        reg.code[f] if n == 1 and f is not None else None for n, f in zip(count, first, strict=True)
    ]
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    anyone = [reg.code[f] if f is not None else None for f in first]
    seconds_any = seconds + time.perf_counter() - t1
    return (
        Answer(INSURERS_UNIQUE, unique, seconds),
        Answer(INSURERS_ANY, anyone, seconds_any),
    )


def number_as_written(
    roll: Roll,
    resolve: Callable[[Sequence[str]], dict[str, tuple[str, str | None]]],
    fallback: Answer,
) -> Answer:
    """(a″) a valid, issued claimed number → its owner; no such number → `fallback`'s link."""
    t0 = time.perf_counter()
    valid: dict[int, str] = {}
    for i, c in enumerate(roll.claimed):
        if (
            c is not None
            and len(c) == 12
            and c.isdigit()
            and individual_check_digit(c[:11]) == c[11]
        ):
            valid[i] = c
    status = resolve(sorted(set(valid.values())))
    linked: list[str | None] = []
    for i in range(len(roll)):
        c = valid.get(i)
        if c is not None and status[c][1] is not None:
            linked.append(status[c][1])
        elif roll.claimed[i] is None:
            linked.append(fallback.linked[i])
        else:
            linked.append(None)  # a number that fails or nobody holds: sent back
    seconds = time.perf_counter() - t0 + fallback.seconds
    return Answer(NUMBER_AS_WRITTEN, linked, seconds)


def exact_kanji_rule(reg: Register, reg_t: pa.Table, roll: Roll) -> Answer:
    """(b) exact kanji name + birth date, linked if exactly one person matches."""
    t0 = time.perf_counter()
    roll_t = roll_arrow(roll)
    count, first = _match_counts(reg_t, roll_t, "name, birth_date")
    linked = [
        reg.code[f] if n == 1 and f is not None else None for n, f in zip(count, first, strict=True)
    ]
    return Answer(EXACT_KANJI, linked, time.perf_counter() - t0)


def plain_splink(
    reg: Register,
    reg_t: pa.Table,
    roll: Roll,
    seed: int,
    *,
    tick: Callable[[str], None] | None = None,
) -> SplinkAnswer:
    """(c) plain Splink with stock comparisons; the best register person per roll record."""
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    logging.getLogger("splink").setLevel(logging.WARNING)
    say = tick or (lambda s: None)
    stages: dict[str, float] = {}
    t0 = last = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        stages[name] = now - last
        last = now
        say(name)

    left = roll_arrow(roll).rename_columns({"uid": "unique_id"})
    right = reg_t.rename_columns({"uid": "unique_id"})
    con = duck.connect()
    db = DuckDBAPI(connection=con)
    settings = SettingsCreator(
        link_type="link_only",
        comparisons=[
            cl.NameComparison("name"),
            cl.NameComparison("name_kana"),
            cl.DateOfBirthComparison("birth_date", input_is_string=False),
            cl.ExactMatch("sex"),
            cl.LevenshteinAtThresholds("address"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("birth_date"),
            block_on("name_kana", "birth_year"),
            block_on("name", "address"),
        ],
        probability_two_random_records_match=1 / len(reg),
    )
    linker = Linker(
        [
            db.register(left, dataset_display_name="roll"),
            db.register(right, dataset_display_name="register"),
        ],
        settings,
    )
    lap("prepare")
    linker.training.estimate_u_using_random_sampling(max_pairs=5e6, seed=seed)
    lap("u (random sampling)")
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("birth_date"), max_pairs=2e6
    )
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("name_kana", "birth_year"), max_pairs=2e6
    )
    lap("m (EM, 2 sessions)")
    pred = linker.inference.predict()
    lap("predict")
    table = pred.physical_name
    pairs = int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
    rows = con.execute(
        f"""
        WITH p AS (
            SELECT CASE WHEN source_dataset_l = 'roll' THEN unique_id_l ELSE unique_id_r END AS rid,
                   CASE WHEN source_dataset_l = 'roll' THEN unique_id_r ELSE unique_id_l END AS pid,
                   match_weight AS w
            FROM {table}
        )
        SELECT rid, first(pid ORDER BY w DESC, pid), max(w) FROM p GROUP BY rid
        """
    ).fetchall()
    best: list[str | None] = [None] * len(roll)
    weight: list[float | None] = [None] * len(roll)
    for rid, pid, w in rows:
        best[int(rid)] = reg.code[int(pid)]
        weight[int(rid)] = float(w)
    lap("best candidate")
    con.close()
    return SplinkAnswer(best, weight, time.perf_counter() - t0, stages, pairs)
