"""Certificate status for relying parties: an RFC 6960 OCSP client, and the in-process source.

:class:`OcspClient` is what a registered verifier (署名検証者 / 利用者証明検証者) runs: it builds
a single-certificate request with a fresh nonce (RFC 8954), POSTs it to J-LIS's responder with
the verifier's bearer token, and accepts the answer only after :func:`check_response`:

- the response is successful (``unauthorized`` → ``ocsp.unauthorised``; any other error status,
  a transport error, a timeout or an HTTP error → ``ocsp.unavailable``);
- it answers for this certificate and this issuer, and echoes our nonce (``ocsp.mismatch``);
- it is signed by the issuing CA itself, or by a delegated responder whose certificate that CA
  issued directly, with extendedKeyUsage OCSPSigning, valid now (``ocsp.bad_signature``);
- thisUpdate is not ahead of us by more than :data:`CLOCK_SKEW` and nextUpdate has not passed
  (a response without nextUpdate must be younger than `max_age`) (``ocsp.stale``).

Timeouts are explicit (:data:`DEFAULT_TIMEOUT`): a verifier must never hang on J-LIS.

:class:`LocalStatusSource` serves the platform's own services (login, 基本4情報提供) in the
J-LIS process: it asks the certificate table directly, so there is nothing to sign or check.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from mynumber.jlis.ocsp import CertStatus, OcspStatus, issuer_hashes
from mynumber.relying.errors import relying_error
from mynumber.relying.verify import key_signed

__all__ = [
    "CLOCK_SKEW",
    "DEFAULT_TIMEOUT",
    "MAX_RESPONSE_BYTES",
    "LocalStatusSource",
    "OcspClient",
    "build_request",
    "check_response",
    "ocsp_url_of",
]

DEFAULT_TIMEOUT = httpx.Timeout(5.0, connect=3.0)
"""Seconds: 3 to connect, 5 for each read, write and pool wait."""
CLOCK_SKEW = dt.timedelta(minutes=5)
"""How far ahead of the verifier's clock a response's thisUpdate may be."""
DEFAULT_MAX_AGE = dt.timedelta(hours=1)
"""The oldest response without a nextUpdate that is still accepted."""
MAX_RESPONSE_BYTES = 64 * 1024
NONCE_BYTES = 16
OCSP_REQUEST_MEDIA = "application/ocsp-request"


def build_request(
    certificate: x509.Certificate, issuer: x509.Certificate, nonce: bytes | None
) -> bytes:
    """The DER OCSP request for `certificate` (SHA-256 CertID), with `nonce` when given."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA256())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def ocsp_url_of(certificate: x509.Certificate) -> str | None:
    """The OCSP responder URL the certificate names (authorityInfoAccess), if any."""
    try:
        aia = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    except (x509.ExtensionNotFound, ValueError):
        return None
    for access in aia.value:
        if access.access_method == AuthorityInformationAccessOID.OCSP and isinstance(
            access.access_location, x509.UniformResourceIdentifier
        ):
            return access.access_location.value
    return None


def _signed_by(key: object, response: ocsp.OCSPResponse) -> bool:
    algorithm = response.signature_hash_algorithm
    if algorithm is None:
        return False
    return key_signed(key, response.signature, response.tbs_response_bytes, algorithm)


