"""The body of every role's Alembic env.py: migrate on the connection we are handed."""

from __future__ import annotations

from alembic import context
from sqlalchemy import MetaData, create_engine
from sqlalchemy.engine import Connection

from mynumber.migrations import metadata_for


def run() -> None:
    cfg = context.config
    role = cfg.attributes.get("role") or cfg.get_main_option("role") or ""
    metadata = metadata_for(role)
    version_table = cfg.get_main_option("version_table") or f"alembic_version_{role}"
    conn = cfg.attributes.get("connection")
    if conn is None:  # `alembic` run by hand against a URL (e.g. to autogenerate a revision)
        url = cfg.get_main_option("sqlalchemy.url")
        assert url, "set sqlalchemy.url"
        with create_engine(url).connect() as own:
            _migrate(own, metadata, version_table)
            own.commit()
        return
    _migrate(conn, metadata, version_table)


def _migrate(conn: Connection, metadata: MetaData, version_table: str) -> None:
    context.configure(
        connection=conn,
        target_metadata=metadata,
        version_table=version_table,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
