"""The My Number card's lifecycle as J-LIS's card management system (カード管理システム) keeps it.

Pure rules, no I/O: the states a card record passes through, which action may move it from
which state (:data:`TRANSITIONS`), the identity-document check at the counter, validity dates,
the renewal window, the signature-certificate age limit and the fee table (facts §3).

::

    [*] → applied → produced → active ⇄ suspended
                                  │         │
                                  ├─────────┴→ reissued   (a new card record is applied for)
                                  ├─────────┴→ returned   (death, emigration, the holder's request)
                                  ├─────────┴→ expired
                                  └─────────┴→ superseded (a renewal card was handed over)
    applied, produced → cancelled

``docs/card-lifecycle.md`` draws the same table as a mermaid diagram; a test keeps the two equal.
A card record is never deleted; a new card (renewal, reissue) is a new record that names the
card it replaces.
"""

from __future__ import annotations

import calendar
import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from typing import Any

from mynumber.dates import age_on
from mynumber.errors import ConflictError, MynumberError, NotFoundError, ValidationError
from mynumber.jlis.ca import card_expiry

__all__ = [
    "FEES",
    "FINAL",
    "HOLDING",
    "IDENTITY_DOCUMENTS",
    "LIFE_MESSAGES",
    "PENDING",
    "SIGNATURE_MIN_AGE",
    "TRANSITIONS",
    "Action",
    "CardLifeError",
    "CardState",
    "Channel",
    "IllegalTransitionError",
    "ReissueReason",
    "ReturnReason",
    "check_application",
    "check_identity_documents",
    "expiry_for",
    "life_error",
    "next_state",
    "reissue_fee",
    "reissue_reason",
    "renewal_opens",
    "return_reason",
    "signature_certificate_allowed",
]


class CardState(enum.StrEnum):
    APPLIED = "applied"  # 交付申請受付
    PRODUCED = "produced"  # 製造済み・市区町村へ発送
    ACTIVE = "active"  # 交付済み
    SUSPENDED = "suspended"  # 一時停止（紛失の届出）
    REISSUED = "reissued"  # 再交付により廃止
    RETURNED = "returned"  # 返納（死亡・国外転出・本人の申出）
    EXPIRED = "expired"  # 有効期限切れ
    SUPERSEDED = "superseded"  # 更新後の新カード交付により廃止
    CANCELLED = "cancelled"  # 交付前に取り消し（申請取下げ・死亡など）


class Action(enum.StrEnum):
    APPLY = "apply"
    PRODUCE = "produce"
    HAND_OVER = "hand_over"
    SUSPEND = "suspend"
    LIFT = "lift"
    REISSUE = "reissue"
    RETURN = "return"
    EXPIRE = "expire"
    SUPERSEDE = "supersede"
    UPDATE_FACE = "update_face"
    UNLOCK_PIN = "unlock_pin"
    RENEW = "renew"
    CANCEL = "cancel"


S, A = CardState, Action

TRANSITIONS: Mapping[tuple[CardState | None, Action], CardState] = {
    (None, A.APPLY): S.APPLIED,
    (S.APPLIED, A.PRODUCE): S.PRODUCED,
    (S.PRODUCED, A.HAND_OVER): S.ACTIVE,
    (S.ACTIVE, A.SUSPEND): S.SUSPENDED,
    (S.SUSPENDED, A.LIFT): S.ACTIVE,
    (S.ACTIVE, A.REISSUE): S.REISSUED,
    (S.SUSPENDED, A.REISSUE): S.REISSUED,
    (S.ACTIVE, A.RETURN): S.RETURNED,
    (S.SUSPENDED, A.RETURN): S.RETURNED,
    (S.ACTIVE, A.EXPIRE): S.EXPIRED,
    (S.SUSPENDED, A.EXPIRE): S.EXPIRED,
    (S.ACTIVE, A.SUPERSEDE): S.SUPERSEDED,
    (S.SUSPENDED, A.SUPERSEDE): S.SUPERSEDED,
    (S.ACTIVE, A.UPDATE_FACE): S.ACTIVE,
    (S.ACTIVE, A.UNLOCK_PIN): S.ACTIVE,
    (S.ACTIVE, A.RENEW): S.ACTIVE,  # the old card stays active until the new one is handed over
    (S.APPLIED, A.CANCEL): S.CANCELLED,
    (S.PRODUCED, A.CANCEL): S.CANCELLED,
}
"""(state before — None for a new record, action) → state after. Nothing else is allowed."""

