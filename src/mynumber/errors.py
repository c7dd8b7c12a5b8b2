"""One exception hierarchy with stable codes, rendered once as RFC 9457 problem+json (I9).

Every error carries a stable machine code, an HTTP status, and its message in Japanese and
English. Roles subclass :class:`MynumberError` so a route never has to translate errors itself.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthError",
    "ConflictError",
    "ForbiddenError",
    "MynumberError",
    "NotFoundError",
    "ValidationError",
]


class MynumberError(Exception):
    """Base of every error a user may see; `code` is stable and documented in docs/reason-codes.md."""

    status: int = 400

    def __init__(
        self,
        code: str,
        en: str,
        ja: str,
        *,
        field: str | None = None,
        status: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(en)
        self.code = code
        self.en = en
        self.ja = ja
        self.field = field
        if status is not None:
            self.status = status
        self.extra = extra or {}

    def message(self, lang: str = "en") -> str:
        """The message in `lang` ("ja" or "en")."""
        return self.ja if lang == "ja" else self.en

    def problem(self, lang: str = "en", instance: str | None = None) -> dict[str, Any]:
        """This error as an RFC 9457 problem document, both languages included."""
        body: dict[str, Any] = {
            "type": f"urn:mynumber:problem:{self.code}",
            "title": self.message(lang),
            "status": self.status,
            "detail": self.message(lang),
            "code": self.code,
            "messages": {"ja": self.ja, "en": self.en},
        }
        if self.field is not None:
            body["field"] = self.field
        if instance is not None:
            body["instance"] = instance
        body.update(self.extra)
        return body

    def __str__(self) -> str:
        where = f" [{self.field}]" if self.field else ""
        return f"{self.code}{where}: {self.en} / {self.ja}"


class ValidationError(MynumberError):
    """Input that can never be right as given (422)."""

    status = 422


class NotFoundError(MynumberError):
    status = 404


class ConflictError(MynumberError):
    """The request clashes with the current state (duplicate, wrong state, reused key)."""

    status = 409


class AuthError(MynumberError):
    status = 401


class ForbiddenError(MynumberError):
    status = 403
