"""Resident-register rules as pure functions: validating a resident's items (one path for the API
and CSV import), event kinds, state transitions and notification deadlines (住基法 / 戸籍法).
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

import jaconv

from mynumber.dates import parse_date, parse_sex
from mynumber.errors import ConflictError, ValidationError
from mynumber.jtext import is_kana
from mynumber.numbers import parse_individual, parse_municipality, parse_resident_code

__all__ = [
    "DEADLINE_DAYS",
    "EventKind",
    "Notification",
    "ResidentItems",
    "Status",
    "check_transition",
    "clean_kana",
    "clean_name",
    "clean_text",
    "notification",
    "validate_resident",
]

EARLIEST_BIRTH = dt.date(1868, 10, 23)


class Status(enum.StrEnum):
    ACTIVE = "active"
    MOVED_OUT = "moved_out"
    DECEASED = "deceased"


class EventKind(enum.StrEnum):
    BIRTH = "birth"  # 出生
    MOVE_IN = "move_in"  # 転入
    MOVE_WITHIN = "move_within"  # 転居
    MOVE_OUT = "move_out"  # 転出
    DEATH = "death"  # 死亡
    NAME_CHANGE = "name_change"  # 氏名変更
    HOUSEHOLD_CHANGE = "household_change"  # 世帯変更
    IMPORT = "import"  # 移行 (migration from a legacy register)
    NUMBER_ASSIGNED = "number_assigned"  # 個人番号の指定
    NUMBER_CHANGED = "number_changed"  # 個人番号の変更


# Days allowed between the event and its notification, counting the day of the event as day 1
# for births (戸籍法49条: 出生の日を含め14日) and deaths (86条: 7日), and from the day after the move
# for moves (住基法22–25条: 14日以内). Late notifications are still recorded, flagged as late.
DEADLINE_DAYS: dict[EventKind, int] = {
    EventKind.BIRTH: 13,
    EventKind.DEATH: 6,
    EventKind.MOVE_IN: 14,
    EventKind.MOVE_WITHIN: 14,
    EventKind.MOVE_OUT: 14,
    EventKind.NAME_CHANGE: 14,
    EventKind.HOUSEHOLD_CHANGE: 14,
}
# 転出届 is normally made before leaving: up to 14 days in advance.
ADVANCE_DAYS: dict[EventKind, int] = {EventKind.MOVE_OUT: 14}

# Which states an event may start from; None = it creates the record.
ALLOWED_FROM: dict[EventKind, frozenset[Status] | None] = {
    EventKind.BIRTH: None,
    EventKind.MOVE_IN: None,
    EventKind.IMPORT: None,
    EventKind.MOVE_WITHIN: frozenset({Status.ACTIVE}),
    EventKind.MOVE_OUT: frozenset({Status.ACTIVE}),
    EventKind.DEATH: frozenset({Status.ACTIVE}),
    EventKind.NAME_CHANGE: frozenset({Status.ACTIVE}),
    EventKind.HOUSEHOLD_CHANGE: frozenset({Status.ACTIVE}),
}
RESULT_STATUS: dict[EventKind, Status] = {
    EventKind.MOVE_OUT: Status.MOVED_OUT,
    EventKind.DEATH: Status.DECEASED,
}


@dataclass(frozen=True, slots=True)
class Notification:
    occurred_on: dt.date
    notified_on: dt.date
    deadline: dt.date
    late: bool


def notification(
    kind: EventKind,
    occurred_on: dt.date,
    notified_on: dt.date,
    today: dt.date,
    birth_date: dt.date | None = None,
) -> Notification:
    """Check an event's dates against today, the person's birth and the deadline; late is
    allowed, the future is not."""
    advance = ADVANCE_DAYS.get(kind, 0)
    if birth_date is not None and occurred_on < birth_date:
        raise ValidationError(
            "event.before_birth",
            f"The event date {occurred_on} is before the person's birth.",
            f"届出事由の日付 {occurred_on} が生年月日より前です。",
            field="occurred_on",
        )
    if occurred_on > today + dt.timedelta(days=advance):
        raise ValidationError(
            "event.future",
            f"The event date {occurred_on} is in the future.",
            f"届出事由の日付 {occurred_on} が未来の日付です。",
            field="occurred_on",
        )
    if notified_on > today:
        raise ValidationError(
            "event.notified_future",
            "The notification date is in the future.",
            "届出日が未来の日付です。",
            field="notified_on",
        )
    if notified_on < occurred_on - dt.timedelta(days=advance):
        raise ValidationError(
            "event.notified_before",
            "The notification date is before the event could be notified.",
            "届出日が届出可能な日より前です。",
            field="notified_on",
        )
    deadline = occurred_on + dt.timedelta(days=DEADLINE_DAYS.get(kind, 14))
    return Notification(occurred_on, notified_on, deadline, notified_on > deadline)


def check_transition(kind: EventKind, current: Status | None) -> Status:
    """The status after `kind` happens to a resident now in `current` (None: no record)."""
    allowed = ALLOWED_FROM[kind]
    if allowed is None:
        if current is Status.ACTIVE:
            raise ConflictError(
                "resident.already_active",
                "This person is already an active resident of this municipality.",
                "この方はすでに当該市区町村の住民として登録されています。",
                field="resident_code",
            )
        if current is Status.DECEASED:  # a 除票 by death is closed for ever
            raise ConflictError(
                "resident.not_active",
                "The resident's record is closed by death; nothing more can be recorded on it.",
                "この住民の記録は死亡により消除されています。登録できません。",
                field="resident_code",
            )
        return Status.ACTIVE
    if current is None:
        raise ConflictError(
            "resident.not_found",
            "No such resident in this municipality.",
            "該当する住民が見つかりません。",
            field="resident_code",
            status=404,
        )
    if current not in allowed:
        raise ConflictError(
            "resident.not_active",
            f"The resident's record is closed ({current}); a {kind} cannot be recorded.",
            f"この住民の記録は消除されています（{current}）。{kind} は登録できません。",
        )
    return RESULT_STATUS.get(kind, current)


_NAME_EXTRA = frozenset("々〆ヶー・＝'-. ")


@functools.lru_cache(maxsize=65536)
def clean_name(value: str, field: str, *, required: bool = True, limit: int = 100) -> str:
    """A name as registered: NFC, spaces folded; letters only (any script, incl. outside JIS X 0208)."""
    text = " ".join(unicodedata.normalize("NFC", value).replace("\u3000", " ").split())
    if not text:
        if required:
            raise _required(field)
        return ""
    for ch in text:
        cat = unicodedata.category(ch)
        if not (cat.startswith("L") or cat.startswith("M") or ch in _NAME_EXTRA):
            raise ValidationError(
                "name.invalid_character",
                f"'{ch if ch.isprintable() else hex(ord(ch))}' cannot appear in a name.",
                f"氏名に「{ch if ch.isprintable() else hex(ord(ch))}」は使えません。",
                field=field,
            )
    if len(text) > limit:
        raise _too_long(field, limit)
    return text


def clean_text(value: str, field: str, limit: int, *, required: bool = False) -> str:
    """Free text (household id, residence status, destination): NFC, spaces folded, no control
    or unassigned characters, at most `limit` characters."""
    text = " ".join(unicodedata.normalize("NFC", value).split())
    if required and not text:
        raise _required(field)
    if not text.isprintable() and any(
        unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in text
    ):
        raise ValidationError(
            "text.invalid_character",
            f"{field} contains a control or unassigned character.",
            f"{field} に使用できない文字が含まれています。",
            field=field,
        )
    if len(text) > limit:
        raise _too_long(field, limit)
    return text


@functools.lru_cache(maxsize=65536)
def clean_kana(value: str, field: str, *, required: bool = True) -> str:
    """Kana as registered: full-width katakana (hiragana and half-width converted), spaces folded."""
    text = " ".join(
        jaconv.hira2kata(unicodedata.normalize("NFKC", value)).replace("\u3000", " ").split()
    )
    if not text:
        if required:
            raise _required(field)
        return ""
    if not is_kana(text):
        raise ValidationError(
            "kana.invalid",
            "The reading must be written in kana.",
            "フリガナはカナで入力してください。",
            field=field,
        )
    if len(text) > 100:
        raise _too_long(field, 100)
    return text


def _required(field: str) -> ValidationError:
    return ValidationError(
        "field.required", f"{field} is required.", f"{field} は必須です。", field=field
    )


def _too_long(field: str, limit: int) -> ValidationError:
    return ValidationError(
        "field.too_long",
        f"{field} is longer than {limit} characters.",
        f"{field} は{limit}文字以内です。",
        field=field,
    )


@dataclass(frozen=True, slots=True)
class ResidentItems:
    """A resident's items, validated and cleaned."""

    resident_code: str | None
    individual_number: str | None
    family_name: str
    given_name: str
    family_name_kana: str
    given_name_kana: str
    birth_date: dt.date
    sex: int
    municipality_code: str | None
    postal_code: str
    address: str
    household_id: str | None
    relationship: str
    alphabet_name: str
    nationality: str
    residence_status: str
    period_of_stay_end: dt.date | None
    domicile: str = ""  # 本籍: Japanese nationals only
    domicile_head: str = ""  # 筆頭者