PENDING = frozenset({S.APPLIED, S.PRODUCED})
"""A card on its way to the holder: at most one per person."""
HOLDING = frozenset({S.ACTIVE, S.SUSPENDED})
"""A card in the holder's hands: at most one per person; only these may carry valid
certificates (a suspended card's are on hold)."""
FINAL = frozenset({S.REISSUED, S.RETURNED, S.EXPIRED, S.SUPERSEDED, S.CANCELLED})


class Channel(enum.StrEnum):
    ONLINE = "online"  # PC/smartphone via the QR code on the form
    PAPER = "paper"  # by mail
    COUNTER = "counter"  # 申請時来庁方式 (and renewals / reissues made at the counter)


class ReissueReason(enum.StrEnum):
    LOSS = "loss"  # 紛失
    THEFT = "theft"  # 盗難
    DAMAGE = "damage"  # 破損・汚損
    CHIP_FAULT = "chip_fault"  # ICチップの不具合（本人の責めによらない）


class ReturnReason(enum.StrEnum):
    DEATH = "death"
    EMIGRATION = "emigration"  # 国外転出
    HOLDER_REQUEST = "holder_request"  # 本人の申出による返納


# -- errors -----------------------------------------------------------------------------------

# code -> (HTTP status, English, Japanese). The codes are stable; the wording may be improved.
LIFE_MESSAGES: dict[str, tuple[int, str, str]] = {
    "card_life.not_found": (
        404,
        "No such card in the card management system.",
        "該当するカードはカード管理システムに登録されていません。",
    ),
    "card_life.not_applied": (
        409,
        "Only an accepted application can go into production.",
        "製造できるのは受け付けた交付申請のカードだけです。",
    ),
    "card_life.not_produced": (
        409,
        "Only a produced card that has not been handed over can be handed over.",
        "交付できるのは製造済みで未交付のカードだけです。",
    ),
    "card_life.not_active": (
        409,
        "The card is not in use (not handed over, suspended, or no longer valid).",
        "このカードは利用中ではありません（未交付・一時停止中・廃止済み）。",
    ),
    "card_life.not_suspended": (
        409,
        "The card is not suspended.",
        "このカードは一時停止されていません。",
    ),
    "card_life.not_reissuable": (
        409,
        "Only a card in use or suspended can be reissued.",
        "再交付できるのは利用中または一時停止中のカードだけです。",
    ),
    "card_life.not_returnable": (
        409,
        "Only a card in use or suspended can be returned.",
        "返納できるのは利用中または一時停止中のカードだけです。",
    ),
    "card_life.not_expirable": (
        409,
        "Only a card in use or suspended can expire.",
        "有効期限切れにできるのは利用中または一時停止中のカードだけです。",
    ),
    "card_life.not_supersedable": (
        409,
        "Only a card in use or suspended can be replaced by a renewal card.",
        "更新による廃止ができるのは利用中または一時停止中のカードだけです。",
    ),
    "card_life.not_renewable": (
        409,
        "Only a card in use can be renewed.",
        "更新できるのは利用中のカードだけです。",
    ),
    "card_life.not_pending": (
        409,
        "Only a card not yet handed over can be cancelled.",
        "取り消しできるのは交付前のカードだけです。",
    ),
    "card_life.renewal_too_early": (
        409,
        "Renewal opens three months before the card's expiry.",
        "更新の手続きは有効期限の3か月前から可能です。",
    ),
    "card_life.application_pending": (
        409,
        "A card for this person is already being produced or waiting to be handed over.",
        "この方のカードはすでに申請中または交付待ちです。",
    ),
    "card_life.card_held": (
        409,
        "This person already holds a card: renew or reissue it instead of applying anew.",
        "この方はすでにカードをお持ちです。新規申請ではなく更新または再交付の手続きをしてください。",
    ),
    "card_life.resident_unknown": (
        404,
        "J-LIS has no identity for this resident record code.",
        "この住民票コードの本人確認情報は登録されていません。",
    ),
    "card_life.resident_inactive": (
        409,
        "A card is issued only to a current resident (not after moving out or death).",
        "カードは住民登録のある方にのみ交付できます（転出・死亡の後は交付できません）。",
    ),
    "card_life.identity_documents": (
        422,
        "The identity check needs one photo document (driving licence, passport, residence "
        "card …) or two other documents (health insurance card, pension book …).",
        "本人確認には顔写真付きの書類1点（運転免許証・旅券・在留カードなど）、"
        "またはそれ以外の書類2点（健康保険証・年金手帳など）が必要です。",
    ),
    "card_life.identity_document_unknown": (
        422,
        "An identity document of a kind the counter does not accept.",
        "窓口で受け付けていない種類の本人確認書類です。",
    ),
    "card_life.application_id": (
        422,
        "An application id (申請書ID) is 23 digits; an online application needs one.",
        "申請書IDは23桁の数字です。オンライン申請には申請書IDが必要です。",
    ),
    "card_life.application_id_taken": (
        409,
        "This application id has already been used.",
        "この申請書IDはすでに使用されています。",
    ),
    "card_life.reason": (
        422,
        "Not a reason this procedure accepts.",
        "この手続きで受け付けられない理由です。",
    ),
    "card_life.face_current": (
        409,
        "The card face already shows the registered name and address.",
        "券面の氏名・住所はすでに住民登録の内容と同じです。",
    ),
    "card_life.pin_kind": (
        422,
        "The PIN to reset is that of the signature or of the user-authentication certificate.",
        "再設定する暗証番号は署名用または利用者証明用電子証明書のものです。",
    ),
    "card_life.smartphone_face": (
        409,
        "The smartphone form holds no card face to update.",
        "スマートフォン用電子証明書には更新する券面事項がありません。",
    ),
    "card_life.birth_date_changed": (
        409,
        "The registered birth date differs from the one on the chip: a handover made afresh "
        "(ask again), or a reissue, writes the new one.",
        "住民登録の生年月日がICチップの記録と異なります。交付をやり直すか、再交付してください。",
    ),
}


