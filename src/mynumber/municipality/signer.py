"""The municipality's document-signing key and its LGPKI certificate.

One P-256 key per municipality (pyHanko signs with it ≈ 6× faster than RSA-2048; DESIGN's
known costs), created on first use, kept as encrypted PKCS#8 under a passphrase from the
keystore (never in clear on disk), with the certificate J-LIS's LGPKI issued for it. Server
workers starting together create one key under a file lock. The subject-digest key (HMAC) is
a keystore secret of the municipality's own.

The loaded signer is immutable and kept per process; a request never writes to it (I1)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from mynumber.documents.signing import DocumentSigner
from mynumber.keystore import Keystore, file_lock

__all__ = ["Enrol", "SignerStore"]

Enrol = Callable[[str, CertificatePublicKeyTypes], tuple[x509.Certificate, list[x509.Certificate]]]
"""(municipality code, public key) → its organisation certificate and the CA chain."""


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    tmp.replace(path)


class SignerStore:
    def __init__(self, directory: Path, keystore: Keystore, enrol: Enrol) -> None:
        self._directory = directory
        self._keystore = keystore
        self._enrol = enrol
        self._loaded: dict[str, tuple[DocumentSigner, bytes]] = {}
        self._lock = threading.Lock()

    def __call__(self, municipality_code: str) -> tuple[DocumentSigner, bytes]:
        """The municipality's signer and subject-digest key (created and enrolled once)."""
        with self._lock:
            found = self._loaded.get(municipality_code)
            if found is None:
                found = self._open(municipality_code)
                self._loaded[municipality_code] = found
            return found

    def forget(self) -> None:
        """Drop loaded signers (after a certificate is replaced)."""
        with self._lock:
            self._loaded.clear()

    def _passphrase(self, code: str) -> bytes:
        return self._keystore.secret(f"municipality-doc-signer-{code}").hex().encode("ascii")

    def _open(self, code: str) -> tuple[DocumentSigner, bytes]:
        d = self._directory
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        key_file, cert_file, chain_file = (
            d / f"{code}-key.pem",
            d / f"{code}-cert.pem",
            d / f"{code}-chain.pem",
        )
        with file_lock(d / ".lock"):
            if not cert_file.exists():
                key = ec.generate_private_key(ec.SECP256R1())
                cert, chain = self._enrol(code, key.public_key())
                _write(
                    key_file,
                    key.private_bytes(
                        serialization.Encoding.PEM,
                        serialization.PrivateFormat.PKCS8,
                        serialization.BestAvailableEncryption(self._passphrase(code)),
                    ),
                    0o600,
                )
                _write(chain_file, _pem(chain), 0o644)
                _write(cert_file, _pem([cert]), 0o644)
            loaded = serialization.load_pem_private_key(
                key_file.read_bytes(), self._passphrase(code)
            )
            cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
            chain = x509.load_pem_x509_certificates(chain_file.read_bytes())
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise TypeError("the document-signing key is not an EC key")
        subject_key = self._keystore.secret(f"municipality-subject-{code}")
        return DocumentSigner(loaded, cert, chain), subject_key


def _pem(certs: Sequence[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
