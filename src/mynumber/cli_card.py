"""`mynumber card …`: J-LIS's card management system at the counter, from the command line.

Thin: each command parses, calls :class:`~mynumber.jlis.cards.CardService` and prints. PINs are
read from the environment (``MYNUMBER_AUTH_PIN``, ``MYNUMBER_SIGNATURE_PIN``,
``MYNUMBER_NEW_PIN``) or a hidden prompt — never from an argument (it would show in the process
list and the shell history) and never printed.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from mynumber.cli import (
    DatabaseUrl,
    DataDir,
    err,
    fail,
    out,
    platform_for,
    progress_bar,
)
from mynumber.errors import MynumberError
from mynumber.jlis.cards import Card, Outcome

if TYPE_CHECKING:
    from mynumber.platform import Platform

__all__ = ["card_app", "seed_demo_cards"]

card_app: typer.Typer = typer.Typer(
    no_args_is_help=True, help="My Number cards: J-LIS card management at the counter."
)

Operator = Annotated[
    str,
    typer.Option(
        "--operator", envvar="MYNUMBER_OPERATOR", help="Staff id recorded on the card's events."
    ),
]
Documents = Annotated[
    list[str],
    typer.Option(
        "--document",
        help="Identity document checked (repeat): one photo document such as driving_licence, "
        "passport, residence_card, or two others such as health_insurance_card, pension_book.",
    ),
]
CardIdArg = Annotated[str, typer.Argument(help="The card id (16 hexadecimal digits).")]

_PIN_PROMPTS = {
    "MYNUMBER_AUTH_PIN": "利用者証明用電子証明書の暗証番号（数字4桁） / user-authentication PIN",
    "MYNUMBER_SIGNATURE_PIN": "署名用電子証明書の暗証番号（英数字6〜16文字） / signature PIN",
    "MYNUMBER_NEW_PIN": "新しい暗証番号 / new PIN",
}


def _pin(env: str) -> str:
    """A PIN from `env`, else typed at a hidden prompt, twice."""
    value = os.environ.get(env)
    if value:
        return value
    pin: str = typer.prompt(_PIN_PROMPTS[env], hide_input=True, confirmation_prompt=True)
    return pin


def _show(card: Card, outcome: Outcome | None = None) -> None:
    t = Table(show_header=False)
    t.add_column("item")
    t.add_column("value", overflow="fold")
    for key, value in card.to_json().items():
        if key == "face" and isinstance(value, dict):
            for item, v in value.items():
                t.add_row(f"face.{item}", str(v))
        elif value is not None:
            t.add_row(key, str(value))
    if outcome is not None and outcome.replayed:
        t.add_row("replayed", "true")
    out.print(t)


def _run(
    data_dir: Path | None,
    database_url: str | None,
    call: Callable[[Platform], Outcome | Card | None],
) -> None:
    try:
        with platform_for(data_dir, database_url) as p:
            result = call(p)
    except MynumberError as e:
        fail(e)
        return
    if isinstance(result, Outcome):
        _show(result.card, result)
    elif isinstance(result, Card):
        _show(result)


@card_app.command("apply")
def apply_cmd(
    resident_code: Annotated[str, typer.Argument(help="住民票コード (11 digits).")],
    channel: Annotated[str, typer.Option(help="online | paper | counter")] = "counter",
    application_id: Annotated[
        str | None, typer.Option(help="申請書ID (23 digits; needed online).")
    ] = None,
    period_of_stay_end: Annotated[
        str | None, typer.Option(help="End of a foreign resident's period of stay (ISO / 和暦).")
    ] = None,
    operator: Operator = "cli",
    key: Annotated[str | None, typer.Option("--idempotency-key")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Accept an application for a first card (交付申請)."""
    from mynumber.dates import parse_date
    from mynumber.numbers import parse_resident_code

    def call(p: Platform) -> Outcome:
        stay: dt.date | None = None
        if period_of_stay_end:
            stay = parse_date(period_of_stay_end, field="period_of_stay_end")
        return p.cards.apply(
            parse_resident_code(resident_code, field="resident_code"),
            channel=channel,
            application_id=application_id,
            period_of_stay_end=stay,
            operator=operator,
            idempotency_key=key,
        )

    _run(data_dir, database_url, call)


