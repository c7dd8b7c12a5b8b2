"""Demo cards for a seeded deployment (`mynumber serve --seed-cards N`).

N adult residents of the identity mirror, chosen deterministically from a seed, get a card the
ordinary way — applied, produced, handed over through :class:`~mynumber.jlis.cards.CardService`
(chip keys generated inside the chip, both certificates issued). Handovers run in a pool of
worker processes, each with its own platform, because RSA key generation dominates.

The synthetic holders' PINs are written to ``<data dir>/cards/DEMO-PINS.csv`` (mode 0600: chip
id, resident record code, user-authentication PIN, signature PIN) and nowhere else — not to
stdout, not to a log. Seeding again is idempotent: people who hold a card are skipped, a card
left applied or produced by an interrupted run is carried on.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import random
import secrets
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mynumber.card.kinds import KeyKind
from mynumber.card.pins import guessable_reason
from mynumber.dates import age_on
from mynumber.errors import MynumberError
from mynumber.jlis import models as m
from mynumber.jlis.card_lifecycle import HOLDING, CardState

__all__ = ["DEMO_PINS", "SeedReport", "random_auth_pin", "random_signature_pin", "seed_cards"]

DEMO_PINS = "DEMO-PINS.csv"
OPERATOR = "seed"
DOCUMENTS = ("driving_licence",)
_ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no I, O, 0, 1: easy to read off the file


@dataclass(frozen=True, slots=True)
class SeedReport:
    chosen: int
    handed_over: int
    already: int
    failed: dict[str, int]


def random_auth_pin(birth: dt.date) -> str:
    """A random 4-digit user-authentication PIN the chip accepts for a holder born `birth`."""
    while True:
        pin = f"{secrets.randbelow(10_000):04d}"
        if guessable_reason(KeyKind.AUTHENTICATION, pin, birth) is None:
            return pin


def random_signature_pin(birth: dt.date) -> str:
    """A random signature PIN (8 of A–Z2–9, both kinds) the chip accepts for `birth`."""
    while True:
        pin = "".join(secrets.choice(_ALNUM) for _ in range(8))
        has_both = any(c.isalpha() for c in pin) and any(c.isdigit() for c in pin)
        if has_both and guessable_reason(KeyKind.SIGNATURE, pin, birth) is None:
            return pin


def _adults(p: Any, today: dt.date) -> list[tuple[str, dt.date]]:
    i = m.identities.c
    with p.cards.engine.connect() as conn:
        rows = conn.execute(
            select(i.resident_code, i.birth_date)
            .where(i.status == "active")
            .order_by(i.resident_code)
        ).all()
    return [(rc, birth) for rc, birth in rows if age_on(birth, today) >= 18]


# -- worker processes -------------------------------------------------------------------------

_WORKER: Any = None


def _init_worker(data_dir: str, database_url: str | None, master_key: str | None) -> None:
    from mynumber.config import Settings
    from mynumber.platform import Platform

    global _WORKER
    settings = Settings(data_dir=Path(data_dir), database_url=database_url, master_key=master_key)
    _WORKER = Platform(settings, auto_sync=False)


def _hand_over(card_id: str, auth_pin: str, signature_pin: str) -> tuple[str, str | None]:
    """(card id, chip id) after the handover, or (card id, None) and the error code."""
    try:
        card = _WORKER.cards.hand_over(
            card_id, DOCUMENTS, auth_pin, signature_pin, operator=OPERATOR
        ).card
    except MynumberError as exc:
        return card_id, "!" + exc.code
    return card_id, card.chip_id


# -- the parent -------------------------------------------------------------------------------


def _pins_file(directory: Path) -> Any:
    path = directory / DEMO_PINS
    new = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    fh = os.fdopen(fd, "a", encoding="utf-8", newline="")
    if new:
        csv.writer(fh).writerow(["chip_id", "resident_code", "auth_pin", "signature_pin"])
    return fh


def seed_cards(
    p: Any,
    count: int,
    *,
    seed: int = 1,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SeedReport:
    """Give `count` adult residents of platform `p` (chosen from `seed`) a card in use."""
    p.cards.sweep_orphan_chips()  # an earlier run killed mid-handover
    today = p.clock.today()
    adults = _adults(p, today)
    chosen = random.Random(seed).sample(adults, min(count, len(adults)))
    births = dict(chosen)
    todo: list[tuple[str, str]] = []  # (card id, resident code) to hand over
    already = 0
    failed: dict[str, int] = {}
    for rc, _birth in chosen:
        cards = p.cards.cards_of(rc)
        if any(c.state in HOLDING for c in cards):
            already += 1
            continue
        try:
            pending = [c for c in cards if c.state in (CardState.APPLIED, CardState.PRODUCED)]
            card = pending[-1] if pending else None
            if card is None:
                card = p.cards.apply(rc, channel="paper", operator=OPERATOR).card
            if card.state is CardState.APPLIED:
                card = p.cards.produce(card.card_id, operator=OPERATOR).card
        except MynumberError as exc:
            failed[exc.code] = failed.get(exc.code, 0) + 1
            continue
        todo.append((card.card_id, rc))
    done = 0
    if progress is not None:
        progress(0, len(todo))
    if todo:
        s = p.settings
        n = workers or max(1, min(os.cpu_count() or 1, 8, (len(todo) + 4) // 5))
        directory = s.data_dir / "cards"
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        pins = {
            card_id: (random_auth_pin(births[rc]), random_signature_pin(births[rc]))
            for card_id, rc in todo
        }
        resident = dict(todo)
        with (
            _pins_file(directory) as fh,
            ProcessPoolExecutor(
                n,
                mp_context=get_context("spawn"),
                initializer=_init_worker,
                initargs=(str(s.data_dir), s.database_url, s.master_key),
            ) as pool,
        ):
            writer = csv.writer(fh)
            futures = [pool.submit(_hand_over, cid, *pins[cid]) for cid, _ in todo]
            for completed, future in enumerate(as_completed(futures), 1):
                card_id, chip_id = future.result()
                if chip_id is None or chip_id.startswith("!"):
                    code = (chip_id or "!unknown")[1:]
                    failed[code] = failed.get(code, 0) + 1
                else:
                    writer.writerow([chip_id, resident[card_id], *pins[card_id]])
                    fh.flush()
                    done += 1
                if progress is not None:
                    progress(completed, len(todo))
    return SeedReport(len(chosen), done, already, failed)
