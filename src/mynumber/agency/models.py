"""Tables owned by the agency role (every agency of a deployment, each row tagged with its
agency). No other role imports this module."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

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

# A record's link to an individual number (I3), with its provenance. The number is sealed
# (AES-GCM) with a keyed blind index for lookup, as everywhere.
links = Table(
    "links",
    metadata,
    Column("agency_id", String(64), primary_key=True),
    Column("internal_id", String(32), primary_key=True),
    Column("number_index", LargeBinary(16), nullable=False),
    Column("number_enc", LargeBinary, nullable=False),
    Column("method", String(32), nullable=False),  # claimed_number | five_item_query | review
    Column("policy", String(16), nullable=False),  # strict | assisted
    Column("items", Text, nullable=False),  # JSON: item → match | match_normalised | earlier
    Column("notes", Text, nullable=False),  # ;-separated reason codes kept as provenance
    Column("operator", String(200), nullable=False),
    Column("linked_at", DateTime(timezone=True), nullable=False),
    Index("ix_links_number", "agency_id", "number_index"),
)

# The review queue: records that did not link, with the reasons; decided only by an operator
# with a justification (nothing resolves itself).
reviews = Table(
    "reviews",
    metadata,
    Column(
        "review_id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("agency_id", String(64), nullable=False),
    Column("internal_id", String(32), nullable=False),
    Column("record", Text, nullable=False),  # JSON: the five items as the agency holds them
    Column("claimed_enc", LargeBinary),  # the claimed number, sealed (None: no claim)
    Column("reasons", Text, nullable=False),
    Column("candidate_enc", LargeBinary),  # the number of the person the evidence points to
    # Batch searches: the numbers of up to three candidates, best first, ';'-joined and sealed,
    # and the model's match probability for the best.
    Column("candidates_enc", LargeBinary),
    Column("score", Float),
    Column("state", String(10), nullable=False),  # open | linked | rejected
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("decided_by", String(200)),
    Column("justification", Text),
    Column("decided_at", DateTime(timezone=True)),
    Index("ix_reviews_open", "agency_id", "state"),
    # One open item per record: a retry or a second clerk cannot queue the same member twice.
    Index(
        "uq_reviews_open_member",
        "agency_id",
        "internal_id",
        unique=True,
        sqlite_where=text("state = 'open'"),
        postgresql_where=text("state = 'open'"),
    ),
)

__all__ = ["codes", "copies", "links", "metadata", "records", "reviews"]
