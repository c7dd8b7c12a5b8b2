"""`mynumber card …` and the demo-card seeding of `serve --seed-cards`."""

from __future__ import annotations

import csv
import stat
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cardkit import assert_hidden, fast_chips, register  # noqa: F401
from conftest import MUNI
from mynumber.card import KeyKind
from mynumber.cli import app
from mynumber.config import Settings
from mynumber.jlis.card_lifecycle import CardState
from mynumber.jlis.card_seed import DEMO_PINS, seed_cards
from mynumber.platform import Platform

AUTH_PIN, SIG_PIN = "2719", "K7QX9M"


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables as wide as they need (the console's width was fixed when it was made)."""
    import mynumber.cli

    monkeypatch.setattr(mynumber.cli.out, "_width", 200)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def platform_at(data_dir: Path) -> Platform:
    p = Platform(Settings(data_dir=data_dir))
    if not p.municipality.municipality_codes():
        p.municipality.create_municipality(MUNI, "東京都", "新宿区")
    return p


def run(
    data_dir: Path, *args: str, env: dict[str, str] | None = None, input: str | None = None
) -> Any:
    runner = CliRunner()
    return runner.invoke(
        app,
        ["card", *args, "--data-dir", str(data_dir)],
        env={"MYNUMBER_OPERATOR": "counter-07", **(env or {})},
        input=input,
    )


@pytest.mark.usefixtures("fast_chips")
def test_card_commands(data_dir: Path) -> None:
    with _Closing(platform_at(data_dir)) as p:
        rc = register(p)
    r = run(data_dir, "apply", rc, "--channel", "paper")
    assert r.exit_code == 0, r.output
    with _Closing(platform_at(data_dir)) as p:
        (card,) = p.cards.cards_of(rc)
    card_id = card.card_id
    assert card_id in r.output and "applied" in r.output
    assert run(data_dir, "produce", card_id).exit_code == 0
    pins = {"MYNUMBER_AUTH_PIN": AUTH_PIN, "MYNUMBER_SIGNATURE_PIN": SIG_PIN}
    r = run(data_dir, "hand-over", card_id, "--document", "passport", env=pins)
    assert r.exit_code == 0, r.output
    assert "active" in r.output
    assert_hidden(r.output, AUTH_PIN, SIG_PIN)
    r = run(data_dir, "show", card_id, "--events")
    assert r.exit_code == 0 and "hand_over" in r.output and "counter-07" in r.output
    r = run(data_dir, "list", "--state", "active")
    assert card_id in r.output
    assert run(data_dir, "list", "--state", "lost").exit_code == 2
    assert card_id in run(data_dir, "list", "--resident", rc).output
    r = run(data_dir, "update-face", card_id, "--document", "passport")
    assert r.exit_code == 1 and "card_life.face_current" in r.output
    r = run(data_dir, "unlock-pin", card_id, "--document", "passport", "--kind",
            "authentication", env={"MYNUMBER_NEW_PIN": "5830"})  # fmt: skip
    assert r.exit_code == 0 and "5830" not in r.output
    r = run(data_dir, "renew", card_id)
    assert r.exit_code == 1 and "card_life.renewal_too_early" in r.output
    assert run(data_dir, "report-loss", card_id).exit_code == 0
    r = run(data_dir, "lift", card_id, "--document", "pension_book")
    assert r.exit_code == 1 and "card_life.identity_documents" in r.output
    assert run(data_dir, "lift", card_id, "--document", "passport").exit_code == 0
    r = run(data_dir, "reissue", card_id, "--document", "passport", "--reason", "loss")
    assert r.exit_code == 0 and "1000" in r.output
    with _Closing(platform_at(data_dir)) as p:
        new = p.cards.cards_of(rc)[-1]
    assert run(data_dir, "cancel", new.card_id).exit_code == 0
    r = run(data_dir, "return", card_id, "--reason", "death")
    assert r.exit_code == 1 and "card_life.not_returnable" in r.output


@pytest.mark.usefixtures("fast_chips")
def test_pins_from_a_hidden_prompt(data_dir: Path) -> None:
    with _Closing(platform_at(data_dir)) as p:
        rc = register(p)
        card = p.cards.apply(rc, channel="paper", operator="x").card
        p.cards.produce(card.card_id, operator="x")
    typed = f"{AUTH_PIN}\n{AUTH_PIN}\n{SIG_PIN}\n{SIG_PIN}\n"
    r = run(data_dir, "hand-over", card.card_id, "--document", "passport", input=typed)
    assert r.exit_code == 0, r.output
    assert_hidden(r.output, AUTH_PIN, SIG_PIN)
    with _Closing(platform_at(data_dir)) as p:
        chip = p.cards.chips.load(p.cards.get(card.card_id).chip_id or "", p.clock)
        chip.verify_pin(KeyKind.SIGNATURE, SIG_PIN)
        assert not chip.is_locked(KeyKind.SIGNATURE)


def test_seeded_cards(data_dir: Path) -> None:
    with _Closing(platform_at(data_dir)) as p:
        people = [register(p, given=g) for g in ("一郎", "二郎", "花子", "翔太")]
        register(p, given="陽菜", birth=__import__("datetime").date(2015, 1, 1))  # a child
        report = seed_cards(p, 3, seed=5, workers=1)
        assert (report.chosen, report.handed_over, report.already) == (3, 3, 0)
        assert report.failed == {}
        pins_file = data_dir / "cards" / DEMO_PINS
        assert stat.S_IMODE(pins_file.stat().st_mode) == 0o600
        with pins_file.open(encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == 3 and {r["resident_code"] for r in rows} <= set(people)
        for row in rows:
            chip = p.cards.chips.load(row["chip_id"], p.clock)
            chip.verify_pin(KeyKind.AUTHENTICATION, row["auth_pin"])
            chip.verify_pin(KeyKind.SIGNATURE, row["signature_pin"])
            (card,) = p.cards.cards_of(row["resident_code"])
            assert card.state is CardState.ACTIVE and card.chip_id == row["chip_id"]
            assert {c.status for c in p.pki.certificates(row["resident_code"])} == {"valid"}
        again = seed_cards(p, 3, seed=5, workers=1)
        assert (again.handed_over, again.already) == (0, 3)
        with pins_file.open(encoding="utf-8") as fh:
            assert len(list(csv.DictReader(fh))) == 3


class _Closing:
    def __init__(self, p: Platform) -> None:
        self.p = p

    def __enter__(self) -> Platform:
        return self.p

    def __exit__(self, *exc: object) -> None:
        self.p.close()
