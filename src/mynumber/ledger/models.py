"""Tables owned by the ledger role. No other role imports this module."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, LargeBinary, MetaData, Table

metadata = MetaData()

# One row per leaf, never updated or deleted: the leaf hash commits to the record for ever.
leaves = Table(
    "leaves",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("appended_at", DateTime(timezone=True), nullable=False),
    # Finding a record's leaf by its hash: a writer that crashed between its own commit and the
    # log's learns whether its record made it in.
    Index("ix_leaves_leaf_hash", "leaf_hash"),
)

# The record itself, beside its leaf: erased (body NULL) after the retention period while the
# leaf stays, so proofs about it still verify.
payloads = Table(
    "payloads",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("body", LargeBinary),
    Column("erased_at", DateTime(timezone=True)),
)

# Every signed tree head the log has published, one per size.
heads = Table(
    "heads",
    metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("timestamp_ms", BigInteger, nullable=False),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("signature", LargeBinary(64), nullable=False),
)

__all__ = ["heads", "leaves", "metadata", "payloads"]
