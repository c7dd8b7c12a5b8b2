"""The residents CSV format of DESIGN.md, the surface users script against.

The first thirteen columns are DESIGN.md's; the four after them are optional and hold the extra
items the register keeps for foreign residents (住基法30条の45), and the last two 本籍 and
筆頭者, kept for Japanese nationals only (住基法7条5号).
"""

from __future__ import annotations

__all__ = ["NAME_ALIASES", "REQUIRED_COLUMNS", "RESIDENT_COLUMNS"]

RESIDENT_COLUMNS: tuple[str, ...] = (
    "resident_code",
    "individual_number",
    "family_name",
    "given_name",
    "family_name_kana",
    "given_name_kana",
    "birth_date",
    "sex",
    "municipality_code",
    "postal_code",
    "address",
    "household_id",
    "relationship",
    # foreign residents only (empty for Japanese nationals)
    "alphabet_name",
    "nationality",
    "residence_status",
    "period_of_stay_end",
    # Japanese nationals only (empty for foreign residents)
    "domicile",  # 本籍
    "domicile_head",  # 筆頭者
)
# Required columns, each with the full-name column that may stand in for it.
REQUIRED_COLUMNS: dict[str, str | None] = {
    "family_name": "name",
    "family_name_kana": "name_kana",
    "birth_date": None,
    "sex": None,
    "address": None,
}
NAME_ALIASES: frozenset[str] = frozenset(a for a in REQUIRED_COLUMNS.values() if a)
