"""The municipality's PAdES signature on a document (pyHanko), and the check of it.

The signer is the municipality's document-signing key with its LGPKI certificate (issued by
J-LIS's organisation CA, :mod:`mynumber.jlis.lgpki`); the certificate chain is embedded in the
signature, so a verifier needs only the LGPKI root and a current CRL. A PAdES B-B signature
(ETSI.CAdES.detached) covers the whole file — the attached content JSON included.

Costs (DESIGN, known costs): pyHanko signs a small PDF at ≈ 46/s with P-256 when it estimates
the signature's size by signing twice; reserving the space up front (``bytes_reserved``) signs
once, ≈ 84/s. The reservation is generous for a three-certificate chain; pyHanko refuses (and
nothing is issued) if it were ever too small."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import io
import logging
from collections.abc import Sequence

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

__all__ = ["DocumentSigner", "SignatureCheck", "SignatureStatus", "check_signature"]

# pyHanko logs a refused certificate (revoked, untrusted) with a traceback: for us it is an
# answer, reported in the result, never a trace printed to the person checking a document.
for _name in ("pyhanko", "pyhanko_certvalidator"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)

_RESERVED = 12288
_FIELD = "MunicipalSignature"


def _asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


class DocumentSigner:
    """Signs PDFs as one municipality. Holds the key in memory; thread-safe (pyHanko's signer
    keeps no per-document state)."""

    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
        certificate: x509.Certificate,
        chain: Sequence[x509.Certificate],
    ) -> None:
        self.certificate = certificate
        pkcs8 = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._signer = signers.SimpleSigner(
            _asn1(certificate),
            asn1_keys.PrivateKeyInfo.load(pkcs8),
            SimpleCertificateStore.from_certs([_asn1(c) for c in chain]),  # type: ignore[no-untyped-call]
        )
        del pkcs8
        self._meta = signers.PdfSignatureMetadata(
            field_name=_FIELD,
            subfilter=fields.SigSeedSubFilter.PADES,
            md_algorithm="sha256",
            reason="住民基本台帳・印鑑登録の証明 / certified by the municipality",
        )

    def sign(self, pdf: bytes) -> bytes:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
        out = signers.sign_pdf(writer, self._meta, signer=self._signer, bytes_reserved=_RESERVED)
        return bytes(out.getvalue())


class SignatureStatus(enum.StrEnum):
    valid = "valid"
    unsigned = "unsigned"  # no signature, or not one PAdES signature over the whole file
    broken = "broken"  # the bytes were changed after signing, or the signature is malformed
    untrusted = "untrusted"  # does not chain to the LGPKI root
    revoked = "revoked"  # the signer's certificate is revoked (per the CRL)
    unreadable = "unreadable"  # not a PDF


@dataclasses.dataclass(frozen=True, slots=True)
class SignatureCheck:
    status: SignatureStatus
    signer: str | None = None  # the signer certificate's subject
    signer_serial: str | None = None
    signed_at: str | None = None
    detail: str | None = None


def check_signature(
    pdf: bytes,
    trust_roots: Sequence[x509.Certificate],
    crls: Sequence[bytes],
    at: dt.datetime,
) -> tuple[SignatureCheck, PdfFileReader | None]:
    """Check the one signature of `pdf` against `trust_roots` with revocation from `crls`
    (hard fail: no CRL covering the signer means not valid). Also returns the reader, so the
    caller can read the signed content from the same parse."""
    # The file is anyone's: whatever the PDF parser raises on it means "not a readable PDF"
    # (or "a broken signature" below), never an error of ours.
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        sigs = reader.embedded_signatures
    except Exception as exc:  # anyone's file: see above
        return SignatureCheck(SignatureStatus.unreadable, detail=type(exc).__name__), None
    if len(sigs) != 1:
        return SignatureCheck(SignatureStatus.unsigned, detail=f"{len(sigs)} signatures"), reader
    sig = sigs[0]
    context = ValidationContext(
        trust_roots=[_asn1(c) for c in trust_roots],
        crls=list(crls),
        revocation_mode="hard-fail",
        moment=at,
    )
    try:
        status = validate_pdf_signature(sig, context)
    except (SignatureValidationError, PdfError) as exc:
        return SignatureCheck(SignatureStatus.broken, detail=type(exc).__name__), reader
    except Exception as exc:  # (a malformed signature dictionary or CMS blob)
        return SignatureCheck(SignatureStatus.broken, detail=type(exc).__name__), reader
    cert = status.signing_cert
    who = {
        "signer": cert.subject.human_friendly,
        "signer_serial": f"{cert.serial_number:X}",
        "signed_at": None
        if status.signer_reported_dt is None
        else status.signer_reported_dt.isoformat(),
    }
    if not (status.intact and status.valid):
        return SignatureCheck(SignatureStatus.broken, **who), reader
    if status.coverage is not SignatureCoverageLevel.ENTIRE_FILE:
        return SignatureCheck(SignatureStatus.broken, detail="changed after signing", **who), reader
    if status.revoked:
        return SignatureCheck(SignatureStatus.revoked, **who), reader
    if not status.trusted:
        return SignatureCheck(SignatureStatus.untrusted, **who), reader
    return SignatureCheck(SignatureStatus.valid, **who), reader
