"""The FastAPI application: role routers, problem+json, OpenAPI, and the landing page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from mynumber import __version__
from mynumber.api.auth import TokenStore
from mynumber.api.problems import install_problem_handlers, language
from mynumber.jlis.api import router as jlis_router
from mynumber.municipality.api import router as municipality_router
from mynumber.platform import Platform

__all__ = ["create_app"]

_templates = Jinja2Templates(directory=str(Path(__file__).parent.parent / "web" / "templates"))


def create_app(platform: Platform) -> FastAPI:
    app = FastAPI(
        title="mynumber",
        version=__version__,
        description=(
            "An open-source implementation of Japan's My Number system. Errors are RFC 9457 "
            "problem+json in Japanese (default) and English (`Accept-Language: en`). Every POST "
            "that changes state takes an `Idempotency-Key` header."
        ),
    )
    app.state.platform = platform
    app.state.tokens = TokenStore(platform.settings.data_dir / "tokens.json")
    install_problem_handlers(app)
    app.include_router(municipality_router)
    app.include_router(jlis_router)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def landing(request: Request, lang: str | None = None) -> Any:
        chosen = lang if lang in ("ja", "en") else language(request)
        return _templates.TemplateResponse(
            request,
            "landing.html",
            {
                "lang": chosen,
                "municipalities": platform.municipality.list_municipalities(),
                "jlis": platform.jlis.counts(),
                "version": __version__,
                "data_dir": platform.settings.data_dir,
            },
        )

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