@card_app.command("produce")
def produce_cmd(
    card_id: CardIdArg,
    operator: Operator = "cli",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Record that the card was manufactured and sent to the municipality."""
    _run(data_dir, database_url, lambda p: p.cards.produce(card_id, operator=operator))


@card_app.command("hand-over")
def hand_over_cmd(
    card_id: CardIdArg,
    document: Documents,
    operator: Operator = "cli",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Hand the card over after the identity check (交付); the holder sets both PINs
    (MYNUMBER_AUTH_PIN and MYNUMBER_SIGNATURE_PIN, or hidden prompts)."""
    auth_pin = _pin("MYNUMBER_AUTH_PIN")
    signature_pin = _pin("MYNUMBER_SIGNATURE_PIN")
    _run(
        data_dir,
        database_url,
        lambda p: p.cards.hand_over(card_id, document, auth_pin, signature_pin, operator=operator),
    )


@card_app.command("report-loss")
def report_loss_cmd(
    card_id: CardIdArg,
    operator: Operator = "cli",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """The 24-hour loss line: suspend the card and hold its certificates (一時停止)."""
    _run(data_dir, database_url, lambda p: p.cards.report_loss(card_id, operator=operator))


@card_app.command("lift")
def lift_cmd(
    card_id: CardIdArg,
    document: Documents,
    operator: Operator = "cli",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Lift a suspension at the counter after an identity check."""
    _run(
        data_dir,
        database_url,
        lambda p: p.cards.lift_suspension(card_id, document, operator=operator),
    )


@card_app.command("reissue")
def reissue_cmd(
    card_id: CardIdArg,
    document: Documents,
    reason: Annotated[str, typer.Option(help="loss | theft | damage | chip_fault")] = "loss",
    operator: Operator = "cli",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Reissue (再交付): the old card ends and a new one is applied for, with the fee."""
    _run(
        data_dir,
        database_url,
        lambda p: p.cards.reissue(card_id, reason, document, operator=operator),
    )


@card_app.command("return")
def return_cmd(
    card_id: CardIdArg,
    reason: Annotated[str, typer.Option(help="death | emigration | holder_request")],
    operator: Operator = "cli",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Return the card (返納); both certificates are revoked."""
    _run(data_dir, database_url, lambda p: p.cards.return_card(card_id, reason, operator=operator))


@card_app.command("renew")
def renew_cmd(
    card_id: CardIdArg,
    operator: Operator = "cli",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Apply for a renewal card (更新), from three months before expiry."""
    _run(data_dir, database_url, lambda p: p.cards.renew(card_id, operator=operator))


@card_app.command("cancel")
def cancel_cmd(
    card_id: CardIdArg,
    reason: Annotated[str, typer.Option(help="withdrawn | not_collected")] = "withdrawn",
    operator: Operator = "cli",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Cancel a card not yet handed over."""
    _run(
        data_dir,
        database_url,
        lambda p: p.cards.cancel(card_id, operator=operator, reason=reason),
    )


@card_app.command("update-face")
def update_face_cmd(
    card_id: CardIdArg,
    document: Documents,
    operator: Operator = "cli",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """追記: the registered name and address onto the card; a new signature certificate."""
    _run(
        data_dir,
        database_url,
        lambda p: p.cards.update_face(card_id, document, operator=operator),
    )


@card_app.command("unlock-pin")
def unlock_pin_cmd(
    card_id: CardIdArg,
    document: Documents,
    kind: Annotated[str, typer.Option(help="authentication | signature")],
    operator: Operator = "cli",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Reset a locked or forgotten PIN (MYNUMBER_NEW_PIN, or a hidden prompt)."""
    new_pin = _pin("MYNUMBER_NEW_PIN")
    _run(
        data_dir,
        database_url,
        lambda p: p.cards.unlock_pin(card_id, kind, new_pin, document, operator=operator),
    )


@card_app.command("show")
def show_cmd(
    card_id: CardIdArg,
    events: Annotated[bool, typer.Option("--events", help="Also list the card's events.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Show one card (and its events)."""
    try:
        with platform_for(data_dir, database_url) as p:
            card = p.cards.get(card_id)
            history = p.cards.events(card_id) if events else []
    except MynumberError as e:
        fail(e)
        return
    _show(card)
    if events:
        t = Table("seq", "kind", "from", "to", "operator", "at")
        for ev in history:
            t.add_row(
                str(ev["seq"]),
                ev["kind"],
                ev["from_state"] or "",
                ev["to_state"],
                ev["operator"],
                ev["at"],
            )
        out.print(t)


@card_app.command("list")
def list_cmd(
    state: Annotated[str | None, typer.Option(help="Only cards in this state.")] = None,
    resident: Annotated[str | None, typer.Option(help="Only this person's cards.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List cards."""
    from mynumber.jlis.card_lifecycle import CardState

    if state is not None and state not in {s.value for s in CardState}:
        err.print(
            f"[red]error[/red] unknown state; one of: {', '.join(s.value for s in CardState)}"
        )
        raise typer.Exit(2)
    with platform_for(data_dir, database_url) as p:
        if resident:
            cards = [c for c in p.cards.cards_of(resident) if state is None or c.state == state]
        else:
            cards = p.cards.list_cards(state, limit=limit)
    t = Table()
    for column in ("card_id", "resident_code", "state", "issued_on", "expires_on", "chip_id"):
        t.add_column(column, overflow="fold")  # ids are never cut short
    for c in cards:
        t.add_row(
            c.card_id,
            c.resident_code,
            str(c.state),
            str(c.issued_on or ""),
            str(c.expires_on or ""),
            c.chip_id or "",
        )
    out.print(t)


def seed_demo_cards(p: Platform, count: int, seed: int = 1) -> None:
    """`serve --seed-cards`: demo cards with a progress bar; PINs only to DEMO-PINS.csv."""
    from mynumber.jlis.card_seed import DEMO_PINS, seed_cards

    with progress_bar() as bar:
        task = bar.add_task("cards", total=None)
        report = seed_cards(
            p, count, seed=seed, progress=lambda n, of: bar.update(task, completed=n, total=of)
        )
    pins = p.settings.data_dir / "cards" / DEMO_PINS
    err.print(
        f"cards: {report.handed_over:,} handed over, {report.already:,} already held; "
        f"demo PINs in {pins}",
        markup=False,
    )
    for code, n in sorted(report.failed.items()):
        err.print(f"  {n:,} refused: {code}", markup=False)
