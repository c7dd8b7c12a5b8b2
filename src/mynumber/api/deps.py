"""Dependencies shared by the role routers: the platform, staff scopes, idempotency keys."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mynumber.api.auth import AGENCY_ID, Staff, TokenStore
from mynumber.errors import AuthError, ForbiddenError, ValidationError
from mynumber.platform import Platform

__all__ = [
    "BASE64",
    "PLAIN_TEXT",
    "IdempotencyKey",
    "OptionalIdempotencyKey",
    "decode_base64",
    "get_platform",
    "require",
    "require_agency",
]

# Text fields and path segments refuse C0 control characters and DEL: no register field needs
# them, and PostgreSQL cannot store NUL (it would fail the write with a 500).
PLAIN_TEXT = r"^[^\x00-\x1f\x7f]*$"

# Base64, standard or URL-safe alphabet, padding optional.
BASE64 = r"^[A-Za-z0-9+/_-]*={0,2}$"

_bearer = HTTPBearer(auto_error=False)


def decode_base64(text: str, field: str, max_bytes: int) -> bytes:
    """`text` (standard or URL-safe base64, padding optional) as 1–`max_bytes` bytes, else a
    422 ``request.invalid`` naming `field`."""
    cleaned = text.replace("+", "-").replace("/", "_").rstrip("=")
    try:
        data = base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError):
        data = b""
    if not data or len(data) > max_bytes:
        raise ValidationError(
            "request.invalid",
            f"{field} is not base64 of 1–{max_bytes} bytes.",
            f"{field} は1〜{max_bytes}バイトのbase64である必要があります。",
            field=field,
        )
    return data


async def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def _staff(request: Request, creds: HTTPAuthorizationCredentials | None) -> Staff:
    tokens: TokenStore = request.app.state.tokens
    staff = tokens.check(creds.credentials) if creds else None
    if staff is None:
        raise AuthError(
            "auth.token",
            "A valid staff bearer token is required.",
            "有効な職員トークン（Bearer）が必要です。",
        )
    return staff


def _lacks(scope: str) -> ForbiddenError:
    return ForbiddenError(
        "auth.scope",
        f"This token lacks the scope {scope}.",
        f"このトークンには権限 {scope} がありません。",
        extra={"required_scope": scope},
    )


def require(scope: str) -> Callable[..., Awaitable[Staff]]:
    """A dependency that admits a staff token carrying `scope`."""

    async def check(
        request: Request,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Staff:
        staff = _staff(request, creds)
        if scope not in staff.scopes:
            raise _lacks(scope)
        return staff

    return check


async def require_agency(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    agency_id: Annotated[str, Path(pattern=AGENCY_ID, description="the agency's id")],
) -> Staff:
    """The dependency of every route under ``/api/agency/{agency_id}/``: a token that acts for
    that very agency (:meth:`Staff.acts_for`: ``agency:link`` bound to it, or the platform-wide
    ``agency:admin``). As a router dependency it runs before the route's body is validated and
    its key looked at, so a token of another agency has nothing read or written for it (403
    ``auth.wrong_agency``; a token bound to no agency: 403 ``auth.agency_unbound``)."""
    staff = _staff(request, creds)
    if staff.acts_for(agency_id):
        return staff
    # refused: say why
    if "agency:link" not in staff.scopes:
        raise _lacks("agency:link")
    if staff.agency is None:
        raise ForbiddenError(
            "auth.agency_unbound",
            "This token is bound to no agency; ask for a token minted for yours.",
            "このトークンはどの機関にも紐付いていません。所属機関用のトークンを発行してください。",
        )
    raise ForbiddenError(
        "auth.wrong_agency",
        "This token acts for another agency only; nothing was read or changed.",
        "このトークンは他の機関専用です。何も参照・変更していません。",
        field="agency_id",
    )


def _key(value: str | None, required: bool) -> str | None:
    if value is None:
        if required:
            raise ValidationError(
                "idempotency.key_required",
                "Send an Idempotency-Key header with every request that changes state.",
                "状態を変更する要求には Idempotency-Key ヘッダーが必要です。",
                field="Idempotency-Key",
                status=400,
            )
        return None
    if not (1 <= len(value) <= 200) or not value.isascii() or not value.isprintable():
        raise ValidationError(
            "idempotency.key_invalid",
            "An Idempotency-Key is 1–200 printable ASCII characters.",
            "Idempotency-Key は1〜200文字の印字可能なASCII文字です。",
            field="Idempotency-Key",
            status=400,
        )
    return value


async def _required_key(
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> str:
    key = _key(idempotency_key, True)
    assert key is not None
    return key


async def _optional_key(
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> str | None:
    return _key(idempotency_key, False)


IdempotencyKey = Annotated[str, Depends(_required_key)]
OptionalIdempotencyKey = Annotated[str | None, Depends(_optional_key)]
PlatformDep = Annotated[Platform, Depends(get_platform)]
