"""Refusals a relying party sees, beyond the certificate's own (`pki.*`): stable codes, ja + en.

Every code is listed in docs/reason-codes.md ("Relying parties and login"). Certificate
refusals (foreign CA, altered certificate, expired, wrong kind, revoked) keep the `pki.*` codes
of :func:`mynumber.jlis.ca.verify_chain`; this module adds the signature over the data, the
revocation check over OCSP, and the challenge–response login.
"""

from __future__ import annotations

from typing import Any

from mynumber.errors import MynumberError

__all__ = ["MESSAGES", "RelyingError", "relying_error"]


class RelyingError(MynumberError):
    """A signature, certificate status or login refused, with a stable code."""

    status = 422


# code -> (HTTP status, English, Japanese). The codes are stable; the wording may be improved.
MESSAGES: dict[str, tuple[int, str, str]] = {
    "relying.signature_invalid": (
        422,
        "The signature does not verify with the certificate's key: the data or the signature "
        "was altered, or another key signed it.",
        "署名を電子証明書の公開鍵で検証できません。データか署名が改ざんされたか、別の鍵で署名されています。",
    ),
    "ocsp.unavailable": (
        503,
        "The certificate's revocation status could not be obtained (the OCSP responder did not "
        "answer, or answered with an error); the certificate is not accepted without it.",
        "失効状態を確認できませんでした（OCSPレスポンダが応答しないか、エラーを返しました）。確認できない電子証明書は受け付けません。",
    ),
    "ocsp.unauthorised": (
        503,
        "The OCSP responder refused this verifier: only verifiers registered with J-LIS may ask "
        "for revocation status.",
        "OCSPレスポンダがこの検証者からの照会を拒否しました。失効情報はJ-LISに届け出た検証者のみが照会できます。",
    ),
    "ocsp.unknown": (
        422,
        "The OCSP responder does not know this certificate: it was not issued by the JPKI CA.",
        "OCSPレスポンダはこの電子証明書を把握していません（公的個人認証サービスの認証局が発行したものではありません）。",
    ),
    "ocsp.stale": (
        422,
        "The OCSP response is not current (its next update has passed, or it is dated in the "
        "future).",
        "OCSP応答が最新ではありません（次回更新日時を過ぎているか、日時が未来です）。",
    ),
    "ocsp.bad_signature": (
        422,
        "The OCSP response is not signed by the JPKI CA or by an OCSP signer it certified.",
        "OCSP応答が公的個人認証サービスの認証局、またはその認証したOCSP署名者により署名されていません。",
    ),
    "ocsp.mismatch": (
        422,
        "The OCSP response does not answer the question asked (another certificate, another "
        "issuer, or a nonce that was not ours), or it is not a well-formed OCSP response.",
        "OCSP応答が照会内容と一致しません（別の証明書・発行者、またはノンスの不一致）、または形式が正しくありません。",
    ),
    "login.nonce_unknown": (
        401,
        "This login challenge was not issued here (or has been cleared); ask for a new one.",
        "このログイン用チャレンジは発行されていません。新しいチャレンジを取得してください。",
    ),
    "login.nonce_used": (
        401,
        "This login challenge has already been used: each one serves a single login.",
        "このログイン用チャレンジは使用済みです。チャレンジは1回のログインにのみ使えます。",
    ),
    "login.nonce_expired": (
        401,
        "This login challenge has expired; ask for a new one.",
        "このログイン用チャレンジは有効期限が切れています。新しいチャレンジを取得してください。",
    ),
    "login.holder_unknown": (
        401,
        "The certificate verifies, but J-LIS has no holder on record for it.",
        "電子証明書は有効ですが、J-LISに利用者の記録がありません。",
    ),
    "login.session_invalid": (
        401,
        "The login session is unknown, altered or expired; log in again with the card.",
        "ログインセッションが無効か期限切れです。カードで再度ログインしてください。",
    ),
}


def relying_error(
    code: str, *, field: str | None = None, extra: dict[str, Any] | None = None
) -> RelyingError:
    """The :class:`RelyingError` for `code`, with its status and both messages."""
    status, en, ja = MESSAGES[code]
    return RelyingError(code, en, ja, field=field, status=status, extra=extra)
