"""Tables owned by J-LIS. No other role imports this module."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
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
from mynumber.relying.login import challenge_table

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

# -- cards (card management) (mynumber.jlis.cards) ------------------------------------------

cards = Table(
    "cards",
    metadata,
    Column("card_id", String(32), primary_key=True),
    Column("resident_code", String(11), nullable=False),
    Column("application_id", String(23), unique=True),  # 申請書ID (23 digits), when given
    Column("channel", String(8), nullable=False),  # online | paper | counter
    Column("state", String(12), nullable=False),  # mynumber.jlis.card_lifecycle.CardState
    Column("period_of_stay_end", Date),  # foreign residents with a fixed period of stay
    Column("issued_on", Date),  # handed over
    Column("expires_on", Date),
    Column("chip_id", String(64), unique=True),
    Column("is_smartphone", Boolean, nullable=False, default=False),
    Column("face", JSON),  # what the face shows: name, address, birth date, sex, expiry
    Column("fee_yen", Integer, nullable=False, default=0),
    Column("replaces", String(32)),  # the card this one renews or reissues
    Column("superseded_by", String(32)),  # the card that replaced this one
    Column("reason", String(16)),  # why it was reissued, returned or cancelled
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_cards_resident", "resident_code"),
    # At most one card in the holder's hands, and one on its way, per person (under concurrency).
    Index(
        "uq_cards_holding_resident",
        "resident_code",
        unique=True,
        sqlite_where=text("state IN ('active', 'suspended')"),
        postgresql_where=text("state IN ('active', 'suspended')"),
    ),
    Index(
        "uq_cards_pending_resident",
        "resident_code",
        unique=True,
        sqlite_where=text("state IN ('applied', 'produced')"),
        postgresql_where=text("state IN ('applied', 'produced')"),
    ),
)

card_events = Table(
    "card_events",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("card_id", String(32), nullable=False),
    Column("resident_code", String(11), nullable=False),
    Column("kind", String(16), nullable=False),  # card_lifecycle.Action
    Column("from_state", String(12)),
    Column("to_state", String(12), nullable=False),
    Column("detail", JSON, nullable=False),  # never a PIN, a key or an individual number
    Column("operator", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_card_events_card", "card_id", "seq"),
)

# -- verifiers (registered verifiers, 基本4情報提供, login challenges) (mynumber.jlis.verifiers) --

verifiers = Table(
    "verifiers",
    metadata,
    # 署名検証者 / 利用者証明検証者 (公的個人認証法 17・36条) registered with J-LIS.
    Column("id", String(32), primary_key=True),
    Column("name", Text, nullable=False),
    Column("kinds", String(20), nullable=False),  # "auth", "signature" or "auth,signature"
    Column("registered_at", DateTime(timezone=True), nullable=False),
    Column("active", Boolean, nullable=False),
)

four_item_consents = Table(
    "four_item_consents",
    metadata,
    # SHA-256 (hex) of the signed consent statement: a consent serves one provision.
    Column("id", String(64), primary_key=True),
    Column("verifier_id", String(32), nullable=False),
    Column("signature_serial", String(40), nullable=False),  # the old signature certificate
    Column("auth_serial", String(40), nullable=False),  # the certificate that consented
    Column("resident_code", String(11), nullable=False),
    Column("granted_at", DateTime(timezone=True), nullable=False),  # as the statement says
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used", Boolean, nullable=False),
    Column("provided_at", DateTime(timezone=True)),
    Index("ix_four_item_consents_verifier", "verifier_id", "granted_at"),
)

# The platform's own login (mynumber.relying.login): challenges shared by every worker.
login_challenges = challenge_table(metadata)

# LGPKI (地方公共団体組織認証基盤, also run by J-LIS): the organisation certificates that
# municipalities sign issued documents with. Never deleted; a revoked one stays, with its time.
organisation_certificates = Table(
    "organisation_certificates",
    metadata,
    Column("serial", String(40), primary_key=True),
    Column("municipality_code", String(6), nullable=False),
    Column("not_before", DateTime(timezone=True), nullable=False),
    Column("not_after", DateTime(timezone=True), nullable=False),
    Column("der", LargeBinary, nullable=False),
    Column("status", String(8), nullable=False),  # valid | revoked
    Column("revoked_at", DateTime(timezone=True)),
    Column("revocation_reason", String(32)),
    Index("ix_organisation_certificates_municipality", "municipality_code"),
)

# The kiosk centre (コンビニ交付センター): one row per kiosk session. A session is single-use:
# its nonce is spent by the first request the card signed for it, and a retry of that same
# request (same statement digest) is the only other request it ever answers.
kiosk_sessions = Table(
    "kiosk_sessions",
    metadata,
    Column("session_id", String(32), primary_key=True),
    Column("kiosk_id", String(32), nullable=False),
    Column("nonce", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
    Column("statement_digest", String(64)),
    Column("serial", String(40)),
    Column("document_id", String(26)),
    Column("municipality_code", String(6)),
    Index("ix_kiosk_sessions_expires", "expires_at"),
)
