"""ASGI entry point for uvicorn workers: builds the platform from the environment."""

from __future__ import annotations

from mynumber.api.app import create_app
from mynumber.config import Settings
from mynumber.platform import Platform

app = create_app(Platform(Settings()))
