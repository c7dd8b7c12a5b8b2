"""`mynumber certificate issue|support-measure` (the counter) and `mynumber verify-document`
(anyone): signed 住民票の写し, 住民票記載事項証明書 and 印鑑登録証明書, and their check."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mynumber.cli import DatabaseUrl, DataDir, app, fail, out, platform_for
from mynumber.dates import parse_date
from mynumber.documents.content import DocumentKind
from mynumber.documents.issue import IssueRequest
from mynumber.documents.verify import DocumentVerification
from mynumber.errors import MynumberError, ValidationError

__all__ = ["certificate_app"]

certificate_app = typer.Typer(
    help="Certificates issued at the counter (住民票の写し, 記載事項証明書, 印鑑登録証明書).",
    no_args_is_help=True,
)
app.add_typer(certificate_app, name="certificate")

MAX_PDF_BYTES = 20 << 20

Resident = Annotated[str, typer.Option("--resident-code", help="The subject's 住民票コード.")]
Operator = Annotated[str, typer.Option("--operator", help="The clerk (recorded).")]
Municipality = Annotated[
    str, typer.Option("--municipality", help="Municipality code (default: 新宿区 131041).")
]


def _unwritable(path: Path, e: OSError) -> ValidationError:
    return ValidationError(
        "file.unwritable",
        f"Cannot write {path}: {e.strerror}",
        f"{path} に書き込めません: {e.strerror}",
        field="out",
    )


@certificate_app.command("issue")
def certificate_issue(
    resident_code: Resident,
    operator: Operator,
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the signed PDF.")],
    kind: Annotated[
        DocumentKind,
        typer.Option(help="juminhyo (住民票の写し), kisai_jiko (記載事項証明書), inkan (印鑑)."),
    ] = DocumentKind.residence,
    household: Annotated[
        bool, typer.Option("--household", help="住民票: every member of the household.")
    ] = False,
    member: Annotated[
        list[str] | None,
        typer.Option("--member", help="住民票: a household member to include (repeatable)."),
    ] = None,
    relationship: Annotated[
        bool, typer.Option("--relationship", help="住民票: print 続柄.")
    ] = False,
    domicile: Annotated[
        bool, typer.Option("--domicile", help="住民票: print 本籍・筆頭者.")
    ] = False,
    individual_number: Annotated[
        bool,
        typer.Option("--individual-number", help="Print the individual number (explicit only)."),
    ] = False,
    request_key: Annotated[
        str | None, typer.Option("--request-key", help="Retry-safe key: same key, same document.")
    ] = None,
    municipality: Municipality = "131041",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Issue a signed certificate at the counter and write it as a PDF."""
    try:
        # Make sure the PDF can be written before anything is issued (and charged).
        out_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=out_file.parent, prefix=".issue-", suffix=".pdf")
        os.close(fd)
    except OSError as e:
        fail(_unwritable(out_file, e))
        return
    tmp = Path(tmp_name)
    try:
        with platform_for(data_dir, database_url) as p:
            issued = p.issuance.issue(
                IssueRequest(
                    kind=kind,
                    municipality_code=municipality,
                    resident_code=resident_code,
                    requester=operator,
                    members=tuple(dict.fromkeys(member)) if member else None,
                    whole_household=household,
                    relationship=relationship,
                    domicile=domicile,
                    individual_number=individual_number,
                    request_key=request_key,
                )
            )
        tmp.write_bytes(issued.pdf)
        os.replace(tmp, out_file)
    except OSError as e:
        fail(_unwritable(out_file, e))
    except MynumberError as e:
        fail(e)
    finally:
        tmp.unlink(missing_ok=True)
    out.print(
        f"{'reissued (same request key)' if issued.replay else 'issued'} / 交付しました: "
        f"{escape(issued.kind.title_ja)} {issued.document_id}\n"
        f"digest {issued.content_digest}\nfee ¥{issued.fee}  →  {escape(str(out_file))}"
    )


@certificate_app.command("support-measure")
def support_measure(
    resident_code: Resident,
    operator: Operator,
    until: Annotated[
        str | None, typer.Option(help="End date (ISO or 和暦); none: until lifted.")
    ] = None,
    municipality: Municipality = "131041",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Put a resident under a support measure (支援措置): no kiosk ever issues their record."""
    try:
        end = None if until is None else parse_date(until, field="until")
        with platform_for(data_dir, database_url) as p:
            p.issuance.set_support_measure(municipality, resident_code, operator, until=end)
    except MynumberError as e:
        fail(e)
    out.print("support measure recorded / 支援措置を登録しました")


def _print(v: DocumentVerification) -> None:
    t = Table("check", "result", show_header=True)
    s = v.signature
    t.add_row("署名 signature", f"{s.status}" + (f" ({escape(s.detail)})" if s.detail else ""))
    if s.signer:
        t.add_row("署名者 signer", escape(s.signer))
    t.add_row("交付記録 issuance record", str(v.record))
    if v.content_problem:
        t.add_row("内容 content", escape(v.content_problem))
    for label, value in (
        ("文書ID document id", v.document_id),
        ("種類 kind", v.kind),
        ("市区町村 municipality", v.municipality_code),
        ("交付日時 issued at", v.issued_at),
        ("ダイジェスト digest", v.digest),
    ):
        if value:
            t.add_row(label, escape(value))
    out.print(t)
    out.print(
        "[green]VALID / 有効な証明書です[/green]"
        if v.ok
        else "[red]NOT VALID / この証明書は確認できません[/red]"
    )


@app.command("verify-document")
def verify_document(
    file: Annotated[Path, typer.Argument(help="The PDF to check.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Check a certificate: the municipality's signature (LGPKI, revocation by CRL), its signed
    content, and the issuance record. Exit 0 when valid, 1 when not."""
    try:
        if not file.is_file():
            raise ValidationError(
                "file.missing",
                f"No such file: {file}",
                f"ファイルがありません: {file}",
                field="file",
            )
        try:
            with file.open("rb") as f:
                data = f.read(MAX_PDF_BYTES + 1)
        except OSError as e:
            raise ValidationError(
                "file.unreadable",
                f"Cannot read {file}: {e.strerror}",
                f"{file} を読み取れません: {e.strerror}",
                field="file",
            ) from None
        if len(data) > MAX_PDF_BYTES:
            raise ValidationError(
                "document.too_large",
                f"The file is larger than {MAX_PDF_BYTES >> 20} MiB.",
                f"ファイルが {MAX_PDF_BYTES >> 20} MiB を超えています。",
                field="file",
            )
        with platform_for(data_dir, database_url) as p:
            result = p.verify_document(data)
    except MynumberError as e:
        fail(e)
    if as_json:
        typer.echo(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
    else:
        _print(result)
    raise typer.Exit(0 if result.ok else 1)