class CardLifeError(MynumberError):
    """A card-management procedure refused, with a stable `card_life.*` code."""

    status = 409


class IllegalTransitionError(CardLifeError):
    """`action` is not allowed from the card's current `state` (see :data:`TRANSITIONS`)."""

    def __init__(self, state: CardState | None, action: Action) -> None:
        code = _ILLEGAL_CODES[action]
        status, en, ja = LIFE_MESSAGES[code]
        shown = "none" if state is None else str(state)
        super().__init__(
            code,
            f"{en} (card state: {shown}; procedure: {action})",
            f"{ja}（カードの状態: {_STATE_JA.get(state, 'なし')}）",
            status=status,
            extra={"state": shown, "action": str(action)},
        )
        self.state = state
        self.action = action


_ILLEGAL_CODES: Mapping[Action, str] = {
    A.APPLY: "card_life.card_held",
    A.PRODUCE: "card_life.not_applied",
    A.HAND_OVER: "card_life.not_produced",
    A.SUSPEND: "card_life.not_active",
    A.LIFT: "card_life.not_suspended",
    A.REISSUE: "card_life.not_reissuable",
    A.RETURN: "card_life.not_returnable",
    A.EXPIRE: "card_life.not_expirable",
    A.SUPERSEDE: "card_life.not_supersedable",
    A.UPDATE_FACE: "card_life.not_active",
    A.UNLOCK_PIN: "card_life.not_active",
    A.RENEW: "card_life.not_renewable",
    A.CANCEL: "card_life.not_pending",
}