def _names_responder(response: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    if response.responder_name is not None:
        return response.responder_name == cert.subject
    return response.responder_key_hash == issuer_hashes(cert, "sha1")[1]


def _delegated_signer_fits(
    signer: x509.Certificate, issuer: x509.Certificate, at: dt.datetime
) -> bool:
    try:
        signer.verify_directly_issued_by(issuer)
        eku = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (InvalidSignature, ValueError, TypeError, x509.ExtensionNotFound):
        return False
    return (
        ExtendedKeyUsageOID.OCSP_SIGNING in eku
        and signer.not_valid_before_utc <= at <= signer.not_valid_after_utc
    )


def _check_signer(response: ocsp.OCSPResponse, issuer: x509.Certificate, at: dt.datetime) -> None:
    if _names_responder(response, issuer):
        if _signed_by(issuer.public_key(), response):
            return
        raise relying_error("ocsp.bad_signature")
    for signer in response.certificates:
        if (
            _names_responder(response, signer)
            and _delegated_signer_fits(signer, issuer, at)
            and _signed_by(signer.public_key(), response)
        ):
            return
    raise relying_error("ocsp.bad_signature")


def check_response(
    der: bytes,
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    at: dt.datetime,
    *,
    nonce: bytes | None,
    max_age: dt.timedelta = DEFAULT_MAX_AGE,
) -> CertStatus:
    """What an OCSP response says about `certificate`, once it is proved authentic, on topic
    and fresh at `at` (module docstring); raises a ``RelyingError`` (``ocsp.*``) otherwise."""
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError:
        raise relying_error("ocsp.mismatch") from None
    if response.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED:
        raise relying_error("ocsp.unauthorised")
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise relying_error(
            "ocsp.unavailable", extra={"ocsp_status": response.response_status.name.lower()}
        )
    try:
        algorithm = response.hash_algorithm.name
        asked = issuer_hashes(issuer, algorithm)
        answered = (response.issuer_name_hash, response.issuer_key_hash)
        serial = response.serial_number
        this_update = response.this_update_utc
        next_update = response.next_update_utc
        cert_status = response.certificate_status
    except (ValueError, KeyError, UnsupportedAlgorithm):  # several answers, an odd hash
        raise relying_error("ocsp.mismatch") from None
    if serial != certificate.serial_number or answered != asked:
        raise relying_error("ocsp.mismatch")
    _check_signer(response, issuer, at)
    if nonce is not None:
        try:
            echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except (x509.ExtensionNotFound, ValueError):
            echoed = None
        if echoed != nonce:
            raise relying_error("ocsp.mismatch")
    if this_update > at + CLOCK_SKEW:
        raise relying_error("ocsp.stale", extra={"this_update": this_update.isoformat()})
    if (next_update is not None and at > next_update) or (
        next_update is None and at - this_update > max_age
    ):
        raise relying_error(
            "ocsp.stale",
            extra={"next_update": None if next_update is None else next_update.isoformat()},
        )
    if cert_status is ocsp.OCSPCertStatus.GOOD:
        return CertStatus.good()
    if cert_status is ocsp.OCSPCertStatus.UNKNOWN:
        return CertStatus.unknown()
    revoked_at = response.revocation_time_utc
    if revoked_at is None:
        raise relying_error("ocsp.mismatch")
    return CertStatus(
        OcspStatus.REVOKED, revoked_at, response.revocation_reason or x509.ReasonFlags.unspecified
    )


class OcspClient:
    """A :class:`~mynumber.relying.verify.StatusSource` over HTTP: J-LIS's OCSP responder.

    `url` defaults to the one the certificate names; `token` is the verifier's bearer token
    (``mynumber verifier register``). Pass an ``httpx.Client`` to share connections, or let
    the client make one per request with :data:`DEFAULT_TIMEOUT`.
    """

    def __init__(
        self,
        token: str,
        url: str | None = None,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        client: httpx.Client | None = None,
        use_nonce: bool = True,
        max_age: dt.timedelta = DEFAULT_MAX_AGE,
        trust_env: bool = True,
    ) -> None:
        self._token = token
        self._url = url
        self._timeout = timeout
        self._client = client
        self._use_nonce = use_nonce
        self._max_age = max_age
        self._trust_env = trust_env

    def _post(self, url: str, body: bytes) -> tuple[int, bytes | None]:
        """(HTTP status, body), the body None when it exceeds :data:`MAX_RESPONSE_BYTES`: it
        is read in chunks and abandoned there, so a hostile responder cannot fill memory."""
        headers = {
            "Content-Type": OCSP_REQUEST_MEDIA,
            "Accept": "application/ocsp-response",
            "Authorization": f"Bearer {self._token}",
        }
        if self._client is not None:
            return _bounded(self._client, url, body, headers, self._timeout)
        with httpx.Client(timeout=self._timeout, trust_env=self._trust_env) as client:
            return _bounded(client, url, body, headers, self._timeout)

    def check(
        self, certificate: x509.Certificate, issuer: x509.Certificate, at: dt.datetime
    ) -> CertStatus:
        url = self._url or ocsp_url_of(certificate)
        if url is None:
            raise relying_error("ocsp.unavailable", extra={"reason": "no responder URL"})
        nonce = secrets.token_bytes(NONCE_BYTES) if self._use_nonce else None
        try:
            status, content = self._post(url, build_request(certificate, issuer, nonce))
        except httpx.HTTPError as exc:
            raise relying_error("ocsp.unavailable", extra={"reason": type(exc).__name__}) from None
        if status in (401, 403):
            raise relying_error("ocsp.unauthorised", extra={"http_status": status})
        if status != 200 or content is None:
            raise relying_error("ocsp.unavailable", extra={"http_status": status})
        return check_response(content, certificate, issuer, at, nonce=nonce, max_age=self._max_age)


def _bounded(
    client: httpx.Client,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout: httpx.Timeout,
) -> tuple[int, bytes | None]:
    with client.stream("POST", url, content=body, headers=headers, timeout=timeout) as reply:
        if reply.status_code != 200:
            return reply.status_code, b""
        content = bytearray()
        for chunk in reply.iter_bytes():
            content += chunk
            if len(content) > MAX_RESPONSE_BYTES:
                return reply.status_code, None
        return reply.status_code, bytes(content)


class LocalStatusSource:
    """The platform's own status source: `lookup` is :meth:`PkiService.status` (serial →
    :class:`CertStatus`), read from the certificate table in the J-LIS process."""

    def __init__(self, lookup: Callable[[int], CertStatus]) -> None:
        self._lookup = lookup

    def check(
        self, certificate: x509.Certificate, issuer: x509.Certificate, at: dt.datetime
    ) -> CertStatus:
        return self._lookup(certificate.serial_number)
