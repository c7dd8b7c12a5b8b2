"""Tables owned by the agency role (every agency of a deployment, each row tagged with its
agency). No other role imports this module."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, UniqueConstraint

metadata = MetaData()

# The agency's own business records, keyed by its internal id (宛名番号 and the like).
records = Table(
    "records",
    metadata,
    Column("agency_id", String(64), primary_key=True),
    Column("internal_id", String(32), primary_key=True),
    Column("data", Text, nullable=False),  # JSON: item → value
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# The agency code (機関別符号) obtained for each record's person, and how it was obtained.
codes = Table(
    "codes",
    metadata,
    Column("agency_id", String(64), primary_key=True),
    Column("internal_id", String(32), primary_key=True),
    Column("code", String(26), nullable=False),
    Column("method", String(32), nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("agency_id", "code", name="uq_agency_codes_code"),
)

# The intermediate server's copy (中間サーバーの副本): the shareable items, keyed by internal id and
# agency code, refreshed from the records; the only thing the network's queries read.
copies = Table(
    "copies",
    metadata,
    Column("agency_id", String(64), primary_key=True),
    Column("code", String(26), primary_key=True),
    Column("item", String(64), primary_key=True),
    Column("internal_id", String(32), nullable=False),
    Column("value", Text, nullable=False),  # JSON
    Column("refreshed_at", DateTime(timezone=True), nullable=False),
)

__all__ = ["codes", "copies", "metadata", "records"]