def _opt(raw: Mapping[str, str | None], key: str) -> str:
    value = raw.get(key)
    return value.strip() if value else ""


def _split_full(
    raw: Mapping[str, str | None], full: str, family: str, given: str
) -> tuple[str, str]:
    if _opt(raw, family) or not _opt(raw, full):
        return _opt(raw, family), _opt(raw, given)
    parts = _opt(raw, full).replace("\u3000", " ").split(None, 1)
    return parts[0], parts[1] if len(parts) > 1 else ""


def validate_resident(raw: Mapping[str, str | None], today: dt.date) -> ResidentItems:
    """Validate one resident given as strings (a CSV row or a request body); raises on the first
    bad field, naming it."""
    family, given = _split_full(raw, "name", "family_name", "given_name")
    family_kana, given_kana = _split_full(raw, "name_kana", "family_name_kana", "given_name_kana")
    birth_raw = _opt(raw, "birth_date")
    birth = parse_date(birth_raw, field="birth_date")
    if birth > today or birth < EARLIEST_BIRTH:
        raise ValidationError(
            "birth_date.range",
            f"The birth date {birth} is outside the possible range.",
            f"生年月日 {birth} は範囲外です。",
            field="birth_date",
        )
    postal = _opt(raw, "postal_code").replace("〒", "")
    if postal:
        postal = unicodedata.normalize("NFKC", postal).replace("-", "").strip()
        if len(postal) != 7 or not postal.isascii() or not postal.isdigit():
            raise ValidationError(
                "postal_code.invalid",
                "A postal code has 7 digits.",
                "郵便番号は7桁の数字です。",
                field="postal_code",
            )
    address = " ".join(unicodedata.normalize("NFC", _opt(raw, "address")).split())
    if not address:
        raise _required("address")
    if len(address) > 200:
        raise _too_long("address", 200)
    if not address.isprintable() and any(
        unicodedata.category(c) in ("Cc", "Cs", "Co", "Cn") for c in address
    ):
        raise ValidationError(
            "address.invalid_character",
            "The address contains a control or unassigned character.",
            "住所に使用できない文字が含まれています。",
            field="address",
        )
    code = _opt(raw, "resident_code")
    number = _opt(raw, "individual_number")
    municipality = _opt(raw, "municipality_code")
    nationality = _opt(raw, "nationality").upper()
    if nationality and (
        len(nationality) != 2 or not nationality.isascii() or not nationality.isalpha()
    ):
        raise ValidationError(
            "nationality.invalid",
            "Nationality is an ISO 3166-1 alpha-2 code (e.g. VN).",
            "国籍は ISO 3166-1 の2文字コード（例: VN）で入力してください。",
            field="nationality",
        )
    stay = _opt(raw, "period_of_stay_end")
    domicile = clean_text(_opt(raw, "domicile"), "domicile", 200)
    domicile_head = clean_name(_opt(raw, "domicile_head"), "domicile_head", required=False)
    if (domicile or domicile_head) and nationality:
        raise ValidationError(
            "domicile.foreign",
            "本籍 and 筆頭者 are recorded for Japanese nationals only.",
            "本籍・筆頭者は日本国籍の方についてのみ記載します。",
            field="domicile",
        )
    if bool(domicile) != bool(domicile_head):
        missing = "domicile_head" if domicile else "domicile"
        raise ValidationError(
            "domicile.incomplete",
            "本籍 and 筆頭者 are given together or not at all.",
            "本籍と筆頭者は両方とも入力してください。",
            field=missing,
        )
    household = clean_text(_opt(raw, "household_id"), "household_id", 40)
    relationship = clean_name(_opt(raw, "relationship"), "relationship", required=False, limit=40)
    return ResidentItems(
        resident_code=parse_resident_code(code, field="resident_code") if code else None,
        individual_number=parse_individual(number, field="individual_number") if number else None,
        family_name=clean_name(family, "family_name"),
        given_name=clean_name(given, "given_name", required=False),
        family_name_kana=clean_kana(family_kana, "family_name_kana"),
        given_name_kana=clean_kana(given_kana, "given_name_kana", required=False),
        birth_date=birth,
        sex=parse_sex(_opt(raw, "sex"), field="sex"),
        municipality_code=parse_municipality(municipality, field="municipality_code")
        if municipality
        else None,
        postal_code=postal,
        address=address,
        household_id=household or None,
        relationship=relationship or "世帯主",
        alphabet_name=clean_text(_opt(raw, "alphabet_name"), "alphabet_name", 100).upper(),
        nationality=nationality,
        residence_status=clean_text(_opt(raw, "residence_status"), "residence_status", 40),
        period_of_stay_end=parse_date(stay, field="period_of_stay_end") if stay else None,
        domicile=domicile,
        domicile_head=domicile_head,
    )
