"""The Alembic history of each role builds exactly the schema its models declare."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from mynumber.migrations import metadata_for, upgrade
from mynumber.platform import Platform


@pytest.mark.parametrize("role", ["municipality", "jlis", "ledger", "network", "agency", "portal"])
def test_migrations_match_models(platform: Platform, role: str) -> None:
    engine = {
        "municipality": platform.municipality.engine,
        "jlis": platform.jlis.engine,
        "ledger": platform.ledger.engine,
        "network": platform.network.engine,
        "agency": platform.agencies.engine,
        "portal": platform.portal.engine,
    }[role]
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": f"alembic_version_{role}"}
        )
        diff = compare_metadata(ctx, metadata_for(role))
    assert diff == [], diff
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": f"alembic_version_{role}"})
        assert ctx.get_current_revision() == {
            "jlis": "0005",
            "ledger": "0002",
            "agency": "0003",
            "municipality": "0005",
        }.get(role, "0001")


def test_upgrade_twice_is_a_no_op(platform: Platform) -> None:
    upgrade(platform.jlis.engine, "jlis")
    upgrade(platform.municipality.engine, "municipality")
    assert platform.jlis.counts() == {"identities": 0, "numbers": 0}
