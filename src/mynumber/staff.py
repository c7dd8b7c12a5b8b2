"""The staff member (or system) recorded on every change a role makes: one check for all."""

from __future__ import annotations

import re

from mynumber.errors import ValidationError

__all__ = ["check_operator"]

_OPERATOR = re.compile(r"[^\x00-\x1f\x7f]{1,64}")


def check_operator(operator: object) -> str:
    """The staff member (or system) recorded on every event: 1–64 printable characters."""
    if not isinstance(operator, str) or not _OPERATOR.fullmatch(operator) or not operator.strip():
        raise ValidationError(
            "field.required",
            "The operator (staff id) is 1–64 printable characters.",
            "操作者（職員ID）は1〜64文字の印字可能な文字です。",
            field="operator",
        )
    return operator
