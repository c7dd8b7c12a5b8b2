"""Tables owned by the municipality role. No other role imports this module."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
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

municipalities = Table(
    "municipalities",
    metadata,
    Column("code", String(6), primary_key=True),
    Column("prefecture", Text, nullable=False),
    Column("name", Text, nullable=False),
)

residents = Table(
    "residents",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("municipality_code", String(6), nullable=False),
    Column("resident_code", String(11), nullable=False),
    Column("number_index", LargeBinary(16)),
    Column("number_enc", LargeBinary),
    Column("family_name", Text, nullable=False),
    Column("given_name", Text, nullable=False),
    Column("family_name_kana", Text, nullable=False),
    Column("given_name_kana", Text, nullable=False),
    Column("birth_date", Date, nullable=False),
    Column("sex", SmallInteger, nullable=False),
    Column("postal_code", String(7), nullable=False),
    Column("address", Text, nullable=False),
    Column("household_id", String(40), nullable=False),
    Column("relationship", String(40), nullable=False),
    Column("alphabet_name", Text, nullable=False, default=""),
    Column("nationality", String(2), nullable=False, default=""),
    Column("residence_status", Text, nullable=False, default=""),
    Column("period_of_stay_end", Date),
    Column("domicile", Text, nullable=False, default="", server_default=""),  # 本籍
    Column("domicile_head", Text, nullable=False, default="", server_default=""),  # 筆頭者
    # active | moved_out | deceased; anything but active is a 除票, kept for 150 years.
    Column("status", String(10), nullable=False),
    Column("status_since", Date, nullable=False),
    Column("address_since", Date, nullable=False),
    Column("updated_seq", BigInteger, nullable=False),
    # The code (and the number) lead: duplicates are checked across municipalities by them.
    Index("uq_residents_municipality_code", "resident_code", "municipality_code", unique=True),
    Index("uq_residents_number", "number_index", "municipality_code", unique=True),
    Index("ix_residents_household", "municipality_code", "household_id"),
    Index("ix_residents_kana", "municipality_code", "family_name_kana", "given_name_kana"),
)

events = Table(
    "events",
    metadata,
    Column(
        "seq",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("municipality_code", String(6), nullable=False),
    Column("resident_code", String(11), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("occurred_on", Date, nullable=False),
    Column("notified_on", Date, nullable=False),
    Column("late", Boolean, nullable=False),
    Column("snapshot", Text, nullable=False),
    Column("detail", Text, nullable=False, default="{}"),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index("ix_events_municipality_seq", "municipality_code", "seq"),
    # A person's own history (and the kiosk's same-day rule) without scanning everyone's.
    Index("ix_events_resident", "municipality_code", "resident_code", "seq"),
)

# The seal register (印鑑登録): one row per registered seal, never deleted; an ended seal keeps
# its row (state abolished | lost). One active seal per person, enforced by the database.
seals = Table(
    "seals",
    metadata,
    Column(
        "seal_id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("municipality_code", String(6), nullable=False),
    Column("resident_code", String(11), nullable=False),
    Column("card_number", String(16), nullable=False),
    Column("image", LargeBinary, nullable=False),
    Column("media_type", String(20), nullable=False),
    Column("image_digest", String(64), nullable=False),
    Column("state", String(10), nullable=False),  # active | abolished | lost
    Column("registered_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Index(
        "uq_seals_one_active",
        "municipality_code",
        "resident_code",
        unique=True,
        sqlite_where=text("state = 'active'"),
        postgresql_where=text("state = 'active'"),
    ),
    Index("uq_seals_card_number", "municipality_code", "card_number", unique=True),
)

seal_events = Table(
    "seal_events",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("seal_id", BigInteger, nullable=False),
    Column("municipality_code", String(6), nullable=False),
    Column("resident_code", String(11), nullable=False),
    Column("kind", String(12), nullable=False),  # registered | abolished | lost
    Column("operator", Text, nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_seal_events_resident", "municipality_code", "resident_code", "seq"),
)

idempotency = idempotency_table(metadata)

# Documents issued (住民票の写し, 記載事項証明書, 印鑑登録証明書): one row per document, written in
# the transaction that read the register to render it (I2), with the signed PDF so a retry with
# the same request key returns the very same document.
issuances = Table(
    "issuances",
    metadata,
    Column("document_id", String(26), primary_key=True),
    Column("municipality_code", String(6), nullable=False),
    Column("resident_code", String(11), nullable=False),
    Column("kind", String(12), nullable=False),
    Column("subject", String(64), nullable=False),
    Column("content_digest", String(64), nullable=False),
    Column("pdf_digest", String(64), nullable=False),
    Column("channel", String(8), nullable=False),  # counter | kiosk
    Column("requester", Text, nullable=False),  # the operator, or the kiosk
    Column("nonce", String(64)),
    Column("card", String(64)),
    Column("request_key", String(200)),
    Column("request_digest", String(64), nullable=False),
    Column("fee", Integer, nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    # counter: "handed" at once; kiosk: "pending" until the kiosk reports "printed" or "aborted"
    Column("outcome", String(8), nullable=False),
    Column("outcome_at", DateTime(timezone=True)),
    Column("pdf", LargeBinary, nullable=False),
    # When the transparency log took its access record (DESIGN I6); NULL between the issuance's
    # commit and the log's, see IssuanceService.reconcile_log.
    Column("logged_at", DateTime(timezone=True)),
    # resident codes of the others a 住民票 shows (space-separated): each gets an access record
    Column("others", Text, nullable=False, default="", server_default=""),
    Index("uq_issuances_request_key", "municipality_code", "request_key", unique=True),
    Index("ix_issuances_resident", "municipality_code", "resident_code", "issued_at"),
    Index("ix_issuances_logged_at", "logged_at"),
)

# 支援措置 (DV, stalking and abuse victims): no copy of their record goes to anyone but through a
# clerk who has checked who is asking; kiosks never issue one.
support_measures = Table(
    "support_measures",
    metadata,
    Column("municipality_code", String(6), primary_key=True),
    Column("resident_code", String(11), primary_key=True),
    Column("since", Date, nullable=False),
    Column("until", Date),
    Column("operator", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

# One fee per document handed over or printed, never two: the document id is the key.
fees = Table(
    "fees",
    metadata,
    Column("document_id", String(26), primary_key=True),
    Column("municipality_code", String(6), nullable=False),
    Column("amount", Integer, nullable=False),
    Column("channel", String(8), nullable=False),
    Column("requester", Text, nullable=False),
    Column("charged_at", DateTime(timezone=True), nullable=False),
)
