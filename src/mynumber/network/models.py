"""Tables owned by the network role. No other role imports this module."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# Registered information holders and their request-signing keys (Ed25519, raw 32 bytes).
agencies = Table(
    "agencies",
    metadata,
    Column("agency_id", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("name_ja", Text, nullable=False),
    Column("name_en", Text, nullable=False),
    Column("public_key", LargeBinary(32), nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False),
    Column("active", Boolean, nullable=False),
)

# The code map: which code each agency knows each person by. `person` is the network's keyed
# pseudonym (mynumber.network.codes), never the resident record code or the individual number.
codes = Table(
    "codes",
    metadata,
    Column("agency_id", String(64), primary_key=True),
    Column("code", String(26), primary_key=True),
    Column("person", LargeBinary(32), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("agency_id", "person", name="uq_codes_agency_person"),
)

# The network's own record of every exchange (情報提供等の記録), with the person it concerned, so a
# person's records can be found; `leaf_index` is its place in the transparency log (NULL only
# between the row's commit and the log's, see NetworkService.reconcile).
requests = Table(
    "requests",
    metadata,
    Column("requester", String(64), primary_key=True),
    Column("request_id", String(36), primary_key=True),
    Column("request_digest", LargeBinary(32), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("person", LargeBinary(32)),
    Column("task", String(64), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("item", String(64), nullable=False),
    Column("basis", String(64)),
    Column("outcome", String(10), nullable=False),
    Column("reason", String(64)),
    Column("record", LargeBinary, nullable=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("leaf_index", BigInteger),
    Index("ix_requests_person", "person"),
    Index("ix_requests_at", "at"),
    Index("ix_requests_leaf_index", "leaf_index"),
)

__all__ = ["agencies", "codes", "metadata", "requests"]
