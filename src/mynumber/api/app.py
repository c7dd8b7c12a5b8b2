"""The FastAPI application: role routers, problem+json, OpenAPI, and the landing page."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from mynumber import __version__
from mynumber.agency.api import router as agency_router
from mynumber.api.auth import TokenStore
from mynumber.api.documents import issue_router, page_router, public_router
from mynumber.api.problems import install_problem_handlers, language
from mynumber.jlis.api import router as jlis_router
from mynumber.jlis.cards_api import router as cards_router
from mynumber.jlis.kiosk_api import router as kiosk_router
from mynumber.jlis.verify_api import login_router
from mynumber.jlis.verify_api import router as verify_router
from mynumber.ledger.api import router as ledger_router
from mynumber.municipality.api import router as municipality_router
from mynumber.network.api import router as network_router
from mynumber.platform import Platform
from mynumber.portal.api import router as portal_router

__all__ = ["SYNC_INTERVAL", "create_app"]

log = logging.getLogger("mynumber.api")

SYNC_INTERVAL = 0.5
"""Seconds between two background syncs of the J-LIS identity mirror in each server process.

Every change already syncs before its request returns; the loop catches up a sync that was
deferred (e.g. a busy database), so a revocation reaches OCSP within a second in any case."""

_templates = Jinja2Templates(directory=str(Path(__file__).parent.parent / "web" / "templates"))


async def _sync_loop(platform: Platform, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(platform.sync)
        except Exception as exc:  # the next round retries
            log.warning("background J-LIS sync failed: %s", type(exc).__name__)


def create_app(platform: Platform, *, sync_interval: float | None = SYNC_INTERVAL) -> FastAPI:
    """The application; with `sync_interval` (and the platform's auto-sync on), a background task
    keeps the J-LIS mirror — and so certificate revocation — caught up while it runs."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = None
        if sync_interval and platform.auto_sync:
            task = asyncio.create_task(_sync_loop(platform, sync_interval))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(
        lifespan=lifespan,
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
    app.include_router(cards_router)
    app.include_router(verify_router)
    app.include_router(login_router)
    app.include_router(network_router)
    app.include_router(ledger_router)
    app.include_router(agency_router)
    app.include_router(portal_router)
    app.include_router(issue_router)
    app.include_router(kiosk_router)
    app.include_router(public_router)
    app.include_router(page_router)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def landing(request: Request, lang: str | None = None) -> Any:
        chosen = lang if lang in ("ja", "en") else language(request)
        names = {a.agency_id: (a.name_ja, a.name_en) for a in platform.network.agencies()}
        pairs: dict[tuple[str, str], dict[str, int]] = {}
        for row in platform.network.counts()["exchanges"]:
            cell = pairs.setdefault((row["requester"], row["provider"]), {})
            cell[row["outcome"]] = row["count"]
        i = 0 if chosen == "ja" else 1
        exchanges = [
            {
                "requester": names.get(a, (a, a))[i],
                "provider": names.get(b, (b, b))[i],
                **{o: c.get(o, 0) for o in ("provided", "not_held", "refused")},
            }
            for (a, b), c in sorted(pairs.items())
        ]
        head = platform.ledger.head()
        return _templates.TemplateResponse(
            request,
            "landing.html",
            {
                "lang": chosen,
                "municipalities": platform.municipality.list_municipalities(),
                "jlis": platform.jlis.counts(),
                "exchanges": exchanges,
                "log_size": 0 if head is None else head.tree_size,
                "log_root": "" if head is None else head.root_hash.hex(),
                "version": __version__,
                "data_dir": platform.settings.data_dir,
            },
        )

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
