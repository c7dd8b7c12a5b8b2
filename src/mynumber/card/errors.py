"""The card role's errors: stable codes (docs/reason-codes.md, "Card (chip)"), English and Japanese.

No message, and nothing in `extra`, ever holds a PIN, a PIN hash or key material: a PIN error
says which PIN and how many tries are left, never what was typed.
"""

from __future__ import annotations

from mynumber.card.kinds import MAX_TRIES, KeyKind, key_label, pin_label
from mynumber.errors import (
    AuthError,
    ConflictError,
    ForbiddenError,
    MynumberError,
    NotFoundError,
    ValidationError,
)

__all__ = [
    "AlreadyCertifiedError",
    "CardError",
    "CardExistsError",
    "CardNotFoundError",
    "CertificateMismatchError",
    "CertificateValidityError",
    "ChipIdError",
    "CsrSubjectError",
    "FileTamperedError",
    "NoCertificateError",
    "NoFaceDataError",
    "NonceError",
    "PinFormatError",
    "PinGuessableError",
    "PinLockedError",
    "PinWrongError",
    "UnlockUnauthorisedError",
]

_COUNTER_EN = "Reset it at your municipality's counter, bringing the card and an identity document."
_COUNTER_JA = "カードと本人確認書類を持って、お住まいの市区町村の窓口で再設定してください。"


class CardError(MynumberError):
    """Base of every error the card role raises; each subclass also has its HTTP-status base."""


class PinFormatError(CardError, ValidationError):
    """A PIN that can never be right for its kind (checked before any try is counted)."""

    def __init__(self, kind: KeyKind) -> None:
        en_pin, ja_pin = pin_label(kind)
        if kind is KeyKind.AUTHENTICATION:
            en_rule, ja_rule = "exactly 4 digits (0–9)", "数字4桁"
        else:
            en_rule = "6 to 16 characters of capital letters A–Z and digits 0–9, with at least one of each"
            ja_rule = "英大文字（A〜Z）と数字（0〜9）をそれぞれ1文字以上含む6〜16文字"
        super().__init__(
            "card.pin_format",
            f"The {en_pin} is {en_rule}.",
            f"{ja_pin}は{ja_rule}です。",
            field="pin",
            extra={"pin_kind": str(kind)},
        )


_GUESSABLE = {
    "birth_date": ("it is made from the holder's birth date", "生年月日から作られています"),
    "repeated": ("it repeats the same characters", "同じ文字の繰り返しです"),
    "sequence": ("it is a run of consecutive characters", "連続した文字の並びです"),
    "common": ("it is on the list of commonly chosen PINs", "よく使われる暗証番号の一覧にあります"),
}


class PinGuessableError(CardError, ValidationError):
    """A new PIN that others could guess; `reason` is one of the keys of ``_GUESSABLE``."""

    def __init__(self, kind: KeyKind, reason: str) -> None:
        en_pin, ja_pin = pin_label(kind)
        en_why, ja_why = _GUESSABLE[reason]
        super().__init__(
            "card.pin_guessable",
            f"This {en_pin} is too easy to guess ({en_why}); choose another.",
            f"この{ja_pin}は推測されやすいため使えません（{ja_why}）。別の暗証番号を設定してください。",
            field="new_pin",
            extra={"pin_kind": str(kind), "reason": reason},
        )


class PinWrongError(CardError, AuthError):
    """A wrong PIN; `extra["remaining_tries"]` counts down to 0, when the PIN has just locked."""

    def __init__(self, kind: KeyKind, remaining: int) -> None:
        en_pin, ja_pin = pin_label(kind)
        if remaining > 0:
            en = f"Wrong {en_pin}. {remaining} tries left before it locks."
            ja = f"{ja_pin}が違います。あと{remaining}回間違えるとロックされます。"
        else:
            en = f"Wrong {en_pin}. It is now locked after {MAX_TRIES[kind]} wrong tries. {_COUNTER_EN}"
            ja = f"{ja_pin}が違います。{MAX_TRIES[kind]}回続けて間違えたため、ロックされました。{_COUNTER_JA}"
        super().__init__(
            "card.pin_wrong",
            en,
            ja,
            field="pin",
            extra={"pin_kind": str(kind), "remaining_tries": remaining, "locked": remaining == 0},
        )


class PinLockedError(CardError, ForbiddenError):
    """The PIN is locked: nothing is compared, not even the right PIN, until the counter resets it."""

    def __init__(self, kind: KeyKind) -> None:
        en_pin, ja_pin = pin_label(kind)
        super().__init__(
            "card.pin_locked",
            f"The {en_pin} is locked after {MAX_TRIES[kind]} wrong tries. {_COUNTER_EN}",
            f"{ja_pin}は{MAX_TRIES[kind]}回続けて間違えたため、ロックされています。{_COUNTER_JA}",
            field="pin",
            extra={"pin_kind": str(kind), "remaining_tries": 0, "locked": True},
        )


class NoCertificateError(CardError, ConflictError):
    def __init__(self, kind: KeyKind) -> None:
        en_key, ja_key = key_label(kind)
        super().__init__(
            "card.no_certificate",
            f"No {en_key} has been issued to this card.",
            f"このカードには{ja_key}が発行されていません。",
            extra={"key_kind": str(kind)},
        )


