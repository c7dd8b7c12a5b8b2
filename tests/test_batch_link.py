"""Batch linkage of a roll, stage 1, on SQLite and PostgreSQL: every record decided and stored as
a single enrolment would be; `mynumber link` end to end; a bad roll writes nothing at all; whole
individual numbers appear nowhere."""

from __future__ import annotations

import csv
import io
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select

from clikit import run_cli
from conftest import MUNI
from mynumber.agency import models as am
from mynumber.agency.batch import link_roll
from mynumber.agency.enrolment import enrol
from mynumber.agency.roll import read_roll
from mynumber.municipality.domain import EventKind
from mynumber.platform import Platform
from test_jlis import ADDRESS, D, items, number_of, register, unissued_number

AGENCY = "kenpo-batch"
HEADER = ["record_id", "name", "name_kana", "birth_date", "sex", "address", "individual_number"]
SURNAMES = [
    ("佐藤", "サトウ"),
    ("鈴木", "スズキ"),
    ("田中", "タナカ"),
    ("伊藤", "イトウ"),
    ("渡辺", "ワタナベ"),
    ("山本", "ヤマモト"),
    ("中村", "ナカムラ"),
    ("小林", "コバヤシ"),
    ("加藤", "カトウ"),
    ("山田", "ヤマダ"),
    ("吉田", "ヨシダ"),
    ("佐々木", "ササキ"),
    ("松本", "マツモト"),
    ("井上", "イノウエ"),
    ("木村", "キムラ"),
]
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")

Expected = dict[str, tuple[str, tuple[str, ...] | None, str]]
"""record id → (decision, reasons (None: household_member_number first), last four or '')."""


def build(p: Platform) -> tuple[list[list[str]], Expected, list[str]]:
    """A register of 16 people (one household with a child) and a 20-record roll with known
    errors; the rows, what each must decide, and every whole number involved."""
    people = []
    for i, (fam, fam_kana) in enumerate(SURNAMES):
        birth = f"{1960 + i}-03-{1 + i % 9:02d}"
        rc = register(p, family_name=fam, family_name_kana=fam_kana, birth_date=birth, sex="1")
        people.append((rc, f"{fam} 一郎", f"{fam_kana} イチロウ", birth, number_of(p, rc)))
    head = people[9][0]
    hh = p.municipality.get_resident(MUNI, head)["household_id"]
    child = register(
        p,
        EventKind.BIRTH,
        family_name="山田",
        family_name_kana="ヤマダ",
        given_name="翔",
        given_name_kana="ショウ",
        birth_date="2026-11-20",
        household_id=hh,
        relationship="子",
    )
    child_number = number_of(p, child)
    numbers = [n for *_, n in people] + [child_number]

    rows: list[list[str]] = []
    expected: Expected = {}

    def row(rid: str, person: tuple[str, str, str, str, str], number: str, **over: str) -> None:
        _rc, name, kana, birth, _n = person
        fields = {"name": name, "name_kana": kana, "birth_date": birth, **over}
        rows.append(
            [rid, fields["name"], fields["name_kana"], fields["birth_date"], "1", ADDRESS, number]
        )

    for i in range(8):  # exact, with the number → linked
        row(f"L{i}", people[i], people[i][4])
        expected[f"L{i}"] = ("linked", (), people[i][4][-4:])
    row("KANA", people[8], people[8][4], name_kana="カトウ イチロ")
    expected["KANA"] = ("review", ("kana_mismatch",), people[8][4][-4:])
    # the child's record with the head of household's number
    row(
        "HH",
        people[9],
        people[9][4],
        name="山田 翔",
        name_kana="ヤマダ ショウ",
        birth_date="2026-11-20",
    )
    expected["HH"] = ("review", None, people[9][4][-4:])
    unknown = unissued_number(p)
    # a claim that is nobody's (unissued, a typo, too short), on a record whose five items
    # identify exactly one person: stage 2 links that person and flags the claim
    flagged = ("claimed_number_ignored",)
    row("UNK", people[10], unknown)
    expected["UNK"] = ("linked", flagged, people[10][4][-4:])
    bad = people[11][4][:11] + str((int(people[11][4][11]) + 1) % 10)
    row("BAD", people[11], bad)
    expected["BAD"] = ("linked", flagged, people[11][4][-4:])
    row("SHORT", people[11], "12345")
    expected["SHORT"] = ("linked", flagged, people[11][4][-4:])
    # the same typo on a record whose items identify nobody: rejected, nothing linked
    row("BADGHOST", ("", "存在 しない", "ソンザイ シナイ", "1903-03-03", ""), bad)
    expected["BADGHOST"] = ("rejected", ("check_digit",), "")
    for i in (10, 11, 12):  # no number, exactly one person → linked by the five-item query
        row(f"Q{i}", people[i], "")
        expected[f"Q{i}"] = ("linked", (), people[i][4][-4:])
    ghost = ("", "存在 しない", "ソンザイ シナイ", "1901-01-01", "")
    row("N1", ghost, "")
    row("N2", ghost, "", birth_date="1902-02-02")
    expected["N1"] = expected["N2"] = ("unmatched", ("no_match",), "")
    # already waiting on the review queue: reported, not enrolled again
    pend = people[13]
    queued = enrol(
        p,
        AGENCY,
        "PEND",
        items(name=pend[1], name_kana="イノウエ イチ", birth_date=D(1973, 3, 5)),
        pend[4],
        operator="earlier",
    )
    assert queued.review_id is not None
    row("PEND", pend, pend[4])
    expected["PEND"] = ("review", ("pending",), pend[4][-4:])
    fw = people[14]
    row("FW", fw, fw[4][:4].translate(FULL_WIDTH) + "-" + fw[4][4:8] + " " + fw[4][8:])
    expected["FW"] = ("linked", (), fw[4][-4:])
    return rows, expected, [*numbers, unknown, bad]


