"""`mynumber agency …`: enrol an agency's member with five-item verification (I3), and work the
agency's review queue. Individual numbers are only ever printed masked to their last four
digits; a claimed number is best passed in ``MYNUMBER_CLAIMED_NUMBER`` rather than on the
command line (where other users may see it in the process list)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mynumber.agency.linkage import MAX_CANDIDATES
from mynumber.cli import DatabaseUrl, DataDir, app, fail, out, platform_for
from mynumber.errors import MynumberError, ValidationError
from mynumber.numbers import mask

__all__ = ["agency_app"]

agency_app = typer.Typer(
    help="An agency's links to individual numbers: enrol members, review, decide.",
    no_args_is_help=True,
)
app.add_typer(agency_app, name="agency")

_AGENCY_ID = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_INTERNAL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,31}")
_ITEMS = ("name", "name_kana", "birth_date", "sex", "address")

Agency = Annotated[str, typer.Option("--agency", help="The agency's id, e.g. kenpo-mirai.")]
Operator = Annotated[str, typer.Option("--operator", help="Who acts (recorded).")]


def _invalid(field: str, en: str, ja: str) -> None:
    fail(ValidationError("request.invalid", en, ja, field=field))


def _check_agency(agency: str) -> None:
    if not _AGENCY_ID.fullmatch(agency):
        _invalid(
            "agency",
            "An agency id is 1–64 of a-z, 0-9, '_', '.', '-', starting with a letter or digit.",
            "機関IDは英小文字・数字・「_」「.」「-」の1〜64文字（先頭は英小文字か数字）です。",
        )


def _table(*columns: str) -> Table:
    """A table whose cells wrap rather than cut (a masked number stays whole)."""
    t = Table()
    for c in columns:
        t.add_column(c, overflow="fold")
    return t


def _text(value: Any) -> str:
    return escape("—" if value is None else str(value))


@agency_app.command("enrol")
def agency_enrol(
    agency: Agency,
    internal_id: Annotated[
        str, typer.Option("--internal-id", help="The member's id in the agency's records.")
    ],
    name: Annotated[str, typer.Option(help="Kanji name (family given).")],
    name_kana: Annotated[str, typer.Option("--name-kana", help="The name in katakana.")],
    birth_date: Annotated[str, typer.Option("--birth-date", help="ISO 8601 or 和暦.")],
    sex: Annotated[str, typer.Option(help="1 or 2 (男/女 accepted).")],
    address: Annotated[str, typer.Option(help="The address as the agency holds it.")],
    operator: Operator,
    number: Annotated[
        str | None,
        typer.Option(
            "--number",
            envvar="MYNUMBER_CLAIMED_NUMBER",
            show_envvar=True,
            show_default=False,
            help="The individual number the member gave (prefer the environment variable); "
            "without one, a five-item query.",
        ),
    ] = None,
    policy: Annotated[
        str, typer.Option(help="strict (all five items) | assisted (a one-item slip links).")
    ] = "strict",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Verify a member's five items (and claimed number): link, or queue for review.

    Prints the decision, how each item matched and the number linked, masked."""
    from mynumber.agency.enrolment import enrol
    from mynumber.dates import parse_date, parse_sex
    from mynumber.identity import FiveItems

    _check_agency(agency)
    if not _INTERNAL_ID.fullmatch(internal_id):
        _invalid(
            "internal_id",
            "An internal id is 1–32 of A-Z, a-z, 0-9, '_', '.', ':', '-'.",
            "内部IDは英数字・「_」「.」「:」「-」の1〜32文字です。",
        )
    if policy not in ("strict", "assisted"):
        _invalid(
            "policy",
            "The policy is strict or assisted.",
            "方針は strict または assisted です。",
        )
    try:
        for field, value in (
            ("name", name),
            ("name_kana", name_kana),
            ("address", address),
            ("operator", operator),
        ):
            if not value.strip():
                raise ValidationError(
                    "field.required", f"{field} is required.", f"{field} は必須です。", field=field
                )
        record = FiveItems(
            name,
            name_kana,
            parse_date(birth_date, field="birth_date"),
            parse_sex(sex, field="sex"),
            address,
        )
        claimed = number if number and number.strip() else None
        with platform_for(data_dir, database_url) as p:
            result = enrol(
                p, agency, internal_id, record, claimed, operator=operator, policy=policy
            )
    except MynumberError as e:
        fail(e)
    doc = result.to_json()
    t = Table("item", "result")
    for item in _ITEMS:
        if item in doc["items"]:
            t.add_row(item, _text(doc["items"][item]))
    out.print(t)
    reasons = ", ".join(doc["reasons"]) or "—"
    out.print(f"decision: {doc['decision']}  method: {doc['method']}  reasons: {escape(reasons)}")
    if doc["notice"] is not None:
        out.print(f"linked / 紐付け済み: {mask(doc['notice']['number'])}", highlight=False)
        out.print(doc["notice"]["ja"], highlight=False, markup=False)
        out.print(doc["notice"]["en"], highlight=False, markup=False)
    else:
        out.print(
            f"queued for review / 審査待ち: review {doc['review_id']}",
            highlight=False,
        )