class CertificateValidityError(CardError, ConflictError):
    def __init__(self, kind: KeyKind) -> None:
        en_key, ja_key = key_label(kind)
        super().__init__(
            "card.certificate_outside_validity",
            f"The {en_key} on this card is expired (or not yet valid); renew it at your "
            "municipality's counter.",
            f"このカードの{ja_key}は有効期間外です。市区町村の窓口で更新してください。",
            extra={"key_kind": str(kind)},
        )


class CertificateMismatchError(CardError, ValidationError):
    def __init__(self, kind: KeyKind) -> None:
        en_key, ja_key = key_label(kind)
        super().__init__(
            "card.certificate_mismatch",
            f"This {en_key} was issued for another key, not for this card's {kind} key.",
            f"この{ja_key}は、このカードの鍵に対して発行されたものではありません。",
            field="certificate",
            extra={"key_kind": str(kind)},
        )


class AlreadyCertifiedError(CardError, ConflictError):
    """A certificate request is made only for a key that has no certificate yet."""

    def __init__(self, kind: KeyKind) -> None:
        en_key, ja_key = key_label(kind)
        super().__init__(
            "card.already_certified",
            f"This card's {kind} key already has a {en_key}; a new certificate needs a new key.",
            f"このカードの鍵には既に{ja_key}が発行されています。新しい証明書には新しい鍵が必要です。",
            extra={"key_kind": str(kind)},
        )


class CsrSubjectError(CardError, ValidationError):
    def __init__(self) -> None:
        super().__init__(
            "card.csr_subject",
            "A user-authentication certificate carries no personal data, so its request names "
            "no subject.",
            "利用者証明用電子証明書には個人情報を記載しないため、その発行要求に氏名等は指定できません。",
            field="subject",
        )


class NonceError(CardError, ValidationError):
    def __init__(self, low: int, high: int) -> None:
        super().__init__(
            "card.nonce_invalid",
            f"The authentication challenge must be {low} to {high} bytes.",
            f"認証のチャレンジは{low}〜{high}バイトでなければなりません。",
            field="nonce",
        )


class NoFaceDataError(CardError, NotFoundError):
    def __init__(self) -> None:
        super().__init__(
            "card.no_face_data",
            "This is a smartphone certificate (スマホ用電子証明書): it holds the two certificates "
            "and their keys but no card-face data (name, address, birth date, sex).",
            "スマホ用電子証明書には2つの電子証明書と鍵のみが格納され、券面事項（氏名・住所・"
            "生年月日・性別）はありません。",
        )


_UNLOCK_REASONS = {
    "missing": ("no counter authorisation was given", "窓口での承認がありません"),
    "municipality_code": (
        "the municipality code is not a valid 6-digit code",
        "市区町村コードが正しい6桁のコードではありません",
    ),
    "staff_id": ("no valid staff id", "職員IDが正しくありません"),
    "identity_check": (
        "the identity check must be one photo ID or two documents",
        "本人確認は顔写真付き書類1点または書類2点で行う必要があります",
    ),
    "time": ("its time has no time zone", "承認時刻にタイムゾーンがありません"),
    "future": ("it is dated in the future", "承認時刻が未来です"),
    "expired": ("it is too old; have the identity checked again", "承認の有効時間を過ぎています"),
}


class UnlockUnauthorisedError(CardError, ForbiddenError):
    """A PIN reset without a valid, fresh authorisation from a municipality counter."""

    def __init__(self, reason: str) -> None:
        en_why, ja_why = _UNLOCK_REASONS[reason]
        super().__init__(
            "card.unlock_unauthorised",
            f"A PIN can be reset only at a municipality counter after an identity check: {en_why}.",
            f"暗証番号の再設定は、市区町村の窓口で本人確認を行った後にのみできます（{ja_why}）。",
            field="counter_authorisation",
            extra={"reason": reason},
        )


class FileTamperedError(CardError):
    """The chip file fails authentication (AES-GCM tag), or is for another chip: nothing is used."""

    status = 500

    def __init__(self) -> None:
        super().__init__(
            "card.file_tampered",
            "The stored card data failed its integrity check and was not used.",
            "保存されたカードのデータが完全性の検査に失敗したため、使用しませんでした。",
        )


class CardNotFoundError(CardError, NotFoundError):
    def __init__(self) -> None:
        super().__init__(
            "card.not_found",
            "No card is stored under that id.",
            "そのIDのカードは保存されていません。",
            field="chip_id",
        )


class CardExistsError(CardError, ConflictError):
    def __init__(self) -> None:
        super().__init__(
            "card.exists",
            "A card is already stored under that id; it is never overwritten by a new one.",
            "そのIDのカードは既に保存されています。新しいカードで上書きすることはありません。",
            field="chip_id",
        )


class ChipIdError(CardError, ValidationError):
    def __init__(self) -> None:
        super().__init__(
            "card.chip_id",
            "A chip id is 1 to 64 letters, digits, '-' and '_'.",
            "チップIDは英数字・「-」・「_」の1〜64文字です。",
            field="chip_id",
        )
