"""The general check (総点検) of links, `mynumber.agency.checks`, at `--checks-links` links
(``--only checks``; the documented run is 10,000,000 links on this 2-core machine).

**Data.** A register of `--checks-register` people (default: as many as links, at most
2,000,000 — generating and normalising a register costs ≈ 0.2 ms a person, so past that links
name the same people again, as the extracts of several agencies would):
:func:`mynumber.synth.generate_residents`, with 1.5% of people deceased, 0.5% moved out, 8%
with an earlier address and 5% of women with an earlier family name; every person has a
number. The extract (:func:`write_extract`), one link a line, each about a random person:
82% as registered, 6% a notation variant (half-width kana, full-width address digits, the name
without its space), 3% an earlier address, 2% an earlier name, 1.5% another household member's
number, 2% a different person (one kana off, the birth year off, or another person's number),
1.5% a number J-LIS does not know (a check-digit typo, never issued, retired); links about
deceased people come on their own.

**Figure.** :func:`mynumber.agency.checks.check_links` end to end — read and check the CSV,
resolve the numbers, classify, write report.csv and report.html — in links/s, with the time
of each stage and the peak RSS of the process.

**Floor.** The same classification in plain Python on a sample of 100,000 links
(:func:`python_floor`): the CSV read with the csv module, owners and households from dicts
built before the clock starts, :func:`mynumber.agency.checks.classify` for every link — what
one would write without DuckDB. Its classes must equal the DuckDB path's for every sampled
link; any difference is listed and makes the run exit 1.
"""

from __future__ import annotations

import csv
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jaconv
import pyarrow as pa
import pyarrow.compute as pc

from mynumber.agency.bulk import Register, register_table
from mynumber.agency.checks import (
    CLASSES,
    EXTRACT_COLUMNS,
    CheckResult,
    Owner,
    _number_or_none,
    check_links,
    classify,
    owner_of,
)
from mynumber.dates import parse_date, parse_sex
from mynumber.identity import FiveItems
from mynumber.numbers import individual_check_digit
from mynumber.synth import generate_residents

from .common import Result, err, peak_rss_mib, progress

__all__ = ["ChecksRun", "World", "checks_results", "make_world", "run_checks", "write_extract"]

SAMPLE = 100_000
DEFAULT_REGISTER_CAP = 2_000_000
_EARLIER_FAMILIES = (
    ("佐藤", "サトウ"),
    ("鈴木", "スズキ"),
    ("田中", "タナカ"),
    ("渡辺", "ワタナベ"),
)


def number_for(i: int, offset: int = 0) -> str:
    """A distinct valid individual number for each `i` (multiplication by a unit mod 10¹¹)."""
    body = f"{((i + offset) * 2654435761 + 10**10) % 10**11:011d}"
    return body + individual_check_digit(body)


@dataclass
class World:
    """A register and what the extract needs about each person, as Python columns."""

    register: Register
    codes: list[str]
    names: list[str]
    kanas: list[str]
    births: list[str]
    sexes: list[str]
    addresses: list[str]
    households: list[str]
    earlier_address: dict[int, str] = field(default_factory=dict)
    earlier_name: dict[int, tuple[str, str]] = field(default_factory=dict)
    retired: list[str] = field(default_factory=list)
    """Retired numbers (their former owners are people of the register)."""

    @property
    def size(self) -> int:
        return len(self.codes)


