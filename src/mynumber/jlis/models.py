"""Tables owned by J-LIS. No other role imports this module."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)

from mynumber.idempotency import idempotency_table

metadata = MetaData()

resident_codes = Table(
    "resident_codes",
    metadata,
    Column("code", String(11), primary_key=True),
    Column("municipality_code", String(6), nullable=False),
    Column("reserved_at", DateTime(timezone=True), nullable=False),
)

numbers = Table(
    "numbers",
    metadata,
    Column("number_index", LargeBinary(16), primary_key=True),
    Column("number_enc", LargeBinary, nullable=False),
    Column("resident_code", String(11), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("status", String(8), nullable=False),  # active | retired
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("retired_at", DateTime(timezone=True)),
    Column("retired_reason", String(40)),
    # At most one active number per person, enforced by the database under concurrency.
    Index(
        "uq_numbers_active_resident",
        "resident_code",
        unique=True,
        sqlite_where=text("status = 'active'"),
        postgresql_where=text("status = 'active'"),
    ),
    Index("ix_numbers_resident", "resident_code"),
)

identities = Table(
    "identities",
    metadata,
    Column("resident_code", String(11), primary_key=True),
    Column("municipality_code", String(6), nullable=False),
    Column("family_name", Text, nullable=False),
    Column("given_name", Text, nullable=False),
    Column("family_name_kana", Text, nullable=False),
    Column("given_name_kana", Text, nullable=False),
    Column("birth_date", Date, nullable=False),
    Column("sex", SmallInteger, nullable=False),
    Column("postal_code", String(7), nullable=False),
    Column("address", Text, nullable=False),
    Column("status", String(10), nullable=False),
    Column("name_key", Text, nullable=False),
    Column("kana_key", Text, nullable=False),
    Column("address_key", Text, nullable=False),
    # Earlier values' keys, '\x1f'-separated: the five-item match accepts them (DESIGN I3).
    Column("earlier_name_keys", Text, nullable=False, default=""),
    Column("earlier_kana_keys", Text, nullable=False, default=""),
    Column("earlier_address_keys", Text, nullable=False, default=""),
    Column("updated_seq", BigInteger, nullable=False),
    # The five-item query's path: one probe per claim, narrowed by the kana key in the index.
    Index("ix_identities_birth_sex_kana", "birth_date", "sex", "kana_key"),
)

identity_history = Table(
    "identity_history",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("resident_code", String(11), nullable=False, index=True),
    Column("municipality_code", String(6), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("occurred_on", Date, nullable=False),
    Column("snapshot", Text, nullable=False),
)

feed_cursors = Table(
    "feed_cursors",
    metadata,
    Column("municipality_code", String(6), primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
)

idempotency = idempotency_table(metadata)

# -- JPKI CA (mynumber.jlis.pki) ------------------------------------------------------------

certificates = Table(
    "certificates",
    metadata,
    # The serial number in upper-case hex, zero-padded to 40 digits (159 random bits).
    Column("serial", String(40), primary_key=True),
    Column("kind", String(14), nullable=False),  # signature | authentication
    Column("resident_code", String(11), nullable=False),
    Column("chip_id", String(64)),
    Column("not_before", DateTime(timezone=True), nullable=False),
    Column("not_after", DateTime(timezone=True), nullable=False),
    Column("der", LargeBinary, nullable=False),
    Column("status", String(8), nullable=False),  # valid | revoked | on_hold
    Column("revoked_at", DateTime(timezone=True)),
    Column("revocation_reason", String(32)),  # RFC 5280 name, e.g. affiliationChanged
    Index("ix_certificates_resident", "resident_code"),
)

crl_state = Table(
    "crl_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # one row: 1
    Column("crl_number", BigInteger, nullable=False),  # of the latest CRL signed
    Column("revision", BigInteger, nullable=False),  # bumped by every revocation or hold
    Column("built_revision", BigInteger),  # the revision the stored CRL reflects
    Column("this_update", DateTime(timezone=True)),
    Column("next_update", DateTime(timezone=True)),
    Column("der", LargeBinary),  # the latest CRL, served until a revocation or its refresh
)
