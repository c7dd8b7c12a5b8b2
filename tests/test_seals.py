"""The seal register (issue 6, deliverable 1) on SQLite and PostgreSQL: one active seal per
person, held by the database even against clerks racing; abolition and loss end a seal for
good; every change is in the history; bad input is a clear 4xx and writes nothing."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, select

from cardkit import change, register
from clikit import run_cli
from conftest import MUNI
from mynumber.errors import MynumberError
from mynumber.municipality import models as m
from mynumber.municipality.domain import EventKind
from mynumber.municipality.seals import MAX_IMAGE_BYTES
from mynumber.platform import Platform
from sealkit import JPEG, PNG, impression


def code_of(call: Any) -> str:
    with pytest.raises(MynumberError) as e:
        call()
    return e.value.code


def rows(p: Platform, table: Any) -> int:
    with p.seals.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_register_abolish_and_history(platform: Platform) -> None:
    rc = register(platform)
    seal = platform.seals.register(MUNI, rc, PNG, "A0001", "clerk-1")
    assert seal["state"] == "active" and seal["media_type"] == "image/png"
    assert seal["image_digest"] == hashlib.sha256(PNG).hexdigest()
    # one active seal: a second is refused until the first ends
    assert code_of(lambda: platform.seals.register(MUNI, rc, JPEG, "A0002", "c")) == (
        "seal.already_registered"
    )
    ended = platform.seals.end(MUNI, rc, "abolished", "clerk-2", "本人の申請")
    assert ended["state"] == "abolished" and ended["ended_at"] is not None
    with platform.seals.engine.connect() as conn:
        assert platform.seals.active_seal(conn, MUNI, rc) is None
    # ended for good: nothing left to abolish or lose; a new registration is a new seal
    assert code_of(lambda: platform.seals.end(MUNI, rc, "lost", "c")) == "seal.not_registered"
    again = platform.seals.register(MUNI, rc, JPEG, "A0002", "clerk-1")
    assert again["seal_id"] != seal["seal_id"] and again["media_type"] == "image/jpeg"
    platform.seals.end(MUNI, rc, "lost", "clerk-3", "登録証を紛失")
    history = platform.seals.history(MUNI, rc)
    assert [(h["card_number"], h["state"]) for h in history] == [
        ("A0001", "abolished"),
        ("A0002", "lost"),
    ]
    assert [[e["kind"] for e in h["events"]] for h in history] == [
        ["registered", "abolished"],
        ["registered", "lost"],
    ]
    assert history[1]["events"][1]["operator"] == "clerk-3"
    assert history[1]["events"][1]["reason"] == "登録証を紛失"


def test_a_card_number_is_never_reused(platform: Platform) -> None:
    a, b = register(platform), register(platform, given="二郎")
    platform.seals.register(MUNI, a, PNG, "B0001", "c")
    platform.seals.end(MUNI, a, "abolished", "c")
    assert code_of(lambda: platform.seals.register(MUNI, b, PNG, "B0001", "c")) == (
        "seal.card_number_taken"
    )


@pytest.mark.parametrize(
    ("image", "card", "operator", "code"),
    [
        (b"", "C0001", "c", "seal.image"),
        (b"GIF89a" + bytes(10), "C0001", "c", "seal.image"),
        (b"\x89PNG\r\n\x1a\n" + bytes(MAX_IMAGE_BYTES), "C0001", "c", "seal.image"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(64)), "C0001", "c", "seal.image"),  # not a PNG
        (PNG[:200], "C0001", "c", "seal.image"),  # cut short
        (impression("PNG", size=8), "C0001", "c", "seal.image"),  # too small to print
        (PNG, "c-1", "c", "seal.card_number"),
        (PNG, "123", "c", "seal.card_number"),
        (PNG, "１２３４５", "c", "seal.card_number"),  # full-width digits
        (PNG, "C0001", " ", "field.required"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(
    platform: Platform, image: bytes, card: str, operator: str, code: str
) -> None:
    rc = register(platform)
    got = code_of(lambda: platform.seals.register(MUNI, rc, image, card, operator))
    assert got == code
    assert rows(platform, m.seals) == rows(platform, m.seal_events) == 0


def test_who_may_register(platform: Platform) -> None:
    child = register(platform, birth=dt.date(2012, 1, 1))  # 14 on 2026-11-26
    assert code_of(lambda: platform.seals.register(MUNI, child, PNG, "D0001", "c")) == (
        "seal.too_young"
    )
    fifteen = register(platform, given="三郎", birth=dt.date(2011, 11, 26))  # 15 today
    assert platform.seals.register(MUNI, fifteen, PNG, "D0002", "c")["state"] == "active"
    assert code_of(lambda: platform.seals.register(MUNI, "99999999999", PNG, "D0003", "c")) == (
        "resident.not_found"
    )
    dead = register(platform, given="四郎")
    change(platform, dead, EventKind.DEATH, {"occurred_on": "2026-11-25"})
    assert code_of(lambda: platform.seals.register(MUNI, dead, PNG, "D0004", "c")) == (
        "resident.not_active"
    )
    assert rows(platform, m.seals) == 1


def test_clerks_racing_leave_exactly_one_active_seal(platform: Platform) -> None:
    """Eight clerks register a seal for the same person at once, then eight end it at once:
    the database lets exactly one of each through, and the history says so."""
    rc = register(platform)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(i: int, action: str) -> None:
        barrier.wait()
        try:
            if action == "register":
                platform.seals.register(MUNI, rc, PNG, f"E{i:04d}", f"clerk-{i}")
            else:
                platform.seals.end(MUNI, rc, "abolished", f"clerk-{i}")
            result = "ok"
        except MynumberError as e:
            result = e.code
        with lock:
            outcomes.append(result)

    for action in ("register", "end"):
        outcomes.clear()
        threads = [threading.Thread(target=attempt, args=(i, action)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert outcomes.count("ok") == 1, outcomes
        assert set(outcomes) - {"ok"} <= {"seal.already_registered", "seal.not_registered"}
    [only] = platform.seals.history(MUNI, rc)
    assert only["state"] == "abolished"
    assert [e["kind"] for e in only["events"]] == ["registered", "abolished"]


# -- the lifecycle as a state machine --------------------------------------------------------------


def make_machine(p: Platform) -> type[RuleBasedStateMachine]:
    people = [register(p, given=g) for g in ("一郎", "二郎", "三郎")]
    cards = itertools.count(1)

    class Seals(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            for rc in people:  # each example starts with no active seal
                with contextlib.suppress(MynumberError):
                    p.seals.end(MUNI, rc, "abolished", "reset")
            self.active: dict[str, str] = {}  # resident → card number (the model)
            self.ended: list[tuple[str, str, str]] = []  # (resident, card, how)

        @rule(who=st.integers(0, 2))
        def register_seal(self, who: int) -> None:
            rc = people[who]
            card = f"S{next(cards):06d}"
            try:
                p.seals.register(MUNI, rc, PNG, card, "clerk")
            except MynumberError as e:
                assert rc in self.active and e.code == "seal.already_registered"
                return
            assert rc not in self.active
            self.active[rc] = card

        @rule(who=st.integers(0, 2), how=st.sampled_from(["abolished", "lost"]))
        def end_seal(self, who: int, how: str) -> None:
            rc = people[who]
            try:
                p.seals.end(MUNI, rc, how, "clerk")
            except MynumberError as e:
                assert rc not in self.active and e.code == "seal.not_registered"
                return
            self.ended.append((rc, self.active.pop(rc), how))

        @invariant()
        def register_is_the_model(self) -> None:
            for rc in people:
                with p.seals.engine.connect() as conn:
                    seal = p.seals.active_seal(conn, MUNI, rc)
                assert (seal and seal["card_number"]) == self.active.get(rc)
            for rc, card, how in self.ended[-3:]:
                [h] = [h for h in p.seals.history(MUNI, rc) if h["card_number"] == card]
                assert h["state"] == how and [e["kind"] for e in h["events"]] == [
                    "registered",
                    how,
                ]

    return Seals


def test_any_sequence_keeps_one_active_seal_and_a_true_history(platform: Platform) -> None:
    machine = make_machine(platform)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=15,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def seal_cli(p: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(p, "seal", *args)


def test_the_cli_registers_abolishes_and_shows_the_history(
    platform: Platform, tmp_path: Path
) -> None:
    rc = register(platform)
    image = tmp_path / "seal.png"
    image.write_bytes(PNG)
    args = ["--resident-code", rc, "--operator", "窓口1"]
    r = seal_cli(platform, "register", *args, "--image", str(image), "--card-number", "F0001")
    assert r.returncode == 0 and "registered" in r.stdout and "F0001" in r.stdout, r.stderr
    r = seal_cli(platform, "register", *args, "--image", str(image), "--card-number", "F0002")
    assert r.returncode == 1 and "seal.already_registered" in r.stderr
    assert "印鑑登録" in r.stderr and "Traceback" not in r.stderr
    r = seal_cli(platform, "register", *args, "--image", str(tmp_path / "none.png"),
                 "--card-number", "F0003")  # fmt: skip
    assert r.returncode == 1 and "seal.image" in r.stderr and "Traceback" not in r.stderr
    r = seal_cli(platform, "abolish", *args, "--reason", "本人の申請")
    assert r.returncode == 0 and "abolished" in r.stdout, r.stderr
    r = seal_cli(platform, "lost", *args)
    assert r.returncode == 1 and "seal.not_registered" in r.stderr
    r = seal_cli(platform, "history", "--resident-code", rc)
    assert r.returncode == 0 and "registered" in r.stdout and "本人の申請" in r.stdout
    assert "1 seals" in r.stdout


def test_a_closed_record_ends_its_seal_in_the_same_transaction(platform: Platform) -> None:
    """職権抹消: a move-out or a death ends the seal registration with the event itself."""
    gone, dead, stays = (register(platform, given=g) for g in ("一", "二", "三"))
    for i, rc in enumerate((gone, dead, stays)):
        platform.seals.register(MUNI, rc, PNG, f"E000{i}", "clerk")
    change(platform, gone, EventKind.MOVE_OUT, {"destination": "大阪府大阪市北区"})
    change(platform, dead, EventKind.DEATH)
    for rc, kind in ((gone, "move_out"), (dead, "death")):
        (seal,) = platform.seals.history(MUNI, rc)
        assert seal["state"] == "abolished"
        ended = seal["events"][-1]
        assert ended["operator"] == "system" and ended["reason"] == f"職権抹消 ({kind})"
    assert platform.seals.history(MUNI, stays)[0]["state"] == "active"
    # the register's event says which seal it ended
    events = platform.municipality.events(MUNI, 0, 1000)
    closing = [e for e in events if e["kind"] in ("move_out", "death")]
    assert len(closing) == 2 and all("seal_ended" in e.get("detail", {}) for e in closing)
