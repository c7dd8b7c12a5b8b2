"""One mapping from every error to RFC 9457 problem+json, in Japanese and English (I9)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from mynumber.errors import MynumberError

__all__ = ["PROBLEM_RESPONSES", "Problem", "install_problem_handlers", "language"]

log = logging.getLogger("mynumber.api")
MEDIA = "application/problem+json"


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    code: str
    messages: dict[str, str]
    field: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


# Errors are sent as application/problem+json only; the schema is registered once under
# components by install_problem_handlers (a "model" here would document application/json).
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"content": {MEDIA: {"schema": _PROBLEM_REF}}, "description": desc}
    | (
        {"headers": {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}}}
        if status == 401
        else {}
    )
    for status, desc in [
        (400, "Bad request"),
        (401, "Missing or unknown bearer token"),
        (403, "Token lacks the scope"),
        (404, "Not found"),
        (409, "Conflicts with the current state"),
        (422, "Invalid input"),
    ]
}


def language(request: Request) -> str:
    """'en' when the client prefers English, else Japanese (the system's first language)."""
    header = request.headers.get("accept-language", "").strip().lower()
    return "en" if header.startswith("en") else "ja"


def _respond(
    request: Request, err: MynumberError, extra: dict[str, Any] | None = None
) -> JSONResponse:
    body = err.problem(language(request), instance=request.url.path)
    if extra:
        body.update(extra)
    headers = (
        {"WWW-Authenticate": "Bearer"}
        if err.status == 401
        else {"Retry-After": "1"}
        if err.status == 503
        else None
    )
    return JSONResponse(body, status_code=err.status, media_type=MEDIA, headers=headers)


_HTTP_CODES = {
    400: ("request.bad", "The request is malformed.", "要求の形式が正しくありません。"),
    404: ("request.not_found", "No such resource.", "該当するリソースがありません。"),
    405: ("request.method", "This method is not allowed here.", "このメソッドは使用できません。"),
    406: (
        "request.not_acceptable",
        "Cannot produce that media type.",
        "その形式では応答できません。",
    ),
    413: ("request.too_large", "The request is too large.", "要求が大きすぎます。"),
    415: ("request.media_type", "Unsupported media type.", "サポートされていない形式です。"),
}


def _document_problems(app: FastAPI) -> None:
    """Add the Problem schema to the OpenAPI components the error responses refer to."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas["Problem"] = Problem.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_problem_handlers(app: FastAPI) -> None:
    _document_problems(app)

    @app.exception_handler(MynumberError)
    async def _mynumber(request: Request, exc: MynumberError) -> JSONResponse:
        return _respond(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ()) if p not in ("body",)),
                "type": e.get("type", ""),
                "message": e.get("msg", ""),
            }
            for e in exc.errors()
        ]
        first = (errors[0]["field"] if errors else None) or None  # "" is the body as a whole
        err = MynumberError(
            "request.invalid",
            f"The request is invalid{f' at {first}' if first else ''}.",
            f"要求の内容が正しくありません{f'（{first}）' if first else ''}。",
            field=first,
            status=422,
        )
        return _respond(request, err, {"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, en, ja = _HTTP_CODES.get(
            exc.status_code,
            ("request.error", "The request failed.", "要求を処理できませんでした。"),
        )
        return _respond(request, MynumberError(code, en, ja, status=exc.status_code))

    async def _database(request: Request, exc: Exception) -> JSONResponse:
        # The database refused a connection (too many clients, restarting), none was free in
        # the pool in time, or it gave up on a lock: the transaction rolled back, and the same
        # request again is the remedy. 503 with Retry-After, not 500.
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                    type(exc).__name__)  # fmt: skip
        err = MynumberError(
            "server.busy",
            "The database is busy or unavailable; nothing was changed. Try again.",
            "データベースが混み合っているか利用できません。変更は行われていません。再度お試しください。",
            status=503,
        )
        return _respond(request, err)

    app.add_exception_handler(OperationalError, _database)
    app.add_exception_handler(PoolTimeoutError, _database)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Never a traceback to a user; the log gets the type only (values may hold personal data).
        log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path)
        err = MynumberError(
            "server.error",
            "An internal error occurred; nothing was changed.",
            "内部エラーが発生しました。変更は行われていません。",
            status=500,
        )
        return _respond(request, err)
