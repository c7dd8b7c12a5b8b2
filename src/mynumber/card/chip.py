"""The card role's IC chip (or smartphone secure element): JPKI keys that never leave it (I7).

A :class:`Chip` generates its two RSA-2048 key pairs itself — the signature key (署名用) and
the user-authentication key (利用者証明用) — and no method or attribute returns a private key:
it hands out public keys, PKCS#10 certificate requests and signatures, and it serialises only
into the AES-GCM envelope of :mod:`mynumber.card.envelope` (pickling and copying are refused).
This is a software model of a secure element: the boundary is this API, not the process — a
debugger or ``gc`` can reach anything in a Python process, which is why production puts the
keys on a real card or behind PKCS#11.

Signatures are RSASSA-PKCS1-v1_5 with SHA-256 over the data given (``sign``) or over the
challenge (``authenticate``), as JPKI's cards produce them; verify with
``public_key.verify(signature, data, PKCS1v15(), SHA256())``.

Rules of use:

- every signature needs the right PIN of that key, and a certificate installed for that key
  and valid now (the chip's clock); a missing or out-of-date certificate is reported before the
  PIN is tried, so it costs no try;
- a certificate request is made only while the key has no certificate (issuance); it needs no
  PIN, as at the issuing counter, and can only ever certify the chip's own key. A new
  certificate after that means a new key (as JPKI does on renewal and after revocation);
- a try counts as wrong until it is proved right: the counter is raised and persisted *before*
  the PIN is compared, and reset (and persisted) only after, as smart cards do, so cutting
  power (killing the process) mid-try never saves a try;
- a well-formed PIN is needed to try at all (`card.pin_format` costs no try); a locked PIN
  compares nothing, not even the right PIN, until the municipality counter resets it with a
  :class:`~mynumber.card.pins.CounterAuthorisation` (:meth:`Chip.unlock`).

At rest the private keys are raw PKCS#8 DER inside the AES-GCM envelope (not PKCS#8 with
BestAvailableEncryption): the envelope key comes from the keystore, and a second password
derived from the same keystore would add cost (a KDF per load) without adding a secret.
Loading skips OpenSSL's RSA key consistency check (≈40 ms per key): the keys were checked when
generated, and the envelope authenticates every byte since.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, SupportsIndex

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from mynumber.card import envelope
from mynumber.card.errors import (
    AlreadyCertifiedError,
    CertificateMismatchError,
    CertificateValidityError,
    ChipIdError,
    CsrSubjectError,
    FileTamperedError,
    NoCertificateError,
    NoFaceDataError,
    NonceError,
    PinLockedError,
    PinWrongError,
)
from mynumber.card.kinds import KeyKind
from mynumber.card.pins import (
    PinKdf,
    PinRecord,
    check_counter_authorisation,
    check_new_pin,
    check_pin_format,
)
from mynumber.clock import Clock
from mynumber.errors import ValidationError
from mynumber.keystore import Keystore

__all__ = ["KEY_BITS", "NONCE_BYTES", "SIGNATURE_SCHEME", "CardFace", "Chip", "check_chip_id"]

KEY_BITS = 2048
SIGNATURE_SCHEME = "RSASSA-PKCS1-v1_5 with SHA-256"
NONCE_BYTES = (16, 1024)
"""Lengths an authentication challenge may have: at least 128 bits, so that a verifier's
challenge cannot be guessed ahead, and at most 1 KiB. (Like a real card's, the authentication
key signs whatever it is given after its PIN: :meth:`Chip.sign` with that kind.)"""

_FORMAT = 1
_CHIP_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_chip_id(chip_id: object) -> str:
    """`chip_id` if it is 1–64 ASCII letters, digits, '-' and '_' (safe as a file name)."""
    if not isinstance(chip_id, str) or not _CHIP_ID.fullmatch(chip_id):
        raise ChipIdError()
    return chip_id


def _generate_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def _spki(key: CertificatePublicKeyTypes) -> bytes:
    der: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


@dataclass(frozen=True, slots=True, repr=False)
class CardFace:
    """What the card face shows (and the chip's 券面事項 application holds).

    `name` is the name as on the face (kanji); `name_kana` is optional (the current face has no
    reading). `sex` is ISO/IEC 5218 (1 male, 2 female). The repr hides the personal data so it
    cannot reach a log by accident.
    """

    name: str
    address: str
    birth_date: dt.date
    sex: int
    expiry_date: dt.date
    name_kana: str | None = None

    def __post_init__(self) -> None:
        for field_name in ("name", "address"):
            value = getattr(self, field_name)
            if not isinstance(value, str) or not value.strip():
                raise ValidationError(
                    "field.required",
                    f"The card face needs the holder's {field_name}.",
                    "券面事項には氏名と住所が必要です。",
                    field=field_name,
                )
        if self.sex not in (1, 2):
            raise ValidationError(
                "sex.invalid",
                "Sex is 1 (male) or 2 (female).",
                "性別は1（男）または2（女）です。",
                field="sex",
            )
        if self.expiry_date <= self.birth_date:
            raise ValueError("a card expires after its holder's birth date")

    def __repr__(self) -> str:
        return "CardFace(<personal data hidden>)"

    def _to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "name_kana": self.name_kana,
            "address": self.address,
            "birth_date": self.birth_date.isoformat(),
            "sex": self.sex,
            "expiry_date": self.expiry_date.isoformat(),
        }

    @classmethod
    def _from_json(cls, data: Mapping[str, Any]) -> CardFace:
        return cls(
            name=data["name"],
            name_kana=data["name_kana"],
            address=data["address"],
            birth_date=dt.date.fromisoformat(data["birth_date"]),
            sex=data["sex"],
            expiry_date=dt.date.fromisoformat(data["expiry_date"]),
        )


class _KeySlots:
    """The secure element: sole holder of the two private keys.

    It signs, makes certificate requests and seals itself into the envelope; nothing returns a
    key or its bytes, and its PKCS#8 form exists only inside :meth:`seal` and :meth:`unseal`.
    """

    __slots__ = ("_keys",)

    def __init__(self, keys: Mapping[KeyKind, rsa.RSAPrivateKey]) -> None:
        self._keys = dict(keys)

    @classmethod
    def generate(cls) -> _KeySlots:
        return cls({kind: _generate_key() for kind in KeyKind})

    def public_key(self, kind: KeyKind) -> rsa.RSAPublicKey:
        return self._keys[kind].public_key()

    def regenerate(self, kind: KeyKind) -> None:
        """Replace the `kind` key with a fresh one; the old key is gone for good."""
        self._keys[kind] = _generate_key()

    def sign(self, kind: KeyKind, data: bytes) -> bytes:
        return self._keys[kind].sign(data, padding.PKCS1v15(), hashes.SHA256())

    def certificate_request(
        self, kind: KeyKind, subject: x509.Name
    ) -> x509.CertificateSigningRequest:
        builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
        return builder.sign(self._keys[kind], hashes.SHA256())

    def seal(self, keystore: Keystore, chip_id: str, state: dict[str, Any]) -> bytes:
        """`state` plus the keys, as one AES-GCM envelope."""
        keys = {
            str(kind): _b64(
                key.private_bytes(
                    serialization.Encoding.DER,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            for kind, key in self._keys.items()
        }
        plaintext = json.dumps({**state, "keys": keys}, ensure_ascii=False).encode()
        return envelope.seal(keystore, chip_id, plaintext)

    @classmethod
    def unseal(
        cls, keystore: Keystore, chip_id: str, blob: bytes
    ) -> tuple[_KeySlots, dict[str, Any]]:
        state: dict[str, Any] = json.loads(envelope.open_sealed(keystore, chip_id, blob))
        keys: dict[KeyKind, rsa.RSAPrivateKey] = {}
        for kind in KeyKind:
            key = serialization.load_der_private_key(
                _unb64(state["keys"][str(kind)]), None, unsafe_skip_rsa_key_validation=True
            )
            if not isinstance(key, rsa.RSAPrivateKey):
                raise FileTamperedError()
            keys[kind] = key
        del state["keys"]
        return cls(keys), state

    def __repr__(self) -> str:
        return "<secure element: private keys not shown>"

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        raise TypeError("private keys are not serialisable; seal the chip with ChipStore")


class Chip:
    """One My Number card chip, or the smartphone form (スマホ用電子証明書).

    Make one with :meth:`create` (or :meth:`mynumber.card.store.ChipStore.load`), not with the
    constructor. Operations on one chip object are serialised by a lock. A chip bound to a
    store (see :meth:`set_persistence`) writes every change — PIN tries included — before the
    operation returns.
    """

    def __init__(
        self,
        *,
        chip_id: str,
        keys: _KeySlots,
        pins: Mapping[KeyKind, PinRecord],
        certificates: Mapping[KeyKind, x509.Certificate],
        face: CardFace | None,
        birth_date: dt.date,
        is_smartphone: bool,
        created_at: dt.datetime,
        kdf: PinKdf,
        clock: Clock,
    ) -> None:
        if not isinstance(keys, _KeySlots):
            raise TypeError("a chip generates its own keys: use Chip.create")
        self._chip_id = check_chip_id(chip_id)
        self._keys = keys
        self._pins = dict(pins)
        self._certificates = dict(certificates)
        self._face = face
        self._birth_date = birth_date
        self._is_smartphone = is_smartphone
        self._created_at = created_at
        self._kdf = kdf
        self._clock = clock
        self._lock = threading.RLock()
        self._persist: Callable[[Chip], None] | None = None

    # --- making a chip ----------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        chip_id: str,
        *,
        auth_pin: str,
        signature_pin: str,
        clock: Clock,
        face: CardFace | None = None,
        birth_date: dt.date | None = None,
        is_smartphone: bool = False,
        kdf: PinKdf | None = None,
    ) -> Chip:
        """A new chip with fresh key pairs and the holder's two PINs (checked before any key
        is generated).

        A card needs its `face` (the birth date is taken from it); the smartphone form has no
        face and needs `birth_date`, which is kept only to refuse guessable PINs.
        """
        check_chip_id(chip_id)
        if is_smartphone:
            if face is not None:
                raise ValueError("the smartphone form holds no card-face data")
            if birth_date is None:
                raise ValueError("the smartphone form needs the holder's birth date")
        else:
            if face is None:
                raise ValueError("a card needs its face data")
            if birth_date is not None and birth_date != face.birth_date:
                raise ValueError("birth_date differs from the face's birth date")
            birth_date = face.birth_date
        assert birth_date is not None
        kdf = kdf or PinKdf()
        pins = {
            KeyKind.AUTHENTICATION: check_new_pin(KeyKind.AUTHENTICATION, auth_pin, birth_date),
            KeyKind.SIGNATURE: check_new_pin(KeyKind.SIGNATURE, signature_pin, birth_date),
        }
        return cls(
            chip_id=chip_id,
            keys=_KeySlots.generate(),
            pins={kind: PinRecord.new(kind, pin, kdf) for kind, pin in pins.items()},
            certificates={},
            face=face,
            birth_date=birth_date,
            is_smartphone=is_smartphone,
            created_at=clock.now(),
            kdf=kdf,
            clock=clock,
        )

    # --- what anyone may read ---------------------------------------------------------------

    @property
    def chip_id(self) -> str:
        return self._chip_id

    @property
    def is_smartphone(self) -> bool:
        return self._is_smartphone

    @property
    def created_at(self) -> dt.datetime:
        return self._created_at

    @property
    def face(self) -> CardFace:
        """The card-face data; the smartphone form has none (`card.no_face_data`)."""
        if self._face is None:
            raise NoFaceDataError()
        return self._face

    def public_key(self, kind: KeyKind | str) -> rsa.RSAPublicKey:
        return self._keys.public_key(KeyKind(kind))

    def certificate(self, kind: KeyKind | str) -> x509.Certificate:
        """The certificate installed for the `kind` key (`card.no_certificate` if none)."""
        kind = KeyKind(kind)
        cert = self._certificates.get(kind)
        if cert is None:
            raise NoCertificateError(kind)
        return cert

    def has_certificate(self, kind: KeyKind | str) -> bool:
        return KeyKind(kind) in self._certificates

    def remaining_tries(self, kind: KeyKind | str) -> int:
        """Wrong PINs the `kind` PIN can still take before it locks (0 when locked)."""
        return self._pins[KeyKind(kind)].remaining

    def is_locked(self, kind: KeyKind | str) -> bool:
        return self._pins[KeyKind(kind)].locked

    def locked_at(self, kind: KeyKind | str) -> dt.datetime | None:
        """When the `kind` PIN locked (chip clock), or None if it is not locked."""
        return self._pins[KeyKind(kind)].locked_at

    # --- issuance ---------------------------------------------------------------------------

    def certificate_request(
        self, kind: KeyKind | str, subject: x509.Name | None = None
    ) -> x509.CertificateSigningRequest:
        """A PKCS#10 request for the `kind` key, signed by it (proof of possession).

        The signature request may carry the holder's name as `subject`; the user-authentication
        request carries none (`card.csr_subject`), as that certificate holds no personal data.
        Only while the key has no certificate (`card.already_certified`).
        """
        kind = KeyKind(kind)
        with self._lock:
            if kind in self._certificates:
                raise AlreadyCertifiedError(kind)
            if kind is KeyKind.AUTHENTICATION and subject is not None and len(subject) > 0:
                raise CsrSubjectError()
            return self._keys.certificate_request(kind, subject or x509.Name([]))

    def install_certificate(self, kind: KeyKind | str, certificate: x509.Certificate) -> None:
        """Keep `certificate` for the `kind` key; refused (`card.certificate_mismatch`) unless
        it certifies exactly that key. Replaces an earlier certificate of the same key."""
        kind = KeyKind(kind)
        if not isinstance(certificate, x509.Certificate):
            raise TypeError("an x509.Certificate is expected")
        with self._lock:
            if _spki(certificate.public_key()) != _spki(self._keys.public_key(kind)):
                raise CertificateMismatchError(kind)
            self._certificates[kind] = certificate
            self._changed()

    # --- use --------------------------------------------------------------------------------

    def sign(self, kind: KeyKind | str, data: bytes, pin: str) -> bytes:
        """`data` signed with the `kind` key (RSASSA-PKCS1-v1_5, SHA-256), after its PIN."""
        kind = KeyKind(kind)
        if not isinstance(data, bytes):
            raise TypeError("data to sign must be bytes")
        with self._lock:
            self._check_certificate(kind)
            self._try_pin(kind, pin)
            return self._keys.sign(kind, data)

    def authenticate(self, nonce: bytes, pin: str) -> bytes:
        """The verifier's challenge `nonce` signed with the user-authentication key, after the
        4-digit PIN (JPKI 利用者証明). The verifier checks it against :meth:`certificate`."""
        if not isinstance(nonce, bytes):
            raise TypeError("the challenge must be bytes")
        if not NONCE_BYTES[0] <= len(nonce) <= NONCE_BYTES[1]:
            raise NonceError(*NONCE_BYTES)
        return self.sign(KeyKind.AUTHENTICATION, nonce, pin)

    def verify_pin(self, kind: KeyKind | str, pin: str) -> None:
        """Check the `kind` PIN alone (counted like any try); returns quietly when it is right."""
        with self._lock:
            self._try_pin(KeyKind(kind), pin)

    # --- PIN management ---------------------------------------------------------------------

    def change_pin(self, kind: KeyKind | str, old_pin: str, new_pin: str) -> None:
        """Replace the `kind` PIN, given the current one (a try like any other)."""
        kind = KeyKind(kind)
        with self._lock:
            new_pin = check_new_pin(kind, new_pin, self._birth_date)
            self._try_pin(kind, old_pin)
            self._pins[kind] = PinRecord.new(kind, new_pin, self._kdf)
            self._changed()

    def unlock(self, kind: KeyKind | str, counter_authorisation: object, new_pin: str) -> None:
        """Set a new `kind` PIN with its counter at 0, on a valid authorisation from a
        municipality counter (`card.unlock_unauthorised` otherwise); locked or not, as a holder
        who forgot the PIN also resets it there."""
        kind = KeyKind(kind)
        with self._lock:
            check_counter_authorisation(counter_authorisation, self._clock.now())
            new_pin = check_new_pin(kind, new_pin, self._birth_date)
            self._pins[kind] = PinRecord.new(kind, new_pin, self._kdf)
            self._changed()

    # --- changes at the municipality counter -------------------------------------------------

    def update_face(self, face: CardFace, counter_authorisation: object) -> None:
        """Write the card face anew (追記 after a move or a change of name), on a valid
        counter authorisation (`card.unlock_unauthorised` otherwise). The smartphone form has
        no face (`card.no_face_data`); the birth date never changes (ValueError)."""
        if not isinstance(face, CardFace):
            raise TypeError("a CardFace is expected")
        with self._lock:
            check_counter_authorisation(counter_authorisation, self._clock.now())
            if self._face is None:
                raise NoFaceDataError()
            if face.birth_date != self._birth_date:
                raise ValueError("the holder's birth date on the face cannot change")
            self._face = face
            self._changed()

    def renew_key(self, kind: KeyKind | str, counter_authorisation: object) -> None:
        """Generate a fresh `kind` key pair inside the chip and drop that key's certificate,
        on a valid counter authorisation: a new certificate needs a new key (after a change of
        the four items revoked the signature certificate, or at certificate renewal). The PIN
        and its counter stay as they are."""
        kind = KeyKind(kind)
        with self._lock:
            check_counter_authorisation(counter_authorisation, self._clock.now())
            self._keys.regenerate(kind)
            self._certificates.pop(kind, None)
            self._changed()

    # --- persistence ------------------------------------------------------------------------

    def set_persistence(self, callback: Callable[[Chip], None] | None) -> None:
        """Call `callback(chip)` after every change, before the operation answers. If it
        raises, the operation fails with its error (a counted try stays counted)."""
        self._persist = callback

    def seal(self, keystore: Keystore) -> bytes:
        """The whole chip as one AES-GCM envelope (see :mod:`mynumber.card.envelope`)."""
        with self._lock:
            state = {
                "format": _FORMAT,
                "chip_id": self._chip_id,
                "is_smartphone": self._is_smartphone,
                "created_at": self._created_at.isoformat(),
                "birth_date": self._birth_date.isoformat(),
                "face": None if self._face is None else self._face._to_json(),
                "kdf": _kdf_json(self._kdf),
                "pins": {str(kind): _pin_json(rec) for kind, rec in self._pins.items()},
                "certificates": {
                    str(kind): _b64(cert.public_bytes(serialization.Encoding.DER))
                    for kind, cert in self._certificates.items()
                },
            }
            return self._keys.seal(keystore, self._chip_id, state)

    @classmethod
    def unseal(cls, blob: bytes, *, chip_id: str, keystore: Keystore, clock: Clock) -> Chip:
        """The chip sealed in `blob` (`card.file_tampered` if it does not authenticate as
        `chip_id`'s)."""
        keys, state = _KeySlots.unseal(keystore, check_chip_id(chip_id), blob)
        if state.get("format") != _FORMAT or state.get("chip_id") != chip_id:
            raise FileTamperedError()
        return cls(
            chip_id=chip_id,
            keys=keys,
            pins={KeyKind(k): _pin_from_json(KeyKind(k), v) for k, v in state["pins"].items()},
            certificates={
                KeyKind(k): x509.load_der_x509_certificate(_unb64(v))
                for k, v in state["certificates"].items()
            },
            face=None if state["face"] is None else CardFace._from_json(state["face"]),
            birth_date=dt.date.fromisoformat(state["birth_date"]),
            is_smartphone=bool(state["is_smartphone"]),
            created_at=dt.datetime.fromisoformat(state["created_at"]),
            kdf=_kdf_from_json(state["kdf"]),
            clock=clock,
        )

    # --- inside -----------------------------------------------------------------------------

    def _changed(self) -> None:
        if self._persist is not None:
            self._persist(self)

    def _check_certificate(self, kind: KeyKind) -> None:
        cert = self.certificate(kind)
        now = self._clock.now()
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise CertificateValidityError(kind)

    def _try_pin(self, kind: KeyKind, pin: object) -> None:
        record = self._pins[kind]
        if record.locked:
            raise PinLockedError(kind)
        checked = check_pin_format(kind, pin)
        # Count first and persist, then compare: an interrupted try is a wrong try.
        self._pins[kind] = record.counted(self._clock.now())
        self._changed()
        if not record.matches(checked):
            raise PinWrongError(kind, self._pins[kind].remaining)
        self._pins[kind] = record.cleared()
        self._changed()

    def __repr__(self) -> str:
        form = "smartphone" if self._is_smartphone else "card"
        certs = ", ".join(sorted(self._certificates)) or "none"
        locked = ", ".join(sorted(k for k, r in self._pins.items() if r.locked)) or "none"
        return f"Chip(id={self._chip_id!r}, form={form}, certificates={certs}, locked={locked})"

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        raise TypeError("a chip is serialised only sealed (Chip.seal / ChipStore), never pickled")


def _kdf_json(kdf: PinKdf) -> dict[str, int]:
    return {"n": kdf.n, "r": kdf.r, "p": kdf.p}


def _kdf_from_json(data: Mapping[str, int]) -> PinKdf:
    return PinKdf(n=data["n"], r=data["r"], p=data["p"])


def _pin_json(record: PinRecord) -> dict[str, Any]:
    return {
        "salt": _b64(record.salt),
        "digest": _b64(record.digest),
        "kdf": _kdf_json(record.kdf),
        "wrong_tries": record.wrong_tries,
        "locked_at": None if record.locked_at is None else record.locked_at.isoformat(),
    }


def _pin_from_json(kind: KeyKind, data: Mapping[str, Any]) -> PinRecord:
    return PinRecord(
        kind=kind,
        salt=_unb64(data["salt"]),
        digest=_unb64(data["digest"]),
        kdf=_kdf_from_json(data["kdf"]),
        wrong_tries=int(data["wrong_tries"]),
        locked_at=None
        if data["locked_at"] is None
        else dt.datetime.fromisoformat(data["locked_at"]),
    )
