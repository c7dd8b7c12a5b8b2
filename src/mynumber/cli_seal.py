"""`mynumber seal register|abolish|lost|history`: the municipality's seal register (印鑑登録).
One active seal per person; abolition (廃止) and loss (亡失) end it for good; the history keeps
every seal and every change with its operator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mynumber.cli import DatabaseUrl, DataDir, app, fail, out, platform_for
from mynumber.errors import MynumberError, ValidationError
from mynumber.municipality.seals import MAX_IMAGE_BYTES

__all__ = ["seal_app"]

seal_app = typer.Typer(
    help="The seal register (印鑑登録): register, abolish, report lost, history.",
    no_args_is_help=True,
)
app.add_typer(seal_app, name="seal")

DEFAULT_MUNICIPALITY = "131041"

Resident = Annotated[str, typer.Option("--resident-code", help="The resident's 住民票コード.")]
Operator = Annotated[str, typer.Option("--operator", help="Who acts (recorded).")]
Municipality = Annotated[
    str, typer.Option("--municipality", help="Municipality code (default: 新宿区 131041).")
]


def _print(seal: dict[str, object]) -> None:
    t = Table("seal", "card number", "state", "image (SHA-256)", "registered", "ended")
    t.add_row(
        str(seal["seal_id"]),
        escape(str(seal["card_number"])),
        str(seal["state"]),
        str(seal["image_digest"])[:16] + "…",
        str(seal["registered_at"])[:19],
        str(seal["ended_at"] or "—")[:19],
    )
    out.print(t)


@seal_app.command("register")
def seal_register(
    resident_code: Resident,
    image: Annotated[Path, typer.Option(help="The seal impression (PNG or JPEG).")],
    card_number: Annotated[
        str, typer.Option("--card-number", help="The number of the 印鑑登録証 issued.")
    ],
    operator: Operator,
    municipality: Municipality = DEFAULT_MUNICIPALITY,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Register a resident's seal (one active seal per person)."""
    try:
        if not image.is_file():
            raise ValidationError(
                "seal.image",
                f"No such file: {image}",
                f"ファイルがありません: {image}",
                field="image",
            )
        with image.open("rb") as f:
            data = f.read(MAX_IMAGE_BYTES + 1)
        with platform_for(data_dir, database_url) as p:
            seal = p.seals.register(municipality, resident_code, data, card_number, operator)
    except MynumberError as e:
        fail(e)
    _print(seal)
    out.print("registered / 登録しました")


Reason = Annotated[str, typer.Option(help="Why (recorded).")]


def _ending(how: str, name: str, doc: str, done: str) -> None:
    """Register `mynumber seal NAME`, which ends the resident's active seal as `how`."""

    def command(
        resident_code: Resident,
        operator: Operator,
        reason: Reason = "",
        municipality: Municipality = DEFAULT_MUNICIPALITY,
        data_dir: DataDir = None,
        database_url: DatabaseUrl = None,
    ) -> None:
        try:
            with platform_for(data_dir, database_url) as p:
                seal = p.seals.end(municipality, resident_code, how, operator, reason)
        except MynumberError as e:
            fail(e)
        _print(seal)
        out.print(done)

    command.__doc__ = doc
    seal_app.command(name)(command)


_ending(
    "abolished",
    "abolish",
    "Abolish (廃止) the resident's active seal; no certificate is issued for it afterwards.",
    "abolished / 廃止しました",
)
_ending(
    "lost",
    "lost",
    "Record the loss (亡失) of the registration card: the seal ends as lost.",
    "recorded as lost / 亡失を登録しました",
)


@seal_app.command("history")
def seal_history(
    resident_code: Resident,
    municipality: Municipality = DEFAULT_MUNICIPALITY,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Every seal the resident registered, with each change, its operator and time."""
    try:
        with platform_for(data_dir, database_url) as p:
            history = p.seals.history(municipality, resident_code)
    except MynumberError as e:
        fail(e)
    t = Table("seal", "card number", "state", "event", "operator", "reason", "at")
    for s in history:
        for ev in s["events"]:
            t.add_row(
                str(s["seal_id"]),
                escape(str(s["card_number"])),
                str(s["state"]),
                str(ev["kind"]),
                escape(str(ev["operator"])),
                escape(str(ev["reason"])),
                str(ev["at"])[:19],
            )
    out.print(t)
    out.print(f"{len(history)} seals / 印鑑登録 {len(history)} 件")
