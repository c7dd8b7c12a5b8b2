"""Deployment settings, read from the environment (MYNUMBER_*) or given on the command line."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ROLES", "Settings", "default_data_dir"]

ROLES = ("municipality", "jlis", "ledger", "network", "agency")


def default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "mynumber"


class Settings(BaseSettings):
    """Where a deployment keeps its data; several deployments live side by side by data dir."""

    model_config = SettingsConfigDict(env_prefix="MYNUMBER_", extra="ignore")

    data_dir: Path = default_data_dir()
    database_url: str | None = None
    municipality_database_url: str | None = None
    jlis_database_url: str | None = None
    ledger_database_url: str | None = None
    network_database_url: str | None = None
    agency_database_url: str | None = None
    master_key: str | None = None
    # Where clients reach this deployment: the CRL and OCSP URLs certificates carry start here.
    base_url: str = "http://127.0.0.1:8000"
    # A kiosk session's life, from card insertion to the document in the kiosk's hands.
    kiosk_session_seconds: float = Field(default=180.0, gt=0, le=3600)

    def role_database_url(self, role: str) -> str:
        """The database of `role`: its own URL, else the shared one, else a SQLite file per role."""
        own: str | None = getattr(self, f"{role}_database_url", None)
        if own:
            return own
        if self.database_url and not self.database_url.startswith("sqlite"):
            return self.database_url
        return f"sqlite:///{self.data_dir / f'{role}.sqlite3'}"
