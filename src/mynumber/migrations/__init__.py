"""Alembic migrations, one history per role (each role owns its schema).

`upgrade(engine, role)` brings a role's database to the newest revision; it runs at start-up,
so a fresh data directory and an old one both end at the same schema.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Engine

__all__ = ["config_for", "metadata_for", "upgrade"]

HERE = Path(__file__).parent


def metadata_for(role: str) -> MetaData:
    if role == "municipality":
        from mynumber.municipality.models import metadata
    elif role == "jlis":
        from mynumber.jlis.models import metadata
    elif role == "ledger":
        from mynumber.ledger.models import metadata
    elif role == "network":
        from mynumber.network.models import metadata
    elif role == "agency":
        from mynumber.agency.models import metadata
    elif role == "portal":
        from mynumber.portal.models import metadata
    else:
        raise ValueError(f"no migrations for role {role}")
    return metadata


def config_for(role: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE / role))
    cfg.set_main_option("version_table", f"alembic_version_{role}")
    cfg.attributes["role"] = role
    return cfg


def upgrade(engine: Engine, role: str) -> None:
    """Migrate `role`'s database to head; concurrent starters wait for each other."""
    cfg = config_for(role)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(hashtext(:r))"), {"r": f"migrate:{role}"})
            conn.commit()
        else:
            conn.execution_options(writing=True)  # BEGIN IMMEDIATE: one migrator at a time
        try:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()
        finally:
            if engine.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_unlock(hashtext(:r))"), {"r": f"migrate:{role}"}
                )
                conn.commit()
