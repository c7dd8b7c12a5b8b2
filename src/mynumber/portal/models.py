"""Tables owned by the portal role (マイナポータル): public-funds accounts (公金受取口座), the
review queue of accounts shared between people, the accounts' event history, the
per-transaction card challenges (DESIGN I4) and idempotency records. No other role imports this
module.

People are keyed by their resident record code; the portal never stores an individual number
(I5).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from mynumber.idempotency import idempotency_table

metadata = MetaData()

# One public-funds account per person (a new registration replaces the old one).
accounts = Table(
    "accounts",
    metadata,
    Column("resident_code", String(11), primary_key=True),
    Column("bank", String(4), nullable=False),
    Column("branch", String(3), nullable=False),
    Column("number", String(7), nullable=False),
    Column("holder_kana", Text, nullable=False),  # as the person wrote it (the bank's form)
    Column("state", String(10), nullable=False),  # active | review | rejected
    Column("notes", Text, nullable=False),  # ;-separated reason codes (holder_earlier_name, …)
    Column("certificate_serial", String(40), nullable=False),  # the card that authorised it
    Column("registered_at", DateTime(timezone=True), nullable=False),
    Column("seq", BigInteger, nullable=False),  # the event that wrote this row
    Index("ix_accounts_account", "bank", "branch", "number"),
)

# Accounts registered to several people, for a municipal clerk to look at: who else, and the
# family relationship when they share a household. Decided once.
account_reviews = Table(
    "account_reviews",
    metadata,
    Column(
        "review_id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("resident_code", String(11), nullable=False),
    Column("bank", String(4), nullable=False),
    Column("branch", String(3), nullable=False),
    Column("number", String(7), nullable=False),
    Column("reasons", Text, nullable=False),  # ;-separated: account_shared[_family], …
    Column("shared_with", Text, nullable=False),  # JSON: [{resident_code, relationship, …}]
    Column("state", String(10), nullable=False),  # open | confirmed | rejected | superseded
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("decided_by", String(200)),
    Column("justification", Text),
    Column("decided_at", DateTime(timezone=True)),
    Index("ix_account_reviews_state", "state"),
    # One open item per person: a new registration supersedes the open one.
    Index(
        "uq_account_reviews_open_person",
        "resident_code",
        unique=True,
        sqlite_where=text("state = 'open'"),
        postgresql_where=text("state = 'open'"),
    ),
)

# Every change to an account, with a monotonic sequence number (I8).
account_events = Table(
    "account_events",
    metadata,
    Column(
        "seq",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("resident_code", String(11), nullable=False),
    Column("kind", String(20), nullable=False),  # registered | replaced | review_decided
    Column("detail", Text, nullable=False),  # JSON
    Column("actor", String(200), nullable=False),  # card:<serial> or the clerk's name
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Index("ix_account_events_person", "resident_code", "seq"),
)

# The per-transaction challenges: a statement naming the account, to be signed by the card of
# the person whose session asked for it, once, within its validity. The statement is kept as a
# digest only.
account_challenges = Table(
    "account_challenges",
    metadata,
    Column("nonce_digest", String(64), primary_key=True),
    Column("resident_code", String(11), nullable=False),
    Column("statement_digest", String(64), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
    Index("ix_account_challenges_expires", "expires_at"),
)

idempotency = idempotency_table(metadata)

__all__ = [
    "account_challenges",
    "account_events",
    "account_reviews",
    "accounts",
    "idempotency",
    "metadata",
]
