"""The municipality's public interface to other roles: the identity event feed.

J-LIS keeps its identity mirror (本人確認情報) from these events, pulled by sequence number, and
never reads the municipality's tables.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["IdentityEvent", "IdentitySnapshot", "MunicipalityFeed"]


@dataclass(frozen=True, slots=True)
class IdentitySnapshot:
    """A resident's identity items after an event."""

    family_name: str
    given_name: str
    family_name_kana: str
    given_name_kana: str
    birth_date: dt.date
    sex: int
    postal_code: str
    address: str
    status: str
    """active, moved_out (転出), deceased (死亡) — anything but active is a 除票."""


@dataclass(frozen=True, slots=True)
class IdentityEvent:
    seq: int
    municipality_code: str
    resident_code: str
    kind: str
    occurred_on: dt.date
    identity: IdentitySnapshot
    snapshot_json: str = ""
    """The snapshot as the municipality recorded it (JSON), kept verbatim in J-LIS's history."""
    abroad: bool = False
    """A move-out (転出) to an address outside Japan (国外転出): J-LIS revokes both certificates."""


class MunicipalityFeed(Protocol):
    def municipality_codes(self) -> Sequence[str]: ...

    def identity_events(
        self, municipality_code: str, after_seq: int, limit: int
    ) -> Sequence[IdentityEvent]: ...
