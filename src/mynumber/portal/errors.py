"""Refusals of the portal's account registration and review: stable codes, ja + en.

Every code is listed in docs/reason-codes.md ("Public-funds accounts"). The card's own refusals
keep their codes (``pki.*`` for the certificate, ``relying.signature_invalid``, ``ocsp.*``,
``login.session_invalid`` and ``login.holder_unknown``).
"""

from __future__ import annotations

from typing import Any

from mynumber.errors import MynumberError

__all__ = ["MESSAGES", "PortalError", "portal_error"]


class PortalError(MynumberError):
    """A registration or review refused, with a stable code."""

    status = 422


# code -> (HTTP status, English, Japanese). The codes are stable; the wording may be improved.
MESSAGES: dict[str, tuple[int, str, str]] = {
    "portal.account_invalid": (
        422,
        "The account is not a Zengin account: a 4-digit bank code, a 3-digit branch code and an "
        "account number of 1–7 digits.",
        "口座の形式が正しくありません（金融機関コード4桁、支店コード3桁、口座番号1〜7桁）。",
    ),
    "portal.holder_kana_invalid": (
        422,
        "The account holder's name (kana) is required, at most 60 characters, without control "
        "characters.",
        "口座名義（カナ）は必須で、60文字以内、制御文字を含まない必要があります。",
    ),
    "portal.statement_malformed": (
        422,
        "The signed statement is not the canonical statement the portal issued "
        "(POST /api/portal/accounts/challenge).",
        "署名された申請内容が、ポータルが発行した正規の形式ではありません。",
    ),
    "portal.challenge_unknown": (
        401,
        "This registration statement was not issued here (or has been cleared); ask for a new "
        "one and sign it with your card.",
        "この登録用の申請内容は発行されていません。新たに取得し、カードで署名してください。",
    ),
    "portal.challenge_expired": (
        401,
        "This registration statement has expired (120 seconds); ask for a new one.",
        "この登録用の申請内容は有効期限（120秒）が切れています。新たに取得してください。",
    ),
    "portal.challenge_used": (
        409,
        "This signed statement has already been used: one signature authorises one "
        "registration. Sign a new statement with your card.",
        "この署名済みの申請内容は使用済みです。1つの署名で登録できるのは1回だけです。カードで新たに署名してください。",
    ),
    "portal.challenge_other_person": (
        403,
        "This registration statement was issued to another person's session: a statement is "
        "signed and used by the person who asked for it.",
        "この申請内容は別の方のセッションに発行されたものです。申請内容は、取得した本人のみが署名・使用できます。",
    ),
    "portal.statement_mismatch": (
        422,
        "The signed statement differs from the one issued for this challenge.",
        "署名された申請内容が、発行された内容と一致しません。",
    ),
    "portal.card_other_person": (
        403,
        "The card that signed belongs to another person than the one logged in. Each person "
        "registers with their own card: log out and let the next person log in with theirs.",
        "署名したカードは、ログイン中の方とは別の方のものです。登録はご本人のカードで行ってください。前の方をログアウトし、次の方がご自身のカードでログインしてください。",
    ),
    "portal.person_not_active": (
        409,
        "The person's resident record is closed (moved out or deceased): no account can be "
        "registered to it.",
        "住民票が消除されています（転出・死亡）。口座を登録できません。",
    ),
    "portal.holder_mismatch": (
        422,
        "The account holder's name is not your registered name (kana), current or earlier. A "
        "public-funds account must be in your own name.",
        "口座名義が、登録されているお名前（フリガナ。旧姓を含む）と一致しません。公金受取口座はご本人名義の口座に限ります。",
    ),
    "portal.no_account": (
        404,
        "No public-funds account is registered to you.",
        "公金受取口座は登録されていません。",
    ),
    "portal.review_not_found": (
        404,
        "No review item with this id.",
        "この番号の確認案件はありません。",
    ),
    "portal.review_decided": (
        409,
        "This review item was already decided (or superseded by a new registration): decided once.",
        "この確認案件は処理済み（または新たな登録により置き換え済み）です。",
    ),
    "portal.review_justification": (
        422,
        "A decision needs the operator and a justification.",
        "判断には担当者と理由が必要です。",
    ),
}


def portal_error(
    code: str, *, field: str | None = None, extra: dict[str, Any] | None = None
) -> PortalError:
    """The :class:`PortalError` for `code`, with its status and both messages."""
    status, en, ja = MESSAGES[code]
    return PortalError(code, en, ja, field=field, status=status, extra=extra)
