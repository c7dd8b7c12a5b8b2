"""The residents CSV format of DESIGN.md, the surface users script against.

The first thirteen columns are DESIGN.md's; the four after them are optional and hold the extra
items the register keeps for foreign residents (住基法30条の45).
"""

from __future__ import annotations

__all__ = ["FOREIGN_COLUMNS", "REQUIRED_COLUMNS", "RESIDENT_COLUMNS"]

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
)
FOREIGN_COLUMNS: tuple[str, ...] = RESIDENT_COLUMNS[13:]
REQUIRED_COLUMNS: tuple[str, ...] = (
    "family_name",
    "family_name_kana",
    "birth_date",
    "sex",
    "address",
)