_STATE_JA: Mapping[CardState | None, str] = {
    S.APPLIED: "申請受付",
    S.PRODUCED: "製造済み",
    S.ACTIVE: "利用中",
    S.SUSPENDED: "一時停止中",
    S.REISSUED: "再交付により廃止",
    S.RETURNED: "返納済み",
    S.EXPIRED: "有効期限切れ",
    S.SUPERSEDED: "更新により廃止",
    S.CANCELLED: "取消し",
}


def life_error(
    code: str, *, field: str | None = None, extra: dict[str, Any] | None = None
) -> CardLifeError:
    """The :class:`CardLifeError` for `code`, with its standard status and messages."""
    status, en, ja = LIFE_MESSAGES[code]
    err: CardLifeError
    if status == 404:
        err = _NotFound(code, en, ja, field=field, status=status, extra=extra)
    elif status == 422:
        err = _Invalid(code, en, ja, field=field, status=status, extra=extra)
    else:
        err = _Conflict(code, en, ja, field=field, status=status, extra=extra)
    return err


class _NotFound(CardLifeError, NotFoundError):
    pass


class _Invalid(CardLifeError, ValidationError):
    pass


class _Conflict(CardLifeError, ConflictError):
    pass


# -- transitions ------------------------------------------------------------------------------


def next_state(state: CardState | str | None, action: Action | str) -> CardState:
    """The state after `action` from `state`; :class:`IllegalTransitionError` if not allowed."""
    before = None if state is None else CardState(state)
    act = Action(action)
    after = TRANSITIONS.get((before, act))
    if after is None:
        raise IllegalTransitionError(before, act)
    return after


# -- the counter's identity check ------------------------------------------------------------

IDENTITY_DOCUMENTS: Mapping[str, tuple[str, str, str]] = {
    # kind -> (group, English, Japanese). "A": one suffices (photo ID); "B": two are needed.
    "driving_licence": ("A", "driving licence", "運転免許証"),
    "driving_history_certificate": ("A", "driving history certificate", "運転経歴証明書"),
    "passport": ("A", "passport", "旅券"),
    "residence_card": ("A", "residence card", "在留カード"),
    "special_permanent_resident_certificate": (
        "A",
        "special permanent resident certificate",
        "特別永住者証明書",
    ),
    "disability_certificate": ("A", "disability certificate with photo", "身体障害者手帳"),
    "mynumber_card": ("A", "the current My Number card", "個人番号カード"),
    "health_insurance_card": ("B", "health insurance card", "健康保険証"),
    "qualification_certificate": ("B", "insurance qualification certificate", "資格確認書"),
    "pension_book": ("B", "pension book", "年金手帳"),
    "pension_certificate": ("B", "pension certificate", "年金証書"),
    "student_id": ("B", "student card", "学生証"),
    "employee_id": ("B", "employee card", "社員証"),
    "care_insurance_card": ("B", "long-term care insurance card", "介護保険被保険者証"),
}


def check_identity_documents(documents: Iterable[object]) -> str:
    """The counter's identity check as :class:`~mynumber.card.pins.CounterAuthorisation` names
    it: ``photo_id`` (one "A" document) or ``two_documents`` (two different "B" documents).

    An unknown kind is refused (``card_life.identity_document_unknown``); too few documents
    (``card_life.identity_documents``).
    """
    kinds: set[str] = set()
    for doc in documents:
        if not isinstance(doc, str) or doc not in IDENTITY_DOCUMENTS:
            raise life_error("card_life.identity_document_unknown", field="identity_documents")
        kinds.add(doc)
    if any(IDENTITY_DOCUMENTS[k][0] == "A" for k in kinds):
        return "photo_id"
    if len(kinds) >= 2:
        return "two_documents"
    raise life_error(
        "card_life.identity_documents",
        field="identity_documents",
        extra={"documents_given": sorted(kinds)},
    )


