"""The table of exchanges the law allows over the information-provision network. Pure.

Modelled on 番号法 別表第二 (moved to a 主務省令 by the 2023 amendment): a row names the kind of
agency that asks (requester), the statutory task it asks for, the kind of agency that answers
(provider) and the data items it may be given. An exchange is allowed only if a row says so, item
by item: a health insurer may learn a member's income *bracket* for 高額療養費 but not the income.

The packaged table (``legal_basis.toml`` beside this module) is a **realistic synthetic subset,
not a legal reference**: the statutes it names (児童手当法, 児童扶養手当法, 子ども・子育て支援法,
健康保険法, 国民健康保険法, 国民年金法, 厚生年金保険法, 地方税法, 年金生活者支援給付金の支給に関する
法律) are real, but its rows and wording are this project's and claim no row or article number of
the real tables ("別表第二 相当").

- :data:`KINDS` — the agency kinds, with their names in Japanese and English;
- :data:`ITEMS` — per provider kind, the data items it offers;
- :class:`LegalBasisTable` — the rows, checked on load (:class:`LegalBasisError` names the row and
  the field of the first problem), and :meth:`LegalBasisTable.find` for one exchange.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import TypeAlias

__all__ = ["ITEMS", "KINDS", "Basis", "LegalBasisError", "LegalBasisTable"]

KINDS: dict[str, tuple[str, str]] = {
    "municipal_tax": ("市区町村 税務課", "municipal tax office"),
    "municipal_welfare": ("市区町村 福祉・子ども家庭部門", "municipal welfare and child services"),
    "health_insurer": ("医療保険者", "health insurer"),
    "pension": ("日本年金機構", "Japan Pension Service"),
    "jlis": (
        "地方公共団体情報システム機構（本人確認情報）",
        "J-LIS (identity information)",
    ),
}

ITEMS: dict[str, dict[str, tuple[str, str]]] = {
    "municipal_tax": {
        "income": ("所得額", "income"),
        "income_bracket": ("所得区分", "income bracket"),
        "resident_tax": ("住民税額", "inhabitant tax amount"),
    },
    "municipal_welfare": {
        "child_allowance_status": ("児童手当の受給状況", "child allowance receipt status"),
    },
    "health_insurer": {
        "insurance_qualification": ("医療保険資格", "health insurance qualification"),
    },
    "pension": {
        "pension_receipt": ("年金給付の受給状況", "pension benefit receipt status"),
    },
    "jlis": {
        "current_address": ("最新の住所（本人確認情報）", "current address (identity information)"),
    },
}

_PACKAGED = "legal_basis.toml"
_ROWS_KEY = "basis"
_ASCII_ID = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")
_ASCII_TASK = re.compile(r"[a-z][a-z0-9_]*")
_STR_FIELDS = (
    "id",
    "requester_kind",
    "task",
    "task_ja",
    "task_en",
    "provider_kind",
    "law",
    "note_en",
)
_FIELDS = (*_STR_FIELDS, "items")


class LegalBasisError(ValueError):
    """A malformed table; `row` (1-based, in file order) and `field` say where, when known."""

    def __init__(self, message: str, *, row: int | None = None, field: str | None = None) -> None:
        where = ""
        if row is not None:
            where = f"row {row}"
            if field is not None:
                where += f", field '{field}'"
        elif field is not None:
            where = f"field '{field}'"
        super().__init__(f"legal basis table: {where}: {message}" if where else message)
        self.row = row
        self.field = field


@dataclass(frozen=True, slots=True)
class Basis:
    """One allowed exchange: `requester_kind` doing `task` may ask `provider_kind` for `items`."""

    id: str
    requester_kind: str
    task: str
    task_ja: str
    task_en: str
    provider_kind: str
    items: tuple[str, ...]
    law: str
    note_en: str


_Key: TypeAlias = tuple[str, str, str, str]


class LegalBasisTable:
    """The allowed exchanges, indexed by (requester_kind, task, provider_kind, item)."""

    __slots__ = ("_by_key", "_rows")

    def __init__(self, rows: list[Basis], by_key: dict[_Key, Basis]) -> None:
        self._rows = rows
        self._by_key = by_key

    @classmethod
    def load(cls, text: str | None = None) -> LegalBasisTable:
        """Parse and check a table; ``None`` reads the packaged ``legal_basis.toml``."""
        if text is None:
            text = (
                resources.files("mynumber.network").joinpath(_PACKAGED).read_text(encoding="utf-8")
            )
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise LegalBasisError(f"not valid TOML: {exc}") from exc
        extra = sorted(set(doc) - {_ROWS_KEY})
        if extra:
            raise LegalBasisError(f"unknown top-level key '{extra[0]}'", field=extra[0])
        raw = doc.get(_ROWS_KEY)
        if not isinstance(raw, list) or not raw:
            raise LegalBasisError(f"expected one or more [[{_ROWS_KEY}]] tables", field=_ROWS_KEY)
        rows: list[Basis] = []
        by_key: dict[_Key, Basis] = {}
        ids: dict[str, int] = {}
        task_names: dict[tuple[str, str], tuple[int, str, str]] = {}
        for number, entry in enumerate(raw, start=1):
            if not isinstance(entry, Mapping):
                raise LegalBasisError("a row is a table of fields", row=number)
            basis = _parse_row(number, entry)
            if basis.id in ids:
                raise LegalBasisError(
                    f"duplicate id '{basis.id}' (first in row {ids[basis.id]})",
                    row=number,
                    field="id",
                )
            ids[basis.id] = number
            task_key = (basis.requester_kind, basis.task)
            names = task_names.setdefault(task_key, (number, basis.task_ja, basis.task_en))
            if names[1] != basis.task_ja:
                raise LegalBasisError(
                    f"task '{basis.task}' is named differently in row {names[0]}",
                    row=number,
                    field="task_ja",
                )
            if names[2] != basis.task_en:
                raise LegalBasisError(
                    f"task '{basis.task}' is named differently in row {names[0]}",
                    row=number,
                    field="task_en",
                )
            for item in basis.items:
                key = (basis.requester_kind, basis.task, basis.provider_kind, item)
                if key in by_key:
                    raise LegalBasisError(
                        f"exchange {'/'.join(key)} is already allowed by row "
                        f"{ids[by_key[key].id]} ('{by_key[key].id}')",
                        row=number,
                        field="items",
                    )
                by_key[key] = basis
            rows.append(basis)
        return cls(rows, by_key)

    def find(self, requester_kind: str, task: str, provider_kind: str, item: str) -> Basis | None:
        """The row allowing this exchange, or ``None`` when the law does not allow it."""
        return self._by_key.get((requester_kind, task, provider_kind, item))

    def tasks_of(self, requester_kind: str) -> list[Basis]:
        """Every row in which `requester_kind` is the requester, in table order."""
        return [b for b in self._rows if b.requester_kind == requester_kind]

    def rows(self) -> list[Basis]:
        """Every row, in table order."""
        return list(self._rows)

    def get(self, basis_id: str) -> Basis | None:
        """The row with this id, or ``None``."""
        for basis in self._rows:
            if basis.id == basis_id:
                return basis
        return None


def _parse_row(number: int, entry: Mapping[str, object]) -> Basis:
    for name in entry:
        if name not in _FIELDS:
            raise LegalBasisError("unknown field", row=number, field=name)
    values: dict[str, str] = {}
    for name in _STR_FIELDS:
        if name not in entry:
            raise LegalBasisError("missing", row=number, field=name)
        value = entry[name]
        if not isinstance(value, str):
            raise LegalBasisError(
                f"expected a string, got {type(value).__name__}", row=number, field=name
            )
        if not value.strip():
            raise LegalBasisError("empty", row=number, field=name)
        values[name] = value
    if not _ASCII_ID.fullmatch(values["id"]):
        raise LegalBasisError(
            f"'{values['id']}' is not a lowercase ASCII id like 'task.what'", row=number, field="id"
        )
    if not _ASCII_TASK.fullmatch(values["task"]):
        raise LegalBasisError(
            f"'{values['task']}' is not a lowercase ASCII task id", row=number, field="task"
        )
    for name in ("requester_kind", "provider_kind"):
        if values[name] not in KINDS:
            raise LegalBasisError(
                f"unknown agency kind '{values[name]}' (known: {', '.join(KINDS)})",
                row=number,
                field=name,
            )
    if "items" not in entry:
        raise LegalBasisError("missing", row=number, field="items")
    raw_items = entry["items"]
    if not isinstance(raw_items, list) or not raw_items:
        raise LegalBasisError("expected a non-empty list of items", row=number, field="items")
    offered = ITEMS[values["provider_kind"]]
    items: list[str] = []
    for item in raw_items:
        if not isinstance(item, str):
            raise LegalBasisError(
                f"expected item names, got {type(item).__name__}", row=number, field="items"
            )
        if item not in offered:
            raise LegalBasisError(
                f"'{values['provider_kind']}' offers no item '{item}' "
                f"(it offers: {', '.join(offered)})",
                row=number,
                field="items",
            )
        if item in items:
            raise LegalBasisError(f"item '{item}' listed twice", row=number, field="items")
        items.append(item)
    return Basis(
        id=values["id"],
        requester_kind=values["requester_kind"],
        task=values["task"],
        task_ja=values["task_ja"],
        task_en=values["task_en"],
        provider_kind=values["provider_kind"],
        items=tuple(items),
        law=values["law"],
        note_en=values["note_en"],
    )
