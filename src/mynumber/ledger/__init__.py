"""The ledger role: an append-only Merkle transparency log of access records (DESIGN I6).

- :mod:`mynumber.ledger.merkle` — RFC 9162 hashing, tree heads, inclusion and consistency
  proofs and their verification (pure, no I/O);
- :mod:`mynumber.ledger.heads` — signed tree heads (RFC 9162 §4.10, Ed25519), fork evidence and
  the check that a later head only extends an earlier one (pure).
"""
