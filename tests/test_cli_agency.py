"""`mynumber agency enrol|reviews|review|decide`, run as people run them (a process per command),
on SQLite and PostgreSQL: whole individual numbers never printed, errors in ja+en, exit 1."""

from __future__ import annotations

import subprocess

from clikit import run_cli
from mynumber.platform import Platform
from test_enrolment import register_twins
from test_jlis import ADDRESS, number_of, register

AGENCY = "kenpo-test"
MEMBER = [
    "--name",
    "髙橋 一郎",
    "--name-kana",
    "ﾀｶﾊｼ ｲﾁﾛｳ",
    "--birth-date",
    "昭和60年6月15日",
    "--sex",
    "男",
    "--address",
    ADDRESS,
    "--operator",
    "clerk-1",
]


def cli(
    p: Platform, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(p, "agency", *args, env=env, timeout=120)


def assert_error(r: subprocess.CompletedProcess[str], code: str) -> None:
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert code in r.stderr, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    lines = [line.strip() for line in r.stderr.splitlines()]
    assert any(any("\u3040" <= ch <= "\u9fff" for ch in line) for line in lines), r.stderr


def test_enrol_links_and_prints_only_the_masked_number(platform: Platform) -> None:
    number = number_of(platform, register(platform))
    # the number from the environment, as the help advises
    r = cli(
        platform,
        "enrol",
        "--agency",
        AGENCY,
        "--internal-id",
        "H001",
        *MEMBER,
        env={"MYNUMBER_CLAIMED_NUMBER": number},
    )
    assert r.returncode == 0, r.stderr
    assert "linked" in r.stdout and "********" + number[-4:] in r.stdout
    assert "match_normalised" in r.stdout
    assert number not in r.stdout + r.stderr
    link = platform.agencies.link_of(AGENCY, "H001")
    assert link is not None and link["operator"] == "clerk-1"
    # or on the command line: still never echoed whole
    r = cli(
        platform, "enrol", "--agency", AGENCY, "--internal-id", "H002", *MEMBER, "--number", number
    )
    assert r.returncode == 0 and number not in r.stdout + r.stderr


def test_review_flow_household_member_number(platform: Platform) -> None:
    codes = register_twins(platform)
    sho, tsubasa = (number_of(platform, codes[g]) for g in ("翔", "翼"))
    member = [
        "--name",
        "髙橋翔",
        "--name-kana",
        "タカハシショウ",
        "--birth-date",
        "2026-11-20",
        "--sex",
        "1",
        "--address",
        ADDRESS,
        "--operator",
        "clerk-1",
    ]
    enrol = ["enrol", "--agency", AGENCY, "--internal-id", "K1", *member]
    r = cli(platform, *enrol, env={"MYNUMBER_CLAIMED_NUMBER": tsubasa})
    assert r.returncode == 0, r.stderr
    assert "review" in r.stdout and "household_member_number" in r.stdout
    [item] = platform.agencies.open_reviews(AGENCY)
    rid = str(item["review_id"])
    # the same member again while the item is open
    r = cli(platform, *enrol, env={"MYNUMBER_CLAIMED_NUMBER": tsubasa})
    assert_error(r, "agency.member_pending")

    r = cli(platform, "reviews", "--agency", AGENCY)
    assert r.returncode == 0, r.stderr
    assert rid in r.stdout and "K1" in r.stdout and "household_member_number" in r.stdout
    assert tsubasa[-4:] in r.stdout and sho[-4:] in r.stdout
    # a page at a time: the next page starts after the last id shown
    r = cli(platform, "reviews", "--agency", AGENCY, "--limit", "1")
    assert r.returncode == 0 and f"--after {rid}" in r.stdout, r.stderr
    r = cli(platform, "reviews", "--agency", AGENCY, "--after", rid)
    assert r.returncode == 0 and "K1" not in r.stdout and "1 open review items" in r.stdout

    r = cli(platform, "review", "--agency", AGENCY, rid)
    assert r.returncode == 0, r.stderr
    assert "birth_date" in r.stdout and "2026-11-20" in r.stdout and "state: open" in r.stdout

    r = cli(platform, "decide", "--agency", AGENCY, rid, "--link", "--operator", "rv")
    assert r.returncode == 2  # --justification is required (usage error)
    r = cli(
        platform,
        "decide",
        "--agency",
        AGENCY,
        rid,
        "--link",
        "--operator",
        "rv",
        "--justification",
        " ",
    )
    assert_error(r, "review.justification")
    r = cli(
        platform,
        "decide",
        "--agency",
        AGENCY,
        rid,
        "--link",
        "--reject",
        "--operator",
        "rv",
        "--justification",
        "x",
    )
    assert_error(r, "request.invalid")
    decide = ["decide", "--agency", AGENCY, rid, "--link", "--operator", "rv"]
    r = cli(platform, *decide, "--justification", "保険証で確認")
    assert r.returncode == 0, r.stderr
    assert "linked" in r.stdout and "********" + sho[-4:] in r.stdout
    r = cli(platform, *decide, "--justification", "again")
    assert_error(r, "review.decided")
    r = cli(platform, "reviews", "--agency", AGENCY)
    assert "0 open review items" in r.stdout


def test_errors_exit_1_in_japanese_and_english(platform: Platform) -> None:
    number = number_of(platform, register(platform))
    enrol = ["enrol", "--agency", AGENCY, "--internal-id", "H001"]
    cases = [
        ([*enrol, *MEMBER, "--sex", "3"], "sex.invalid"),
        ([*enrol, *MEMBER, "--birth-date", "令和2年2月30日"], "birth_date"),
        ([*enrol, *MEMBER, "--policy", "lenient"], "request.invalid"),
        (["enrol", "--agency", "BAD!", "--internal-id", "H1", *MEMBER], "request.invalid"),
        (["enrol", "--agency", AGENCY, "--internal-id", "H/1", *MEMBER], "request.invalid"),
        (["review", "--agency", AGENCY, "42"], "review.not_found"),
    ]
    for args, code in cases:
        r = cli(platform, *args, env={"MYNUMBER_CLAIMED_NUMBER": number})
        assert_error(r, code)
        assert number not in r.stdout + r.stderr
    assert platform.agencies.open_reviews(AGENCY) == []
    assert platform.agencies.link_of(AGENCY, "H001") is None
