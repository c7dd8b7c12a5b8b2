"""`mynumber kiosk`: a convenience-store multi-copy machine on the command line.

Insert the card (--chip: a card of this deployment, e.g. from cards/DEMO-PINS.csv), enter the
4-digit PIN (MYNUMBER_AUTH_PIN or a hidden prompt), choose the document and its options,
look at the preview, print (the signed PDF is written to --out). It talks to a running server
(`make run`) over HTTP, exactly as a kiosk talks to J-LIS's kiosk centre, and prints only what
passes its own check of signature, nonce and card."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509
from rich.markup import escape
from rich.table import Table

from mynumber.cli import DataDir, app, err, fail, out, settings_for
from mynumber.documents.content import DocumentContent, DocumentKind
from mynumber.errors import MynumberError, ValidationError

__all__ = ["kiosk"]

_MENU = [
    (DocumentKind.residence, "住民票の写し / copy of the residence record"),
    (DocumentKind.residence_items, "住民票記載事項証明書 / residence record items"),
    (DocumentKind.seal, "印鑑登録証明書 / seal registration certificate"),
]
_SEX = {1: "男", 2: "女"}


def _preview(content: DocumentContent) -> None:
    t = Table(title=f"{content.kind.title_ja}（プレビュー / preview）", show_header=False)
    t.add_row("住所 address", escape(content.address))
    for p in content.people:
        extra = f"  {p.relationship}" if p.relationship else ""
        number = (
            f"  個人番号 {'*' * 8}{(p.individual_number or '')[-4:]}" if p.individual_number else ""
        )
        t.add_row(
            "氏名 name",
            escape(f"{p.name}（{p.kana}） {p.birth_date} {_SEX.get(p.sex, '')}{extra}{number}"),
        )
    if content.seal is not None:
        t.add_row("印影 seal", f"SHA-256 {content.seal.image_digest[:16]}…")
    t.add_row("文書ID document id", content.document_id)
    out.print(t)


def _token(data_dir: Path, explicit: str | None) -> str:
    if explicit:
        return explicit
    file = data_dir / "demo-token"
    if file.is_file():
        return file.read_text().strip()
    raise ValidationError(
        "kiosk.token",
        "No kiosk token: pass --token (scope kiosk:issue) or run `make run` first.",
        "端末のトークンがありません。--token（kiosk:issue）を指定するか、先に make run を実行してください。",
        field="token",
    )


@app.command("kiosk")
def kiosk(
    chip: Annotated[str, typer.Option("--chip", help="The inserted card's chip id.")],
    out_file: Annotated[Path, typer.Option("--out", help="Where the printed PDF goes.")],
    kind: Annotated[
        DocumentKind | None,
        typer.Option(help="juminhyo | kisai_jiko | inkan (asked on screen when omitted)."),
    ] = None,
    household: Annotated[bool, typer.Option(help="住民票: the whole household.")] = False,
    relationship: Annotated[bool, typer.Option(help="住民票: print 続柄.")] = False,
    domicile: Annotated[bool, typer.Option(help="住民票: print 本籍・筆頭者.")] = False,
    individual_number: Annotated[
        bool, typer.Option("--individual-number", help="Print the individual number.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="Print without asking at the preview.")
    ] = False,
    url: Annotated[
        str | None, typer.Option(help="The server (default: settings' base URL).")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="MYNUMBER_KIOSK_TOKEN", help="Kiosk token (default: demo-token)."),
    ] = None,
    kiosk_id: Annotated[str, typer.Option("--kiosk-id", help="This machine's id.")] = "kiosk-cli-1",
    lgpki_root: Annotated[
        Path | None,
        typer.Option(help="The pinned LGPKI root (default: the deployment's own)."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Print a certificate like a convenience-store kiosk: card, PIN, choice, preview, print."""
    from mynumber.card import ChipStore
    from mynumber.clock import SystemClock
    from mynumber.keystore import FileKeystore
    from mynumber.kiosk.client import KioskClient
    from mynumber.kiosk.protocol import KioskOrder

    s = settings_for(data_dir, None)
    try:
        keystore = FileKeystore(s.data_dir / "keys", s.master_key)
        card = ChipStore(s.data_dir / "cards", keystore).load(chip, SystemClock())
        root_file = lgpki_root or s.data_dir / "lgpki" / "jpki-root-ca.pem"
        if not root_file.is_file():
            raise ValidationError(
                "kiosk.token",
                f"No LGPKI root at {root_file}: start the server first, or pass --lgpki-root.",
                f"{root_file} にLGPKIのルート証明書がありません。",
                field="lgpki_root",
            )
        root = x509.load_pem_x509_certificate(root_file.read_bytes())
        kiosk_token = _token(s.data_dir, token)
    except MynumberError as e:
        fail(e)
        return
    out.print("カードを読み取りました / card read")
    pin = os.environ.get("MYNUMBER_AUTH_PIN") or typer.prompt(
        "利用者証明用電子証明書の暗証番号（数字4桁） / PIN", hide_input=True
    )
    if kind is None:
        for i, (_, label) in enumerate(_MENU, start=1):
            out.print(f"  {i}. {label}")
        choice = typer.prompt("番号を選んでください / choose", type=int, default=1)
        if not 1 <= choice <= len(_MENU):
            fail(ValidationError("kiosk.choice", "No such choice.", "その番号はありません。"))
        kind = _MENU[choice - 1][0]
    order = KioskOrder(
        kind=kind,
        household=household,
        relationship=relationship,
        domicile=domicile,
        individual_number=individual_number,
    )

    def confirm(content: DocumentContent) -> bool:
        _preview(content)
        return yes or typer.confirm("印刷しますか / print?", default=True)

    try:
        with KioskClient(url or s.base_url, kiosk_token, kiosk_id, root) as client:
            printed = client.run(card, pin, order, out_file, confirm=confirm)
    except MynumberError as e:
        fail(e)
        return
    except OSError as e:  # the "printer": --out cannot be written (reported aborted already)
        fail(
            ValidationError(
                "file.unwritable",
                f"Cannot write {out_file}: {e.strerror}; nothing was printed.",
                f"{out_file} に書き込めません（{e.strerror}）。印刷していません。",
                field="out",
            )
        )
        return
    if printed is None:
        err.print("取り消しました。印刷していません / cancelled, nothing printed")
        raise typer.Exit(1)
    if not printed.reported:
        err.print("印刷結果をセンターに報告できませんでした / the print could not be reported")
    out.print(
        f"印刷しました / printed: {escape(str(printed.path))}\n"
        f"文書ID {printed.document_id}  手数料 fee ¥{printed.fee}\n"
        "カードをお取りください / please take your card"
    )
