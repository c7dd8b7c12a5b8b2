"""Staff bearer tokens with role scopes. Tokens are stored only as SHA-256 digests."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SCOPES", "Staff", "TokenStore"]

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
    "agency:link": "enrol an agency's members with five-item verification; review and decide links",
    "jlis:four-items": "receive the latest four basic items with the holder's consent (registered signature verifiers)",
}


@dataclass(frozen=True, slots=True)
class Staff:
    name: str
    scopes: frozenset[str]
    verifier: str | None = None
    """The registered verifier (mynumber.jlis.verifiers) this token belongs to, if any."""


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
            t["digest"]: Staff(t["name"], frozenset(t["scopes"]), t.get("verifier"))
            for t in data.get("tokens", [])
        }
        self._mtime = mtime

    def create(self, name: str, scopes: list[str], *, verifier: str | None = None) -> str:
        unknown = set(scopes) - set(SCOPES)
        if unknown:
            raise ValueError(f"unknown scope(s): {', '.join(sorted(unknown))}")
        token = "mnt_" + secrets.token_urlsafe(32)
        data = json.loads(self._path.read_text()) if self._path.exists() else {"tokens": []}
        entry = {"name": name, "scopes": sorted(scopes), "digest": _digest(token)}
        if verifier is not None:
            entry["verifier"] = verifier
        data["tokens"].append(entry)
        tmp = self._path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1)
        tmp.replace(self._path)
        return token

    def check(self, token: str) -> Staff | None:
        self._load()
        digest = _digest(token)
        # A lookup by SHA-256 digest reveals nothing useful through timing: the digest of a
        # guessed token is unrelated to the digests stored.
        return self._by_digest.get(digest)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
