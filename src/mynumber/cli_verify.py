"""Commands for relying parties and the holder's card: `mynumber sign`, `mynumber
verify-signature` and `mynumber verifier register|deactivate` — the bank eKYC flow (犯収法
method ワ) from the command line. Thin: they read files, call the SDK or a service, and print."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from mynumber.cli import (
    DatabaseUrl,
    DataDir,
    app,
    err,
    fail,
    out,
    platform_for,
    settings_for,
)
from mynumber.errors import MynumberError

__all__ = ["sign", "verifier_app", "verify_signature_cmd"]

verifier_app = typer.Typer(
    no_args_is_help=True, help="Registered verifiers (署名検証者・利用者証明検証者)."
)

PIN_ENV = "MYNUMBER_SIGNATURE_PIN"
SCOPES_FOR_KIND = {"signature": ("jlis:verify", "jlis:four-items"), "auth": ("jlis:verify",)}


def sign(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    chip: Annotated[str, typer.Option("--chip", help="The chip id (a card of this deployment).")],
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the signature.")],
    data_dir: DataDir = None,
) -> None:
    """Sign FILE with the card's signature key (PIN from MYNUMBER_SIGNATURE_PIN or a hidden
    prompt); write the signature to --out and the signature certificate beside it (PEM)."""
    from cryptography.hazmat.primitives import serialization

    from mynumber.card import ChipStore, KeyKind
    from mynumber.clock import SystemClock
    from mynumber.keystore import FileKeystore

    s = settings_for(data_dir, None)
    pin = os.environ.get(PIN_ENV) or typer.prompt(
        "署名用電子証明書の暗証番号 / signature PIN", hide_input=True
    )
    try:
        keystore = FileKeystore(s.data_dir / "keys", s.master_key)
        card = ChipStore(s.data_dir / "cards", keystore).load(chip, SystemClock())
        signature = card.sign(KeyKind.SIGNATURE, file.read_bytes(), pin)
        certificate = card.certificate(KeyKind.SIGNATURE)
    except MynumberError as e:
        fail(e)
        return
    out_file.write_bytes(signature)
    cert_file = out_file.with_name(f"{out_file.name}.cert.pem")
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    out.print(f"signature: {out_file}\ncertificate: {cert_file}", highlight=False)


def verify_signature_cmd(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    signature: Annotated[
        Path, typer.Option("--signature", exists=True, dir_okay=False, help="Signature (binary).")
    ],
    certificate: Annotated[
        Path, typer.Option("--certificate", exists=True, dir_okay=False, help="PEM or DER.")
    ],
    ocsp_url: Annotated[
        str | None, typer.Option("--ocsp-url", help="J-LIS's OCSP responder (with --token).")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="MYNUMBER_VERIFIER_TOKEN", help="Verifier's token."),
    ] = None,
    chain: Annotated[
        Path | None,
        typer.Option(
            "--chain", exists=True, dir_okay=False, help="Trusted JPKI chain (PEM) for --ocsp-url."
        ),
    ] = None,
    kind: Annotated[str, typer.Option(help="signature | auth")] = "signature",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Verify a signature over FILE: chain, kind, validity, revocation; print the four items of
    a valid signature certificate. Exit 0 if valid, 1 with the reason code if not.

    Over HTTP as a registered verifier (--ocsp-url, --token, --chain), or in process against
    this deployment's CA and certificate table (--data-dir)."""
    from mynumber.clock import SystemClock
    from mynumber.jlis.ca import CertificateKind
    from mynumber.relying import LocalStatusSource, OcspClient, Trust, verify_signature

    if kind not in ("signature", "auth"):
        err.print("[red]error[/red] --kind is signature or auth")
        raise typer.Exit(2)
    data, sig, cert = file.read_bytes(), signature.read_bytes(), certificate.read_bytes()
    purpose = CertificateKind(kind)
    now = SystemClock().now()
    if ocsp_url is not None:
        if token is None or chain is None:
            err.print("[red]error[/red] --ocsp-url needs --token and --chain")
            raise typer.Exit(2)
        try:
            trust = Trust.from_pem(chain.read_bytes())
        except ValueError as e:
            err.print(f"[red]error[/red] --chain: {e}")
            raise typer.Exit(2) from None
        verdict = verify_signature(
            data, sig, cert, trust=trust, status=OcspClient(token, ocsp_url), at=now, kind=purpose
        )
    else:
        with platform_for(data_dir, database_url) as p:
            trust = Trust(p.pki.ca.issuing_cert, p.pki.ca.root_cert)
            status = LocalStatusSource(p.pki.status)
            verdict = verify_signature(
                data, sig, cert, trust=trust, status=status, at=p.clock.now(), kind=purpose
            )
    if verdict.error is not None:
        fail(verdict.error, "invalid / 無効")
        return
    assert verdict.serial is not None and verdict.not_after is not None
    out.print("valid / 有効", highlight=False)
    out.print(f"serial: {verdict.serial:X}", highlight=False)
    out.print(f"not after: {verdict.not_after.isoformat()}", highlight=False)
    items = verdict.four_items
    if items is not None:
        out.print(f"氏名 name: {items.name}", highlight=False, markup=False)
        out.print(f"住所 address: {items.address}", highlight=False, markup=False)
        out.print(f"生年月日 birth date: {items.birth_date.isoformat()}", highlight=False)
        out.print(f"性別 sex: {items.sex}", highlight=False)


@verifier_app.command("register")
def verifier_register(
    name: Annotated[str, typer.Argument(help="The verifier's name (e.g. the bank).")],
    kind: Annotated[list[str], typer.Option(help="signature and/or auth; repeat for both.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Register a verifier with J-LIS and create its bearer token (printed once)."""
    from mynumber.api.auth import TokenStore

    if not kind or not set(kind) <= set(SCOPES_FOR_KIND):
        err.print("[red]error[/red] --kind is signature or auth")
        raise typer.Exit(2)
    try:
        with platform_for(data_dir, database_url) as p:
            verifier = p.verifiers.register(name, kind)
            scopes = sorted({s for k in kind for s in SCOPES_FOR_KIND[k]})
            token = TokenStore(p.settings.data_dir / "tokens.json").create(
                f"verifier {verifier.id}", scopes, verifier=verifier.id
            )
    except MynumberError as e:
        fail(e)
        return
    kinds = ", ".join(sorted(verifier.kinds))
    err.print(f"verifier {verifier.id} ({kinds}); scopes: {', '.join(scopes)}; token (shown once):")
    out.print(token, highlight=False)


@verifier_app.command("deactivate")
def verifier_deactivate(
    verifier_id: Annotated[str, typer.Argument(help="The verifier's id (vf_…).")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Withdraw a registration: its tokens stop working at once."""
    with platform_for(data_dir, database_url) as p:
        found = p.verifiers.deactivate(verifier_id)
    if not found:
        err.print(f"[red]error[/red] no verifier {verifier_id}")
        raise typer.Exit(1)
    out.print(f"deactivated {verifier_id}")


app.command("sign")(sign)
app.command("verify-signature")(verify_signature_cmd)
app.add_typer(verifier_app, name="verifier")