def make_world(n: int, seed: int, tick: Callable[[int], None] | None = None) -> World:
    """A register of `n` people (see the module docstring) with a dict resolver."""
    rng = random.Random(seed)
    w = World(Register(pa.table({}), lambda ns: {}), [], [], [], [], [], [], [])
    tables: list[pa.Table] = []
    chunk: list[dict[str, Any]] = []
    answers: dict[str, tuple[str, str | None]] = {}
    for i, r in enumerate(generate_residents(n, seed)):
        name = f"{r['family_name']} {r['given_name']}"
        kana = f"{r['family_name_kana']} {r['given_name_kana']}"
        x = rng.random()
        status = "deceased" if x < 0.015 else "moved_out" if x < 0.02 else "active"
        row: dict[str, Any] = {
            "resident_code": r["resident_code"],
            "status": status,
            "household_id": r["household_id"],
            "name": name,
            "name_kana": kana,
            "birth_date": r["birth_date"],
            "sex": r["sex"],
            "address": r["address"],
        }
        if rng.random() < 0.08:
            old = f"東京都港区芝{rng.randint(1, 5)}丁目{rng.randint(1, 20)}番{rng.randint(1, 30)}号"
            row["earlier_addresses"] = [old]
            w.earlier_address[i] = old
        if r["sex"] == "2" and rng.random() < 0.05:
            fam, fam_kana = rng.choice(_EARLIER_FAMILIES)
            if fam != r["family_name"]:
                old_name = (f"{fam} {r['given_name']}", f"{fam_kana} {r['given_name_kana']}")
                row["earlier_names"], row["earlier_kanas"] = [old_name[0]], [old_name[1]]
                w.earlier_name[i] = old_name
        chunk.append(row)
        w.codes.append(r["resident_code"])
        w.names.append(name)
        w.kanas.append(kana)
        w.births.append(r["birth_date"])
        w.sexes.append(r["sex"])
        w.addresses.append(r["address"])
        w.households.append(r["household_id"])
        answers[number_for(i)] = ("active", r["resident_code"])
        if len(chunk) == 50_000:
            tables.append(register_table(chunk))
            chunk = []
        if tick is not None:
            tick(1)
    if chunk:
        tables.append(register_table(chunk))
    for k in range(max(n // 500, 1)):
        retired = number_for(k, offset=3 * 10**9)
        answers[retired] = ("retired", w.codes[k % n])
        w.retired.append(retired)
    people = pa.concat_tables(tables) if tables else register_table([])

    def resolve(numbers: Sequence[str]) -> Mapping[str, tuple[str, str | None]]:
        return {x: answers.get(x, ("unknown", None)) for x in numbers}

    w.register = Register(people, resolve)
    return w


def _typo(kana: str, rng: random.Random) -> str:
    spots = [i for i, ch in enumerate(kana) if ch != " "]
    i = rng.choice(spots)
    return kana[:i] + ("ア" if kana[i] != "ア" else "イ") + kana[i + 1 :]


_MIX = (
    ("variant", 0.06),
    ("moved", 0.03),
    ("name_changed", 0.02),
    ("household_member_number", 0.015),
    ("different_person", 0.02),
    ("number_unknown", 0.015),
)


def extract_rows(w: World, links: int, seed: int) -> Iterator[tuple[list[str], str]]:
    """(CSV row, kind) for each link of the extract (see the module docstring)."""
    rng = random.Random(seed)
    n = w.size
    moved = sorted(w.earlier_address)
    renamed = sorted(w.earlier_name)
    bands: list[tuple[float, str]] = []
    edge = 0.0
    for kind, share in _MIX:
        edge += share
        bands.append((edge, kind))
    for j in range(links):
        x = rng.random()
        kind = next((k for e, k in bands if x < e), "as_registered")
        if kind == "moved" and moved:
            p = rng.choice(moved)
        elif kind == "name_changed" and renamed:
            p = rng.choice(renamed)
        else:
            p = rng.randrange(n)
        name, kana, birth, sex, addr = w.names[p], w.kanas[p], w.births[p], w.sexes[p], w.addresses[p]  # fmt: skip
        number = number_for(p)
        if kind == "variant":
            y = rng.random()
            if y < 0.4:
                kana = jaconv.z2h(kana, kana=True, ascii=False, digit=False)
            elif y < 0.7:
                addr = jaconv.h2z(addr, kana=False, ascii=False, digit=True)
            else:
                name = name.replace(" ", "")
        elif kind == "moved" and p in w.earlier_address:
            addr = w.earlier_address[p]
        elif kind == "name_changed" and p in w.earlier_name:
            name, kana = w.earlier_name[p]
        elif kind == "household_member_number":
            q = p + 1 if p + 1 < n and w.households[p + 1] == w.households[p] else p - 1
            if q >= 0 and w.households[q] == w.households[p]:
                number = number_for(q)
            else:
                kind = "as_registered"
        elif kind == "different_person":
            y = rng.random()
            if y < 0.4:
                kana = _typo(kana, rng)
            elif y < 0.7:
                birth = f"{int(birth[:4]) - 1}{birth[4:]}"
                if birth.endswith("02-29"):
                    birth = birth[:-2] + "28"
            else:
                number = number_for(rng.randrange(n))
        elif kind == "number_unknown":
            y = rng.random()
            if y < 0.5:
                number = number[:11] + str((int(number[11]) + 1) % 10)
            elif y < 0.8:
                number = number_for(j, offset=5 * 10**9)
            else:
                number = rng.choice(w.retired)
        else:
            kind = "as_registered"
        yield [f"L{j:09d}", number, name, kana, birth, sex, addr], kind


def write_extract(
    w: World, links: int, seed: int, path: Path, tick: Callable[[int], None] | None = None
) -> Counter[str]:
    """Write the extract to `path` (UTF-8); the kinds drawn."""
    kinds: Counter[str] = Counter()
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(EXTRACT_COLUMNS)
        for k, (row, kind) in enumerate(extract_rows(w, links, seed), start=1):
            out.writerow(row)
            kinds[kind] += 1
            if tick is not None and k % 10_000 == 0:
                tick(10_000)
    if tick is not None:
        tick(links % 10_000)
    return kinds


def _read_sample(path: Path, sample: int) -> list[dict[str, str]]:
    batch: list[dict[str, str]] = []
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            batch.append(row)
            if len(batch) == sample:
                break
    return batch


def python_floor(w: World, path: Path, sample: int) -> tuple[float, dict[str, str]]:
    """Seconds, and record id → class, of plain-Python classification of the first `sample`
    links of `path`: read, numbers checked and resolved, each link classified. The owners and
    their households are put in dicts before the clock starts."""
    batch = _read_sample(path, sample)
    nums = {_number_or_none(r["individual_number"]) for r in batch} - {None}
    owners = {o for _s, o in w.register.resolve(sorted(n for n in nums if n)).values() if o}
    people = w.register.people
    mine = people.filter(pc.is_in(people["resident_code"], pa.array(sorted(owners), pa.string())))
    homes = sorted({h for h in mine["household_id"].to_pylist() if h is not None})
    rows = people.filter(pc.is_in(people["household_id"], pa.array(homes, pa.string())))
    by_code: dict[str, Owner] = {}
    members: dict[str, list[Owner]] = {}
    for row in [*mine.to_pylist(), *rows.to_pylist()]:
        o = owner_of(row)
        if o.resident_code in by_code:
            continue
        by_code[o.resident_code] = o
        if o.household_id is not None:
            members.setdefault(o.household_id, []).append(o)
    started = time.perf_counter()
    batch = _read_sample(path, sample)
    numbers = {r["record_id"]: _number_or_none(r["individual_number"]) for r in batch}
    answers = w.register.resolve(sorted({n for n in numbers.values() if n is not None}))
    out: dict[str, str] = {}
    for row in batch:
        items = FiveItems(
            row["name"],
            row["name_kana"],
            parse_date(row["birth_date"]),
            parse_sex(row["sex"]),
            row["address"],
        )
        num = numbers[row["record_id"]]
        status, owner_code = answers.get(num, ("unknown", None)) if num else (None, None)
        owner = by_code.get(owner_code) if owner_code else None
        household = members.get(owner.household_id or "", []) if owner else []
        out[row["record_id"]] = classify(items, num is not None, status, owner, household).cls
    return time.perf_counter() - started, out


@dataclass
class ChecksRun:
    links: int
    register: int
    seconds: float
    stage_seconds: dict[str, float]
    counts: dict[str, int]
    kinds: dict[str, int]
    slow: int
    floor_seconds: float
    floor_links: int
    generate_seconds: float
    peak_rss_mib: float
    wrong: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "links": self.links,
            "register": self.register,
            "seconds": self.seconds,
            "stage_seconds": self.stage_seconds,
            "counts": self.counts,
            "kinds": self.kinds,
            "through_python_compare": self.slow,
            "floor_seconds": self.floor_seconds,
            "floor_links": self.floor_links,
            "generate_seconds": self.generate_seconds,
            "peak_rss_mib": self.peak_rss_mib,
            "wrong": self.wrong,
        }


def run_checks(links: int, register: int | None, seed: int) -> ChecksRun:
    """Generate, then time the DuckDB check and the plain-Python floor (module docstring)."""
    n = register or min(links, DEFAULT_REGISTER_CAP)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mynumber-bench-checks-") as tmp:
        root = Path(tmp)
        extract = root / "extract.csv"
        with progress() as bar:
            task = bar.add_task("register (generate + keys)", total=n)
            world = make_world(n, seed, lambda k: bar.advance(task, k))
            task = bar.add_task("extract (write CSV)", total=links)
            kinds = write_extract(world, links, seed + 1, extract, lambda k: bar.advance(task, k))
        generated = time.perf_counter() - t0
        err.print(
            f"[dim]checks: {n:,} people, {links:,} links generated in {generated:,.0f} s; "
            f"extract {extract.stat().st_size / 2**20:,.0f} MiB"
        )
        with progress() as bar:

            def tick(label: str, total: int) -> Callable[[int], None]:
                task = bar.add_task(label, total=total)
                return lambda k: bar.advance(task, k)

            started = time.perf_counter()
            result: CheckResult = check_links(
                world.register, extract, root / "report", progress=tick
            )
            seconds = time.perf_counter() - started
        rss = peak_rss_mib()
        sample = min(SAMPLE, links)
        floor_seconds, floor = python_floor(world, extract, sample)
        wrong: list[str] = []
        with (root / "report" / "report.csv").open(encoding="utf-8", newline="") as fh:
            for k, row in enumerate(csv.DictReader(fh)):
                if k >= sample:
                    break
                if floor.get(row["record_id"]) != row["class"]:
                    wrong.append(
                        f"{row['record_id']}: duckdb {row['class']}, python {floor.get(row['record_id'])}"
                    )
    return ChecksRun(
        links=links,
        register=n,
        seconds=seconds,
        stage_seconds=result.seconds,
        counts=result.counts,
        kinds=dict(kinds),
        slow=result.slow,
        floor_seconds=floor_seconds,
        floor_links=sample,
        generate_seconds=generated,
        peak_rss_mib=rss,
        wrong=wrong,
    )


def checks_results(run: ChecksRun) -> list[Result]:
    stages = ", ".join(f"{k} {v:,.1f} s" for k, v in run.stage_seconds.items())
    counts = ", ".join(f"{c} {run.counts[c]:,}" for c in CLASSES)
    return [
        Result(
            benchmark="general check (check_links, DuckDB)",
            backend="duckdb",
            value=run.links / run.seconds,
            unit="links/s",
            count=run.links,
            seconds=run.seconds,
            baseline=f"plain-Python classify() on {run.floor_links:,} links",
            baseline_value=run.floor_links / run.floor_seconds,
            baseline_seconds=run.floor_seconds,
            notes=[
                f"{run.links:,} links against {run.register:,} people; stages: {stages}",
                f"classes: {counts}",
                f"{run.slow:,} links went through Python compare(); peak RSS "
                f"{run.peak_rss_mib:,.0f} MiB; generation {run.generate_seconds:,.0f} s "
                "(not timed)",
            ],
        )
    ]