@agency_app.command("reviews")
def agency_reviews(
    agency: Agency,
    after: Annotated[
        int, typer.Option(min=0, help="Only items with a review id above this (the next page).")
    ] = 0,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many items.")] = 50,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """The agency's open review items, oldest first (numbers masked), a page at a time."""
    _check_agency(agency)
    try:
        with platform_for(data_dir, database_url) as p:
            items = p.agencies.open_reviews(agency, after=after, limit=limit)
            total = p.agencies.count_open_reviews(agency)
    except MynumberError as e:
        fail(e)
    t = _table("id", "internal id", "name", "reasons", "claimed", "candidate", "queued")
    for r in items:
        t.add_row(
            str(r["review_id"]),
            _text(r["internal_id"]),
            _text(r["record"].get("name")),
            _text(", ".join(r["reasons"])),
            _text(r["claimed_number"]),
            _text(r["candidate_number"]),
            _text(r["created_at"][:16]),
        )
    out.print(t)
    out.print(f"{total} open review items / 審査待ち {total} 件")
    if items and (len(items) == limit):
        nxt = items[-1]["review_id"]
        out.print(
            f"showing {len(items)}; next page: --after {nxt} / 続きは --after {nxt}",
            highlight=False,
        )


@agency_app.command("review")
def agency_review(
    agency: Agency,
    review_id: Annotated[int, typer.Argument(min=1, help="The review item's id.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """One review item side by side with the registered person (differing items in red)."""
    from mynumber.agency.enrolment import review_view

    _check_agency(agency)
    try:
        with platform_for(data_dir, database_url) as p:
            view = review_view(p, agency, review_id)
    except MynumberError as e:
        fail(e)
    out.print(
        f"review {view['review_id']}  internal id: {_text(view['internal_id'])}  "
        f"state: {view['state']}",
        highlight=False,
    )
    out.print(f"reasons: {_text(', '.join(view['reasons']) or '—')}", highlight=False)
    out.print(
        f"claimed: {_text(view['claimed_number'])}  candidate: {_text(view['candidate_number'])}",
        highlight=False,
    )
    sides = view["candidates_view"] or [{"number": None, "registered": {}, "comparison": {}}]
    for n, side in enumerate(sides, 1):
        registered, comparison = side["registered"] or {}, side["comparison"] or {}
        head = f"candidate {n}" + (f" (--candidate {n})" if len(sides) > 1 else "")
        t = _table("item", "agency record", f"{head}: {_text(side['number'])}", "result")
        for item in _ITEMS:
            c = comparison.get(item)
            row = [
                item,
                _text(view["record"].get(item)),
                _text(registered.get(item)),
                _text(c["result"] if c else None),
            ]
            if c and c["differs"]:
                row = [f"[red]{cell}[/red]" for cell in row]
            t.add_row(*row)
        out.print(t)
    if not view["candidates_view"]:
        out.print("The evidence names no person / 証拠が本人を特定していません (reject only)")
    if view["state"] != "open":
        out.print(
            f"decided by {_text(view['decided_by'])} at {_text(view['decided_at'])}: "
            f"{_text(view['justification'])}",
            highlight=False,
        )


@agency_app.command("decide")
def agency_decide(
    agency: Agency,
    review_id: Annotated[int, typer.Argument(min=1, help="The review item's id.")],
    operator: Operator,
    justification: Annotated[
        str, typer.Option(help="Why (recorded with the decision).", show_default=False)
    ],
    link: Annotated[
        bool, typer.Option("--link", help="Link to the person the evidence names.")
    ] = False,
    reject: Annotated[bool, typer.Option("--reject", help="Reject the record.")] = False,
    candidate: Annotated[
        int,
        typer.Option(
            min=1, max=MAX_CANDIDATES, help="With --link: which candidate (1 = the best)."
        ),
    ] = 1,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Decide a review item once: --link or --reject, with an operator and a justification."""
    from mynumber.agency.enrolment import decide

    _check_agency(agency)
    if link == reject:
        _invalid(
            "decision",
            "Give exactly one of --link and --reject.",
            "--link と --reject のどちらか一方を指定してください。",
        )
    try:
        with platform_for(data_dir, database_url) as p:
            done = decide(
                p,
                agency,
                review_id,
                link=link,
                operator=operator,
                justification=justification,
                candidate=candidate,
            )
            linked = p.agencies.link_of(agency, done["internal_id"]) if link else None
    except MynumberError as e:
        fail(e)
    out.print(
        f"review {done['review_id']}: {done['state']} by {_text(done['decided_by'])}",
        highlight=False,
    )
    if linked is not None:
        # link_of masks already; masking again keeps this line safe if that ever changes
        out.print(f"linked / 紐付け済み: {mask(linked['individual_number'])}", highlight=False)


@agency_app.command("samples")
def samples_cmd(
    out_dir: Annotated[
        Path, typer.Option("--out", file_okay=False, help="Directory for roll.csv and links.csv.")
    ],
    records: Annotated[int, typer.Option(min=1, help="Records in the roll.")] = 2_000,
    links: Annotated[int, typer.Option(min=1, help="Links in the extract.")] = 5_000,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Write a sample roll and a sample extract of links drawn from this platform's residents,
    with the errors agencies make (numbers are synthetic residents'; files are mode 0600)."""
    from mynumber.cli_link import write_samples

    with platform_for(data_dir, database_url) as p:
        roll_file, links_file = write_samples(p, out_dir, records, links)
    out.print(f"{escape(str(roll_file))}\n{escape(str(links_file))}", highlight=False)