# -- applications -----------------------------------------------------------------------------

APPLICATION_ID_DIGITS = 23


def check_application(channel: object, application_id: object) -> tuple[Channel, str | None]:
    """The channel and application id of a new application: an online application needs its
    23-digit 申請書ID; a paper one may give it (the form carries one); a counter one may too."""
    try:
        chosen = Channel(channel) if isinstance(channel, str) else None
    except ValueError:
        chosen = None
    if chosen is None:
        raise life_error("card_life.reason", field="channel")
    if application_id is None or application_id == "":
        if chosen is Channel.ONLINE:
            raise life_error("card_life.application_id", field="application_id")
        return chosen, None
    if (
        not isinstance(application_id, str)
        or len(application_id) != APPLICATION_ID_DIGITS
        or not application_id.isascii()
        or not application_id.isdigit()
    ):
        raise life_error("card_life.application_id", field="application_id")
    return chosen, application_id


# -- validity, renewal, certificates, fees ----------------------------------------------------

SIGNATURE_MIN_AGE = 15
"""The signature certificate is not issued to a holder under 15 (facts §3, §4)."""

RENEWAL_MONTHS = 3


def expiry_for(
    birth_date: dt.date, issued_on: dt.date, period_of_stay_end: dt.date | None = None
) -> dt.date:
    """Last valid day of a card handed over on `issued_on`: the 10th birthday after it for a
    holder 18 or older, the 5th for a younger one, capped by the end of a foreign resident's
    period of stay (:func:`mynumber.jlis.ca.card_expiry`, the one place that rule lives)."""
    return card_expiry(birth_date, issued_on, period_of_stay_end)


def signature_certificate_allowed(birth_date: dt.date, on: dt.date) -> bool:
    """Whether a signature certificate may be issued on `on` (the holder is 15 or older)."""
    return age_on(birth_date, on) >= SIGNATURE_MIN_AGE


def _months_before(day: dt.date, months: int) -> dt.date:
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    month += 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def renewal_opens(expires_on: dt.date) -> dt.date:
    """First day a renewal may be applied for: the day after the date three months before
    expiry (facts §3; 31 May counts back to 28/29 February)."""
    return _months_before(expires_on, RENEWAL_MONTHS) + dt.timedelta(days=1)


FEES: Mapping[str, int] = {"card": 800, "certificates": 200}
"""Reissue fees in yen (facts §3; municipalities vary). First issuance and renewal are free."""

_FEE_ITEMS: Mapping[ReissueReason, tuple[str, ...]] = {
    ReissueReason.LOSS: ("card", "certificates"),
    ReissueReason.THEFT: ("card", "certificates"),
    ReissueReason.DAMAGE: ("card", "certificates"),
    ReissueReason.CHIP_FAULT: (),  # not the holder's doing
}


def reissue_fee(reason: ReissueReason | str) -> int:
    """The fee in yen for a reissue for `reason` (``card_life.reason`` if unknown)."""
    try:
        which = ReissueReason(reason)
    except ValueError:
        raise life_error("card_life.reason", field="reason") from None
    return sum(FEES[item] for item in _FEE_ITEMS[which])


def reissue_reason(reason: object) -> ReissueReason:
    """`reason` as a :class:`ReissueReason` (``card_life.reason`` otherwise)."""
    if isinstance(reason, str) and reason in ReissueReason.__members__.values():
        return ReissueReason(reason)
    raise life_error("card_life.reason", field="reason")


def return_reason(reason: object) -> ReturnReason:
    """`reason` as a :class:`ReturnReason` (``card_life.reason`` otherwise)."""
    if isinstance(reason, str) and reason in ReturnReason.__members__.values():
        return ReturnReason(reason)
    raise life_error("card_life.reason", field="reason")
