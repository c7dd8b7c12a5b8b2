"""Staff bearer tokens with role scopes. Tokens are stored only as SHA-256 digests.

A token with the scope ``agency:link`` is bound to one agency (:attr:`Staff.agency`): an
insurer's clerk sees and decides only that agency's records and review queue. Only the
separately named platform-wide scope ``agency:admin`` acts for every agency.

A token with ``kiosk:issue`` is bound likewise to one kiosk operator (:attr:`Staff.kiosk_operator`,
e.g. a convenience-store chain): it speaks for the kiosk ids ``OPERATOR`` and ``OPERATOR-*``
only, so one shop's token cannot order or report in another kiosk's name. Only a token that
also holds J-LIS's own ``jlis:admin`` is unbound (the centre's test kiosks, the demo token).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = ["AGENCY_ID", "AGENCY_SCOPES", "SCOPES", "Staff", "TokenStore"]

SCOPES = {
    "municipality:read": "read the resident register",
    "municipality:write": "record births, moves, deaths and other events; import",
    "jlis:query": "five-item queries and number verification (authorised agencies)",
    "jlis:admin": "change a leaked individual number",
    "jlis:verify": "ask the JPKI OCSP responder for certificate status (registered verifiers)",
    "card:counter": "card management at a municipal counter: applications, handover, lifting, reissue, renewal, face updates, PIN resets",
    "card:suspend": "the 24-hour loss line: suspend a card and hold its certificates",
    "network:admin": "register agencies and their request-signing keys with the network",
    "network:audit": "the auditor's view: anomaly report and the log's records",
    "agency:link": "enrol one agency's members with five-item verification; review and decide "
    "its links (the token is bound to that agency)",
    "agency:admin": "platform-wide: act for every agency under /api/agency (operators, never an "
    "agency's clerk)",
    "kiosk:issue": "a convenience-store kiosk: open sessions and order certificates with a "
    "card's signature (J-LIS kiosk centre; the token is bound to one kiosk operator)",
    "jlis:four-items": "receive the latest four basic items with the holder's consent (registered signature verifiers)",
}

AGENCY_SCOPES = frozenset({"agency:link"})
"""Scopes that act for one agency: a token carrying one is bound to an agency when minted."""

AGENCY_ID = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
"""An agency's id (the network's registry, the ``/api/agency/{agency_id}`` path)."""


@dataclass(frozen=True, slots=True)
class Staff:
    name: str
    scopes: frozenset[str]
    verifier: str | None = None
    """The registered verifier (mynumber.jlis.verifiers) this token belongs to, if any."""
    agency: str | None = None
    """The one agency an ``agency:link`` token acts for; None for every other token."""
    kiosk_operator: str | None = None
    """The kiosk operator a ``kiosk:issue`` token speaks for (kiosk ids OPERATOR, OPERATOR-*)."""

    def acts_for_kiosk(self, kiosk_id: str) -> bool:
        """May this token speak for kiosk `kiosk_id`? Its operator's kiosks only, or any with
        J-LIS's ``jlis:admin`` as well."""
        if "kiosk:issue" not in self.scopes:
            return False
        if self.kiosk_operator is None:
            return "jlis:admin" in self.scopes
        op = self.kiosk_operator
        return kiosk_id == op or kiosk_id.startswith(f"{op}-")

    def acts_for(self, agency_id: str) -> bool:
        """May this token act under ``agency:link`` for `agency_id`? Its own agency only, or
        every agency with the platform-wide ``agency:admin``."""
        if "agency:admin" in self.scopes:
            return True
        return "agency:link" in self.scopes and self.agency == agency_id