def roll_file(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(HEADER)
    w.writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def check_rows(out_rows: list[list[str]], expected: Expected) -> None:
    assert [r[0] for r in out_rows] == list(expected)
    for rid, decision, number, reasons, score in out_rows:
        want, want_reasons, last4 = expected[rid]
        assert decision == want, (rid, decision, reasons)
        got = tuple(x for x in reasons.split(";") if x)
        if want_reasons is None:
            assert got[0] == "household_member_number", (rid, got)
        else:
            assert got == want_reasons, (rid, got)
        assert number == ("********" + last4 if last4 else ""), (rid, number)
        if decision == "linked" and "claimed_number_ignored" not in got:
            assert score == "1.0", (rid, score)  # deterministic
        else:  # empty, or the probabilistic stage's probability for the best candidate
            assert score == "" or 0.0 <= float(score) <= 1.0, (rid, score)


def check_storage(p: Platform, expected: Expected) -> None:
    reviews = {r["internal_id"]: r for r in p.agencies.open_reviews(AGENCY)}
    for rid, (decision, reasons, last4) in expected.items():
        link = p.agencies.link_of(AGENCY, rid)
        if decision == "linked":
            assert link is not None and link["individual_number"].endswith(last4)
            assert link["operator"] == "batch-op" and link["policy"] == "strict"
            want = "search" if "claimed_number_ignored" in (reasons or ()) else "claimed_number"
            assert link["method"] == ("five_item_query" if rid.startswith("Q") else want)
            assert link["notes"] == list(reasons or ())
            assert rid not in reviews
        else:
            assert link is None, rid
            review = reviews[rid]
            if rid == "PEND":  # the earlier item, untouched
                assert review["reasons"] == ["kana_mismatch"]
            elif reasons is None:
                assert review["reasons"][0] == "household_member_number"
            else:
                assert tuple(review["reasons"]) == reasons
    assert len(reviews) == sum(1 for d, *_ in expected.values() if d != "linked")


def counts(p: Platform) -> tuple[int, int]:
    with p.agencies.engine.connect() as conn:
        links = conn.execute(select(func.count()).select_from(am.links)).scalar_one()
        reviews = conn.execute(select(func.count()).select_from(am.reviews)).scalar_one()
    return int(links), int(reviews)


def test_a_roll_is_decided_and_stored_as_single_enrolment_would(
    platform: Platform, tmp_path: Path
) -> None:
    rows, expected, numbers = build(platform)
    records = read_roll(roll_file(tmp_path / "roll.csv", rows))
    seen: dict[str, list[int]] = {}

    def stage(label: str, total: int) -> Callable[[int], None]:
        seen[label] = [total]
        return seen[label].append

    decisions, result = link_roll(platform, AGENCY, records, operator="batch-op", progress=stage)
    assert len(records) == len(expected) == 21
    # every stage's bar is driven to its total (the pending record is not linked again)
    for label in ("normalise", "deterministic"):
        total, *done = seen[label]
        assert total == sum(done) == 20, (label, seen[label])
    assert seen["register"][0] == sum(seen["register"][1:]) > 0
    assert set(result.stage_seconds) >= {"normalise", "deterministic", "probabilistic"}
    out_rows = [d.row() for d in decisions]
    check_rows(out_rows, expected)
    check_storage(platform, expected)
    text = repr(out_rows)
    assert not [n for n in numbers if n in text]


def cli(p: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(p, "link", *args)


def test_the_link_command_writes_the_decisions_and_a_summary(
    platform: Platform, tmp_path: Path
) -> None:
    rows, expected, numbers = build(platform)
    roll = roll_file(tmp_path / "roll.csv", rows, encoding="cp932")
    out = tmp_path / "out.csv"
    r = cli(platform, str(roll), "--agency", AGENCY, "--out", str(out), "--operator", "batch-op")
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    text = out.read_text("utf-8")
    out_rows = list(csv.reader(io.StringIO(text, newline="")))
    assert out_rows[0] == ["record_id", "decision", "individual_number", "reasons", "score"]
    check_rows(out_rows[1:], expected)
    check_storage(platform, expected)
    summary = r.stdout
    for word in ("linked", "review", "unmatched", "rejected", "no_match", "pending"):
        assert word in summary, summary
    assert "household_member_number" in summary and "21" in summary
    chart = tmp_path / "out.summary.png"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 5000
    assert not [n for n in numbers if n in text + r.stdout + r.stderr]
    assert "Traceback" not in r.stderr
    assert not [f for f in tmp_path.iterdir() if f.name.endswith(".tmp")]


def test_a_broken_roll_writes_nothing_at_all(platform: Platform, tmp_path: Path) -> None:
    rows, _expected, numbers = build(platform)
    before = counts(platform)  # the one earlier review item
    rows.append(list(rows[0]))  # a duplicate id in the last line
    roll = roll_file(tmp_path / "roll.csv", rows)
    out = tmp_path / "out.csv"
    r = cli(platform, str(roll), "--agency", AGENCY, "--out", str(out), "--operator", "batch-op")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "roll.duplicate_id" in r.stderr and "[record_id]" in r.stderr
    last, first = len(rows) + 1, 2
    assert f"{last}行目" in r.stderr and f"{first}行目" in r.stderr
    assert f"Line {last}" in r.stderr and f"line {first}" in r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists() and sorted(f.name for f in tmp_path.iterdir()) == ["data", "roll.csv"]
    assert counts(platform) == before == (0, 1)
    assert not [n for n in numbers if n in r.stdout + r.stderr]


def test_a_reviewer_may_link_any_candidate_shown_and_only_those(platform: Platform) -> None:
    """A batch review item names up to three candidates; the reviewer links the one they
    choose, with how each item compared with *that* person as the provenance."""
    from mynumber.agency.enrolment import decide, review_view
    from mynumber.errors import ValidationError

    first = register(platform, given_name="一郎", given_name_kana="イチロウ")
    second = register(platform, given_name="二郎", given_name_kana="ジロウ")
    a, b = number_of(platform, first), number_of(platform, second)
    record = {
        "name": "高橋 二郎",  # 高 for 髙: normalised
        "name_kana": "タカハシ ジロウ",
        "birth_date": "1985-06-15",
        "sex": 1,
        "address": ADDRESS,
    }
    platform.agencies.store_batch(
        AGENCY,
        [],
        [
            {
                "internal_id": "M1",
                "record": record,
                "reasons": ("ambiguous",),
                "claimed": None,
                "candidates": [a, b],
                "score": 0.75,
            }
        ],
    )
    (item,) = platform.agencies.open_reviews(AGENCY)
    assert item["candidates"] == ["********" + a[-4:], "********" + b[-4:]]
    assert item["score"] == 0.75
    view = review_view(platform, AGENCY, item["review_id"])
    assert [s["number"][-4:] for s in view["candidates_view"]] == [a[-4:], b[-4:]]
    assert view["candidates_view"][1]["comparison"]["name"]["differs"] is False
    try:
        decide(platform, AGENCY, item["review_id"], link=True, operator="rv", justification="x",
               candidate=3)  # fmt: skip
    except ValidationError as e:
        assert e.code == "review.candidate"
    else:
        raise AssertionError("a third candidate that is not there was accepted")
    decide(
        platform, AGENCY, item["review_id"], link=True, operator="rv", justification="保険証",
        candidate=2,
    )  # fmt: skip
    link = platform.agencies.link_of(AGENCY, "M1")
    assert link is not None and link["individual_number"].endswith(b[-4:])
    # compared with the second candidate (二郎), not the first (一郎)
    assert link["items"]["name"] == "match_normalised" and link["method"] == "review"


def test_a_roll_is_stored_whole_or_not_at_all(platform: Platform) -> None:
    """I8: links and review items of a roll go in one transaction. A member queued by someone
    else while the roll was being linked refuses the lot, and no link of it is left behind."""
    from mynumber.errors import ConflictError

    rc = register(platform)
    number = number_of(platform, rc)
    record = {"name": "x", "name_kana": "エックス", "birth_date": "1985-06-15", "sex": 1,
              "address": ADDRESS}  # fmt: skip
    review = {"record": record, "reasons": ("no_match",), "claimed": None, "candidates": [],
              "score": None}  # fmt: skip
    platform.agencies.store_batch(AGENCY, [], [{"internal_id": "RACED", **review}])
    before = counts(platform)
    link = {"internal_id": "NEW", "number": number, "method": "claimed_number",
            "policy": "strict", "items": {}, "notes": [], "operator": "batch-op"}  # fmt: skip
    try:
        platform.agencies.store_batch(AGENCY, [link], [{"internal_id": "RACED", **review}])
    except ConflictError as e:
        assert e.code == "agency.member_pending"
    else:
        raise AssertionError("a second open item for one member was accepted")
    assert counts(platform) == before == (0, 1)
    assert platform.agencies.link_of(AGENCY, "NEW") is None
