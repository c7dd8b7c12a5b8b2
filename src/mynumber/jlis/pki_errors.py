"""Errors of the JPKI certificate authority and of certificate verification (stable `pki.*` codes).

Every code is listed under "JPKI CA" in docs/reason-codes.md. Refusals a relying party sees
(unknown issuer, bad signature, expired, revoked, …) are 422: the certificate presented can never
be accepted as it is. `pki.ca_key` is internal (500): the CA's own key material is unusable.
"""

from __future__ import annotations

from typing import Any

from mynumber.errors import MynumberError

__all__ = ["MESSAGES", "PkiError", "pki_error"]


class PkiError(MynumberError):
    """A certificate, CSR, CRL or CA operation refused, with a stable `pki.*` code."""

    status = 422


# code -> (English, Japanese). The codes are stable; the wording may be improved.
MESSAGES: dict[str, tuple[str, str]] = {
    "pki.unknown_issuer": (
        "The certificate was not issued by the JPKI certification authority.",
        "この電子証明書は公的個人認証サービスの認証局が発行したものではありません。",
    ),
    "pki.bad_signature": (
        "The certificate's signature does not verify: it has been altered or is forged.",
        "電子証明書の署名を検証できません。改ざんまたは偽造されています。",
    ),
    "pki.expired": (
        "The certificate has expired.",
        "電子証明書の有効期限が切れています。",
    ),
    "pki.not_yet_valid": (
        "The certificate is not yet valid.",
        "電子証明書の有効期間がまだ始まっていません。",
    ),
    "pki.wrong_key_usage": (
        "The certificate may not be used for this purpose (key usage).",
        "この電子証明書はこの用途には使用できません（鍵用途）。",
    ),
    "pki.revoked": (
        "The certificate has been revoked.",
        "電子証明書は失効しています。",
    ),
    "pki.invalid_chain": (
        "The certificate chain does not validate.",
        "電子証明書の証明書パスを検証できません。",
    ),
    "pki.crl_invalid": (
        "The revocation list was not issued by the certificate's certification authority.",
        "失効情報ファイル（CRL）が電子証明書の認証局により発行されたものではありません。",
    ),
    "pki.crl_stale": (
        "The revocation list is not current.",
        "失効情報ファイル（CRL）が最新ではありません。",
    ),
    "pki.malformed": (
        "Not a well-formed certificate, certificate request or revocation list.",
        "電子証明書、証明書署名要求または失効情報ファイルの形式が正しくありません。",
    ),
    "pki.csr_signature": (
        "The certificate request is not signed by the key it carries.",
        "証明書署名要求が、含まれる公開鍵に対応する秘密鍵で署名されていません。",
    ),
    "pki.key_type": (
        "Unsupported public key: use RSA with 2048 to 8192 bits, or ECDSA on P-256 or P-384.",
        "対応していない公開鍵です。2048〜8192ビットのRSA、またはP-256・P-384の楕円曲線暗号を使用してください。",
    ),
    "pki.validity": (
        "The validity period is empty or lies outside the certification authority's own.",
        "有効期間が空であるか、認証局の有効期間の外にあります。",
    ),
    "pki.serial": (
        "A serial number is a positive integer of at most 20 octets.",
        "シリアル番号は20オクテット以内の正の整数です。",
    ),
    "pki.crl_number": (
        "A CRL number is a non-negative integer of at most 20 octets.",
        "CRL番号は20オクテット以内の0以上の整数です。",
    ),
    "pki.four_items": (
        "A basic item (name, address, birth date, sex) is missing or invalid.",
        "基本4情報（氏名・住所・生年月日・性別）に不足または誤りがあります。",
    ),
    "pki.stay_ended": (
        "The period of stay ends before the date of issuance.",
        "在留期間の満了日が発行日より前です。",
    ),
    "pki.ca_key": (
        "The certification authority's key material cannot be read.",
        "認証局の鍵を読み込めません。",
    ),
    "pki.resident_unknown": (
        "J-LIS has no identity for this resident record code.",
        "この住民票コードの本人確認情報は登録されていません。",
    ),
    "pki.resident_inactive": (
        "Certificates are issued only to current residents (not after moving out or death).",
        "電子証明書は住民登録のある方にのみ発行できます（転出・死亡の後は発行できません）。",
    ),
}

_STATUS = {"pki.ca_key": 500, "pki.resident_unknown": 404, "pki.resident_inactive": 409}


def pki_error(
    code: str, *, field: str | None = None, extra: dict[str, Any] | None = None
) -> PkiError:
    """The :class:`PkiError` for `code`, with its standard English and Japanese messages."""
    en, ja = MESSAGES[code]
    return PkiError(code, en, ja, field=field, status=_STATUS.get(code), extra=extra)