class TokenStore:
    """Tokens in `tokens.json` under the data dir, as digests; the token itself is shown once."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._mtime = -1.0
        self._by_digest: dict[str, Staff] = {}

    def _load(self) -> None:
        try:
            mtime = self._path.stat().st_mtime
        except FileNotFoundError:
            self._by_digest = {}
            return
        if mtime == self._mtime:
            return
        data = json.loads(self._path.read_text())
        self._by_digest = {
            t["digest"]: Staff(
                t["name"],
                frozenset(t["scopes"]),
                t.get("verifier"),
                t.get("agency"),
                t.get("kiosk_operator"),
            )
            for t in data.get("tokens", [])
        }
        self._mtime = mtime

    def create(
        self,
        name: str,
        scopes: list[str],
        *,
        verifier: str | None = None,
        agency: str | None = None,
        kiosk_operator: str | None = None,
    ) -> str:
        """A new token (shown once). A token with ``agency:link`` names its `agency`, unless it
        is platform-wide (``agency:admin``); `agency` is refused on any other token. Whether the
        agency is registered is the caller's check (the CLI asks the network). A ``kiosk:issue``
        token names its `kiosk_operator` unless it also holds ``jlis:admin``."""
        self.validate(scopes, agency=agency, kiosk_operator=kiosk_operator)
        token = "mnt_" + secrets.token_urlsafe(32)
        data = json.loads(self._path.read_text()) if self._path.exists() else {"tokens": []}
        entry = {"name": name, "scopes": sorted(scopes), "digest": _digest(token)}
        if verifier is not None:
            entry["verifier"] = verifier
        if agency is not None:
            entry["agency"] = agency
        if kiosk_operator is not None:
            entry["kiosk_operator"] = kiosk_operator
        data["tokens"].append(entry)
        tmp = self._path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1)
        tmp.replace(self._path)
        return token

    @staticmethod
    def validate(
        scopes: list[str], *, agency: str | None = None, kiosk_operator: str | None = None
    ) -> None:
        """ValueError unless :meth:`create` would accept these scopes and this binding."""
        unknown = set(scopes) - set(SCOPES)
        if unknown:
            raise ValueError(f"unknown scope(s): {', '.join(sorted(unknown))}")
        _check_binding(set(scopes), agency)
        _check_kiosk_binding(set(scopes), kiosk_operator)

    def check(self, token: str) -> Staff | None:
        self._load()
        digest = _digest(token)
        # A lookup by SHA-256 digest reveals nothing useful through timing: the digest of a
        # guessed token is unrelated to the digests stored.
        return self._by_digest.get(digest)


def _check_binding(scopes: set[str], agency: str | None) -> None:
    bound = scopes & AGENCY_SCOPES
    if agency is None:
        if bound and "agency:admin" not in scopes:
            raise ValueError(
                f"a token with {', '.join(sorted(bound))} acts for one agency: name it "
                "(--agency), or grant the platform-wide agency:admin instead"
            )
        return
    if not re.fullmatch(AGENCY_ID, agency):
        raise ValueError(f"not an agency id: {agency!r}")
    if "agency:admin" in scopes:
        raise ValueError("an agency:admin token acts for every agency: it names no agency")
    if not bound:
        raise ValueError(f"--agency binds only a token with {', '.join(sorted(AGENCY_SCOPES))}")


KIOSK_OPERATOR = r"^[A-Za-z0-9][A-Za-z0-9_]{1,15}$"
"""A kiosk operator's name: the first part of its kiosks' ids (no hyphen: ``seven-0001``)."""


def _check_kiosk_binding(scopes: set[str], operator: str | None) -> None:
    if operator is None:
        if "kiosk:issue" in scopes and "jlis:admin" not in scopes:
            raise ValueError(
                "a kiosk:issue token speaks for one kiosk operator's kiosks: name it "
                "(--kiosk-operator)"
            )
        return
    if not re.fullmatch(KIOSK_OPERATOR, operator):
        raise ValueError(f"not a kiosk operator name (2–16 letters, digits, _): {operator!r}")
    if "kiosk:issue" not in scopes:
        raise ValueError("--kiosk-operator binds only a token with kiosk:issue")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
