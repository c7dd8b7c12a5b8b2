"""The relying party's SDK (銀行・医療機関・事業者の検証者): verify JPKI signatures, certificates
and logins, with revocation over OCSP — plain Python, no platform storage needed.

- :mod:`mynumber.relying.verify` — :func:`verify_signature` / :func:`verify_certificate`, the
  :class:`Trust` anchors and the :class:`StatusSource` protocol;
- :mod:`mynumber.relying.ocsp_client` — :class:`OcspClient` (RFC 6960 over HTTP, for a
  registered verifier) and :class:`LocalStatusSource` (in the J-LIS process);
- :mod:`mynumber.relying.login` — :class:`LoginVerifier`: single-use challenges, in memory or SQL;
- :mod:`mynumber.relying.consent` — the holder's consent to 基本4情報提供;
- :mod:`mynumber.relying.errors` — :class:`RelyingError` (codes ``relying.*``, ``ocsp.*``,
  ``login.*``).
"""

from __future__ import annotations

from mynumber.relying.consent import FourItemsConsent
from mynumber.relying.errors import RelyingError
from mynumber.relying.login import (
    Challenge,
    LoginResult,
    LoginVerifier,
    MemoryChallengeStore,
    SqlChallengeStore,
    challenge_table,
)
from mynumber.relying.ocsp_client import LocalStatusSource, OcspClient, check_response
from mynumber.relying.verify import (
    SignatureVerification,
    StatusSource,
    Trust,
    verify_certificate,
    verify_signature,
)

__all__ = [
    "Challenge",
    "FourItemsConsent",
    "LocalStatusSource",
    "LoginResult",
    "LoginVerifier",
    "MemoryChallengeStore",
    "OcspClient",
    "RelyingError",
    "SignatureVerification",
    "SqlChallengeStore",
    "StatusSource",
    "Trust",
    "challenge_table",
    "check_response",
    "verify_certificate",
    "verify_signature",
]
