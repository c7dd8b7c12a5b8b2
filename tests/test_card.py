"""The card role's chip: keys that stay inside, PINs, lockout, counter reset, sealed storage (I7)."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import functools
import json
import os
import pickle
import re
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import mynumber.card.chip as chip_module
from mynumber.card import (
    MAX_TRIES,
    CardError,
    CardFace,
    Chip,
    ChipStore,
    CounterAuthorisation,
    KeyKind,
    PinKdf,
    envelope,
)
from mynumber.card.pins import (
    PinRecord,
    birth_date_forms,
    guessable_reason,
    is_well_formed,
)
from mynumber.clock import JST, FixedClock
from mynumber.errors import MynumberError
from mynumber.keystore import FileKeystore

SIG = KeyKind.SIGNATURE
AUTH = KeyKind.AUTHENTICATION
NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=JST)
BIRTH = dt.date(1984, 5, 30)  # 昭和59年
MUNI = "131041"  # 東京都新宿区
PINS = {AUTH: "2719", SIG: "K7QX9M"}
NEW_PINS = {AUTH: ("5830", "4061", "9274"), SIG: ("ZT4W8PL2", "M3NB7Q", "R8K2XW5J9Q")}
FAST = PinKdf(n=2**4, r=1, p=1)  # the production cost is tested once, in test_default_kdf
FACE = CardFace(
    name="山田 太郎",
    address="東京都新宿区西新宿二丁目8番1号",
    birth_date=BIRTH,
    sex=1,
    expiry_date=dt.date(2034, 5, 30),
)
CERT_NOT_AFTER = dt.datetime(2031, 5, 30, tzinfo=dt.UTC)

AUTH_RE = re.compile(r"[0-9]{4}")
SIG_RE = re.compile(r"(?=.*[A-Z])(?=.*[0-9])[A-Z0-9]{6,16}")


class DictKeystore:
    """The Keystore protocol in memory."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}

    def secret(self, name: str, size: int = 32) -> bytes:
        return self._keys.setdefault(name, os.urandom(size))


@dataclass
class CA:
    """A throwaway issuing CA (EC P-256 for speed; the chip does not care what signs its cert)."""

    key: ec.EllipticCurvePrivateKey
    name: x509.Name

    def issue(
        self,
        csr: x509.CertificateSigningRequest,
        not_before: dt.datetime = NOW - dt.timedelta(days=1),
        not_after: dt.datetime = CERT_NOT_AFTER,
    ) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.name)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .sign(self.key, hashes.SHA256())
        )


def _ca() -> CA:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test JPKI CA")])
    return CA(ec.generate_private_key(ec.SECP256R1()), name)


def _subject(name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])


@dataclass(frozen=True)
class Template:
    keystore: DictKeystore
    ca: CA
    blobs: dict[str, bytes]


def _certify(chip: Chip, ca: CA) -> None:
    chip.install_certificate(SIG, ca.issue(chip.certificate_request(SIG, _subject("山田 太郎"))))
    chip.install_certificate(AUTH, ca.issue(chip.certificate_request(AUTH)))


@functools.cache
def _template() -> Template:
    """Two certified chips (a card and the smartphone form), generated once for the module."""
    keystore, ca, clock = DictKeystore(), _ca(), FixedClock(NOW)
    card = Chip.create(
        "card", auth_pin=PINS[AUTH], signature_pin=PINS[SIG], clock=clock, face=FACE, kdf=FAST
    )
    phone = Chip.create(
        "phone",
        auth_pin=PINS[AUTH],
        signature_pin=PINS[SIG],
        clock=clock,
        birth_date=BIRTH,
        is_smartphone=True,
        kdf=FAST,
    )
    for chip in (card, phone):
        _certify(chip, ca)
    return Template(keystore, ca, {c.chip_id: c.seal(keystore) for c in (card, phone)})


@pytest.fixture(scope="module")
def template() -> Template:
    return _template()


@pytest.fixture
def store(tmp_path: Path, template: Template) -> ChipStore:
    s = ChipStore(tmp_path / "chips", template.keystore)
    for chip_id, blob in template.blobs.items():
        s.path(chip_id).write_bytes(blob)
    return s


@pytest.fixture
def card(store: ChipStore, clock: FixedClock) -> Chip:
    return store.load("card", clock)


@pytest.fixture
def phone(store: ChipStore, clock: FixedClock) -> Chip:
    return store.load("phone", clock)


def _authorisation(clock: FixedClock, **changes: Any) -> CounterAuthorisation:
    auth = CounterAuthorisation(MUNI, "staff-0042", "photo_id", clock.now())
    return replace(auth, **changes)


def _use(chip: Chip, kind: KeyKind, pin: str) -> None:
    """Sign with the `kind` key (authenticate for the user-authentication key) and verify."""
    if kind is AUTH:
        nonce = os.urandom(32)
        sig = chip.authenticate(nonce, pin)
        public = chip.certificate(AUTH).public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(sig, nonce, padding.PKCS1v15(), hashes.SHA256())
    else:
        sig = chip.sign(SIG, b"application", pin)
        chip.public_key(SIG).verify(sig, b"application", padding.PKCS1v15(), hashes.SHA256())


def _code(excinfo: pytest.ExceptionInfo[MynumberError]) -> str:
    return excinfo.value.code


# --- signatures -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KeyKind))
def test_signature_verifies_with_the_exported_public_key(card: Chip, kind: KeyKind) -> None:
    data = "請求書 No. 42".encode()
    signature = card.sign(kind, data, PINS[kind])
    public = card.public_key(kind)
    public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    assert public.key_size == 2048
    assert card.certificate(kind).public_key() == public
    with pytest.raises(InvalidSignature):
        public.verify(signature, data + b"!", padding.PKCS1v15(), hashes.SHA256())
    other = KeyKind.AUTHENTICATION if kind is SIG else SIG
    with pytest.raises(InvalidSignature):
        card.public_key(other).verify(signature, data, padding.PKCS1v15(), hashes.SHA256())


def test_authenticate_signs_the_challenge_with_the_authentication_key(card: Chip) -> None:
    nonce = os.urandom(32)
    signature = card.authenticate(nonce, PINS[AUTH])
    card.public_key(AUTH).verify(signature, nonce, padding.PKCS1v15(), hashes.SHA256())
    for bad in (b"", b"x" * 15, b"x" * 1025):
        with pytest.raises(CardError) as e:
            card.authenticate(bad, PINS[AUTH])
        assert _code(e) == "card.nonce_invalid"
    with pytest.raises(CardError) as e:
        card.authenticate(nonce, PINS[SIG])  # the signature PIN is not the authentication PIN
    assert _code(e) == "card.pin_format"
    assert card.remaining_tries(AUTH) == 3


def test_smartphone_form_signs_but_has_no_face_data(phone: Chip, card: Chip) -> None:
    assert phone.is_smartphone and not card.is_smartphone
    for kind in KeyKind:
        _use(phone, kind, PINS[kind])
    with pytest.raises(CardError) as e:
        _ = phone.face
    assert _code(e) == "card.no_face_data"
    assert e.value.status == 404 and "スマホ用電子証明書" in e.value.ja
    assert card.face == FACE
    assert "山田" not in repr(card.face) and "新宿" not in repr(card)


def test_card_and_smartphone_forms_are_made_consistently(clock: FixedClock) -> None:
    with pytest.raises(ValueError):
        Chip.create("x", auth_pin="2719", signature_pin="K7QX9M", clock=clock)  # no face
    with pytest.raises(ValueError):
        Chip.create(
            "x", auth_pin="2719", signature_pin="K7QX9M", clock=clock, face=FACE, is_smartphone=True
        )
    with pytest.raises(ValueError):
        Chip.create(
            "x", auth_pin="2719", signature_pin="K7QX9M", clock=clock, is_smartphone=True
        )  # no birth date
    with pytest.raises(MynumberError) as e:
        replace(FACE, sex=3)
    assert _code(e) == "sex.invalid"
    with pytest.raises(MynumberError) as e:
        replace(FACE, name=" ")
    assert _code(e) == "field.required"


# --- PIN counters ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KeyKind))
def test_wrong_pins_count_down_and_lock_at_exactly_the_limit(
    card: Chip, kind: KeyKind, clock: FixedClock
) -> None:
    limit = MAX_TRIES[kind]
    assert limit == {AUTH: 3, SIG: 5}[kind]
    wrong = {AUTH: "9999", SIG: "WRONG1"}[kind]
    for tried in range(1, limit + 1):
        assert not card.is_locked(kind)
        with pytest.raises(CardError) as e:
            card.sign(kind, b"data", wrong)
        assert _code(e) == "card.pin_wrong" and e.value.status == 401
        assert e.value.extra["remaining_tries"] == limit - tried
        assert e.value.extra["locked"] == (tried == limit)
        assert card.remaining_tries(kind) == limit - tried
    assert card.is_locked(kind) and card.locked_at(kind) == clock.now()
    assert "ロック" in e.value.ja and "counter" in e.value.en
    # Locked: even the right PIN is refused, and nothing more is counted.
    for pin in (PINS[kind], wrong):
        with pytest.raises(CardError) as e:
            card.sign(kind, b"data", pin)
        assert _code(e) == "card.pin_locked" and e.value.status == 403
    other = AUTH if kind is SIG else SIG
    _use(card, other, PINS[other])  # the other PIN is untouched


@pytest.mark.parametrize("kind", list(KeyKind))
def test_a_right_pin_resets_the_counter(card: Chip, kind: KeyKind) -> None:
    wrong = {AUTH: "0001", SIG: "WRONG2"}[kind]
    for _ in range(MAX_TRIES[kind] - 1):
        with pytest.raises(CardError):
            card.verify_pin(kind, wrong)
    assert card.remaining_tries(kind) == 1
    _use(card, kind, PINS[kind])
    assert card.remaining_tries(kind) == MAX_TRIES[kind]
    for _ in range(MAX_TRIES[kind] - 1):  # consecutive tries only: no lock yet
        with pytest.raises(CardError):
            card.verify_pin(kind, wrong)
    assert not card.is_locked(kind)


@pytest.mark.parametrize(
    ("kind", "pin"),
    [
        (AUTH, "123"),
        (AUTH, "12345"),
        (AUTH, "１２３４"),  # full-width digits: the UI folds them, the chip does not
        (AUTH, ""),
        (AUTH, None),
        (SIG, "k7qx9m"),
        (SIG, "ABCDE"),
        (SIG, "ABCDEF"),
        (SIG, "123456"),
        (SIG, "K7QX9M-"),
        (SIG, "A" * 16 + "1"),
    ],
)
def test_a_malformed_try_is_refused_without_costing_a_try(
    card: Chip, kind: KeyKind, pin: Any
) -> None:
    with pytest.raises(CardError) as e:
        card.sign(kind, b"data", pin)
    assert _code(e) == "card.pin_format" and e.value.status == 422
    assert card.remaining_tries(kind) == MAX_TRIES[kind]


def test_counters_and_locks_survive_a_restart(store: ChipStore, clock: FixedClock) -> None:
    chip = store.load("card", clock)
    for _ in range(2):
        with pytest.raises(CardError):
            chip.verify_pin(AUTH, "0000")
    for _ in range(5):
        with pytest.raises(CardError):
            chip.verify_pin(SIG, "WRONG1")
    # No explicit save: a bound chip writes every try before answering.
    again = store.load("card", clock)
    assert again.remaining_tries(AUTH) == 1 and not again.is_locked(AUTH)
    assert again.is_locked(SIG) and again.locked_at(SIG) == clock.now()
    with pytest.raises(CardError) as e:
        again.sign(SIG, b"data", PINS[SIG])
    assert _code(e) == "card.pin_locked"
    with pytest.raises(CardError):
        again.verify_pin(AUTH, "0000")
    assert store.load("card", clock).is_locked(AUTH)


def test_a_try_is_persisted_as_wrong_before_the_pin_is_compared(card: Chip) -> None:
    seen: list[int] = []
    card.set_persistence(lambda chip: seen.append(3 - chip.remaining_tries(AUTH)))
    card.verify_pin(AUTH, PINS[AUTH])
    assert seen == [1, 0]

    def crash(chip: Chip) -> None:
        raise OSError("power cut")

    card.set_persistence(crash)
    with pytest.raises(OSError):
        card.verify_pin(AUTH, PINS[AUTH])  # the answer never comes: the try stays counted
    assert card.remaining_tries(AUTH) == 2


def test_concurrent_tries_on_one_chip_lock_exactly_once(card: Chip) -> None:
    codes: list[str] = []

    def attempt() -> None:
        try:
            card.verify_pin(SIG, "WRONG1")
        except CardError as e:
            codes.append(e.code)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == ["card.pin_locked"] * 3 + ["card.pin_wrong"] * 5


# --- choosing PINs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "pin", "reason"),
    [
        (AUTH, "8405", "birth_date"),  # YYMM
        (AUTH, "0530", "birth_date"),  # MMDD
        (AUTH, "1984", "birth_date"),  # YYYY
        (AUTH, "3005", "birth_date"),  # DDMM
        (AUTH, "5905", "birth_date"),  # 昭和59年5月
        (AUTH, "0000", "repeated"),
        (AUTH, "1111", "repeated"),
        (AUTH, "1212", "repeated"),
        (AUTH, "1122", "repeated"),
        (AUTH, "1234", "sequence"),
        (AUTH, "4321", "sequence"),
        (AUTH, "0123", "sequence"),
        (AUTH, "9876", "sequence"),
        (AUTH, "7890", "sequence"),
        (AUTH, "2580", "common"),
        (SIG, "ABC123", "sequence"),
        (SIG, "A1B2C3", "sequence"),
        (SIG, "A00000", "repeated"),
        (SIG, "ZZZ999", "repeated"),
        (SIG, "PASSWORD1", "common"),
        (SIG, "PASSW0RD", "common"),
        (SIG, "MYNUMBER123", "common"),
        (SIG, "QWERTY1", "common"),
        (SIG, "1QAZ2WSX", "common"),
        (SIG, "S590530", "birth_date"),
        (SIG, "A840530", "birth_date"),
        (SIG, "AB19840530", "birth_date"),
        (SIG, "X1984", None),  # too short: a format error, not guessable
    ],
)
def test_guessable_pins_are_refused_when_set(
    card: Chip, clock: FixedClock, kind: KeyKind, pin: str, reason: str | None
) -> None:
    expected = "card.pin_guessable" if reason else "card.pin_format"
    attempts: list[Callable[[], object]] = [
        lambda: Chip.create(
            "new",
            auth_pin=pin if kind is AUTH else PINS[AUTH],
            signature_pin=pin if kind is SIG else PINS[SIG],
            clock=clock,
            face=FACE,
            kdf=FAST,
        ),
        lambda: card.change_pin(kind, PINS[kind], pin),
        lambda: card.unlock(kind, _authorisation(clock), pin),
    ]
    for attempt in attempts:
        with pytest.raises(CardError) as e:
            attempt()
        assert _code(e) == expected and e.value.status == 422
        if reason:
            assert e.value.extra["reason"] == reason
        assert pin not in str(e.value) and pin not in json.dumps(e.value.problem("ja"))
    assert card.remaining_tries(kind) == MAX_TRIES[kind]  # refused before the old PIN was tried
    _use(card, kind, PINS[kind])  # and the old PIN still holds


def test_guessable_rules_leave_ordinary_pins_alone() -> None:
    for pin in ("2719", "5830", "4061", "9274", "3857"):
        assert guessable_reason(AUTH, pin, BIRTH) is None
    for pin in ("K7QX9M", "ZT4W8PL2", "XQ1984Z", "TANAKA7", "M3NB7Q"):
        assert guessable_reason(SIG, pin, BIRTH) is None
    assert "1984" not in {p for p in ("2719",) if guessable_reason(AUTH, p, dt.date(1990, 1, 1))}


@given(birth=st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2026, 11, 26)))
def test_every_four_digit_birth_date_form_is_refused(birth: dt.date) -> None:
    forms = birth_date_forms(birth)
    yy, mm, dd = f"{birth.year % 100:02d}", f"{birth.month:02d}", f"{birth.day:02d}"
    assert {f"{birth.year}", yy + mm, mm + dd, yy + mm + dd, f"{birth.year}{mm}{dd}"} <= forms
    for form in forms:
        if len(form) == 4:
            assert guessable_reason(AUTH, form, birth) is not None
        assert guessable_reason(SIG, "S" + form if len(form) >= 5 else "AB" + form, birth)


_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _well_formed(kind: KeyKind) -> st.SearchStrategy[str]:
    """Well-formed PINs, built rather than filtered (regex lookaheads would reject most draws)."""
    if kind is AUTH:
        return st.text(alphabet="0123456789", min_size=4, max_size=4)
    chars = st.lists(st.sampled_from(_UPPER + "0123456789"), min_size=4, max_size=14)
    return (
        st.tuples(st.sampled_from(_UPPER), st.sampled_from("0123456789"), chars)
        .flatmap(lambda t: st.permutations([t[0], t[1], *t[2]]))
        .map("".join)
    )


@settings(max_examples=300)
@given(
    text=st.one_of(
        st.text(),
        st.text(alphabet="0123456789", max_size=6),
        st.text(alphabet="ABCXYZ0189az１Ａ \n-", max_size=18),
        _well_formed(SIG),
        _well_formed(SIG).map(str.lower),
    )
)
def test_pin_format_agrees_with_the_reference_regex(text: str) -> None:
    assert is_well_formed(AUTH, text) == (AUTH_RE.fullmatch(text) is not None)
    assert is_well_formed(SIG, text) == (SIG_RE.fullmatch(text) is not None)


def test_change_pin(card: Chip) -> None:
    card.change_pin(AUTH, PINS[AUTH], "5830")
    _use(card, AUTH, "5830")
    with pytest.raises(CardError) as e:
        card.change_pin(AUTH, PINS[AUTH], "4061")  # the old PIN is now wrong
    assert _code(e) == "card.pin_wrong" and card.remaining_tries(AUTH) == 2


def test_pins_are_stored_as_salted_digests_only(
    template: Template, card: Chip, store: ChipStore
) -> None:
    card.change_pin(SIG, PINS[SIG], "ZT4W8PL2")
    plain = envelope.open_sealed(template.keystore, "card", store.path("card").read_bytes())
    for pin in ("ZT4W8PL2", PINS[AUTH], b"ZT4W8PL2".hex()):
        assert pin.encode() not in plain
    state = json.loads(plain)
    assert set(state["pins"]["signature"]) == {"salt", "digest", "kdf", "wrong_tries", "locked_at"}


def test_default_kdf() -> None:
    record = PinRecord.new(AUTH, "2719", PinKdf())
    assert record.kdf == PinKdf(n=2**14, r=8, p=1) and len(record.salt) == 16
    assert record.matches("2719") and not record.matches("2718")
    assert record.digest != PinRecord.new(AUTH, "2719", PinKdf()).digest  # salted
    assert "2719" not in repr(record) and record.digest.hex() not in repr(record)
    with pytest.raises(ValueError):
        PinKdf(n=1000)


# --- reset at the municipality counter ------------------------------------------------------


def _lock(chip: Chip, kind: KeyKind) -> None:
    for _ in range(MAX_TRIES[kind]):
        with pytest.raises(CardError):
            chip.verify_pin(kind, {AUTH: "0000", SIG: "WRONG1"}[kind])
    assert chip.is_locked(kind)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda c: None, "missing"),
        (lambda c: {"municipality_code": MUNI}, "missing"),
        (lambda c: _authorisation(c, municipality_code="131040"), "municipality_code"),
        (lambda c: _authorisation(c, municipality_code="13104"), "municipality_code"),
        (lambda c: _authorisation(c, municipality_code=131041), "municipality_code"),
        (lambda c: _authorisation(c, staff_id=""), "staff_id"),
        (lambda c: _authorisation(c, staff_id="   "), "staff_id"),
        (lambda c: _authorisation(c, staff_id="a\nb"), "staff_id"),
        (lambda c: _authorisation(c, identity_check="phone_call"), "identity_check"),
        (lambda c: _authorisation(c, identity_check=["photo_id"]), "identity_check"),
        (lambda c: _authorisation(c, at=c.now().replace(tzinfo=None)), "time"),
        (lambda c: _authorisation(c, at=c.now() + dt.timedelta(minutes=5)), "future"),
        (lambda c: _authorisation(c, at=c.now() - dt.timedelta(minutes=11)), "expired"),
    ],
)
def test_unlock_refuses_without_a_valid_counter_authorisation(
    card: Chip, clock: FixedClock, make: Any, reason: str
) -> None:
    _lock(card, AUTH)
    with pytest.raises(CardError) as e:
        card.unlock(AUTH, make(clock), "5830")
    assert _code(e) == "card.unlock_unauthorised" and e.value.status == 403
    assert e.value.extra["reason"] == reason and "窓口" in e.value.ja
    assert card.is_locked(AUTH)


@pytest.mark.parametrize("kind", list(KeyKind))
@pytest.mark.parametrize("check", ["photo_id", "two_documents"])
def test_unlock_with_a_counter_authorisation_sets_a_new_pin(
    store: ChipStore, clock: FixedClock, kind: KeyKind, check: str
) -> None:
    card = store.load("card", clock)
    _lock(card, kind)
    clock.advance(dt.timedelta(days=2))  # the holder comes to the counter later
    auth = _authorisation(clock, identity_check=check, at=clock.now() - dt.timedelta(minutes=9))
    new = NEW_PINS[kind][0]
    card.unlock(kind, auth, new)
    assert not card.is_locked(kind) and card.locked_at(kind) is None
    assert card.remaining_tries(kind) == MAX_TRIES[kind]
    with pytest.raises(CardError) as e:
        card.verify_pin(kind, PINS[kind])
    assert _code(e) == "card.pin_wrong"
    reloaded = store.load("card", clock)  # the new PIN is stored, too
    _use(reloaded, kind, new)


# --- certificates ---------------------------------------------------------------------------


def test_certificate_requests(clock: FixedClock, template: Template) -> None:
    chip = Chip.create(
        "fresh", auth_pin="2719", signature_pin="K7QX9M", clock=clock, face=FACE, kdf=FAST
    )
    sig_csr = chip.certificate_request(SIG, _subject("山田 太郎"))
    auth_csr = chip.certificate_request(AUTH)
    for kind, csr in ((SIG, sig_csr), (AUTH, auth_csr)):
        assert csr.is_signature_valid and csr.public_key() == chip.public_key(kind)
        assert csr.signature_hash_algorithm is not None
        assert csr.signature_hash_algorithm.name == "sha256"
    assert sig_csr.subject == _subject("山田 太郎") and len(auth_csr.subject) == 0
    with pytest.raises(CardError) as e:
        chip.certificate_request(AUTH, _subject("山田 太郎"))
    assert _code(e) == "card.csr_subject"
    for kind in KeyKind:
        with pytest.raises(CardError) as e:
            chip.certificate(kind)
        assert _code(e) == "card.no_certificate"
        with pytest.raises(CardError) as e:  # not usable before it is certified: no try spent
            chip.sign(kind, b"data", PINS[kind])
        assert _code(e) == "card.no_certificate" and chip.remaining_tries(kind) == MAX_TRIES[kind]
    chip.install_certificate(SIG, template.ca.issue(sig_csr))
    assert chip.has_certificate(SIG) and not chip.has_certificate(AUTH)
    with pytest.raises(CardError) as e:
        chip.certificate_request(SIG)
    assert _code(e) == "card.already_certified"


def test_a_certificate_for_another_key_is_refused(card: Chip, template: Template) -> None:
    mine = card.certificate(SIG)
    with pytest.raises(CardError) as e:
        card.install_certificate(AUTH, mine)  # this chip's other key
    assert _code(e) == "card.certificate_mismatch" and e.value.status == 422
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_subject("他人"))
        .sign(stranger, hashes.SHA256())
    )
    with pytest.raises(CardError) as e:
        card.install_certificate(SIG, template.ca.issue(csr))
    assert _code(e) == "card.certificate_mismatch"
    assert card.certificate(SIG) == mine and card.certificate(AUTH) != mine
    card.install_certificate(SIG, mine)  # the same key's certificate again is fine


def test_an_expired_certificate_is_refused_before_the_pin(card: Chip, clock: FixedClock) -> None:
    clock.set(CERT_NOT_AFTER + dt.timedelta(seconds=1))
    for kind in KeyKind:
        with pytest.raises(CardError) as e:
            card.sign(kind, b"data", PINS[kind])
        assert _code(e) == "card.certificate_outside_validity"
        assert card.remaining_tries(kind) == MAX_TRIES[kind]


# --- keys stay inside -----------------------------------------------------------------------


def _key_material(key: rsa.RSAPrivateKey) -> list[bytes]:
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    numbers = key.private_numbers()
    d = numbers.d.to_bytes(256, "big")
    return [
        der,
        base64.b64encode(der),
        pem.splitlines()[1],  # a line of the PEM body
        d,
        d.hex().encode(),
        str(numbers.d).encode(),
        numbers.p.to_bytes(128, "big"),
    ]


def test_private_keys_are_never_exposed(
    tmp_path: Path, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    generated: list[rsa.RSAPrivateKey] = []
    original = chip_module._generate_key

    def capture() -> rsa.RSAPrivateKey:
        generated.append(original())
        return generated[-1]

    monkeypatch.setattr(chip_module, "_generate_key", capture)
    keystore = FileKeystore(tmp_path / "keys", master_key_hex="11" * 32)
    store = ChipStore(tmp_path / "chips", keystore)
    chip = Chip.create(
        "leak-check", auth_pin="2719", signature_pin="K7QX9M", clock=clock, face=FACE, kdf=FAST
    )
    store.add(chip)
    assert len(generated) == 2
    path = store.path("leak-check")
    saved = path.read_bytes()
    plain = envelope.open_sealed(keystore, "leak-check", saved)
    seen = repr(chip) + repr(vars(chip)) + str([repr(v) for v in vars(chip).values()])
    for key in generated:
        material = _key_material(key)
        assert base64.b64encode(material[0]) in plain  # the search does find keys in plaintext
        for blob in material:
            assert blob not in saved
            assert blob.decode("latin-1") not in seen
    assert not any(isinstance(v, rsa.RSAPrivateKey) for v in vars(chip).values())
    # No public attribute or zero-argument method hands out a private key.
    for name in dir(chip):
        if name.startswith("_"):
            continue
        value = getattr(chip, name)
        if callable(value):
            try:
                value = value()
            except (TypeError, MynumberError):
                continue
        assert not isinstance(value, rsa.RSAPrivateKey)
    for kind in KeyKind:
        assert isinstance(chip.public_key(kind), rsa.RSAPublicKey)
    # Serialisation goes only through the sealed envelope.
    for serialise in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError):
            serialise(chip)
    with pytest.raises(TypeError):
        pickle.dumps(chip._keys)
    with pytest.raises(TypeError):
        Chip(  # no way in with a key of one's own
            chip_id="x",
            keys=generated,  # type: ignore[arg-type]
            pins={},
            certificates={},
            face=None,
            birth_date=BIRTH,
            is_smartphone=True,
            created_at=clock.now(),
            kdf=FAST,
            clock=clock,
        )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["leak-check.chip"]  # no temp files left


def test_a_tampered_file_is_refused(store: ChipStore, clock: FixedClock) -> None:
    path = store.path("card")
    original = path.read_bytes()
    for position in (0, 9, 30, len(original) // 2, len(original) - 1):
        tampered = bytearray(original)
        tampered[position] ^= 0x01
        path.write_bytes(bytes(tampered))
        with pytest.raises(CardError) as e:
            store.load("card", clock)
        assert _code(e) == "card.file_tampered"
    for blob in (original[:-1], original[:20], b"", original + b"\x00"):
        path.write_bytes(blob)
        with pytest.raises(CardError) as e:
            store.load("card", clock)
        assert _code(e) == "card.file_tampered"
    # Another chip's (authentic) file under this id is refused too.
    path.write_bytes(store.path("phone").read_bytes())
    with pytest.raises(CardError) as e:
        store.load("card", clock)
    assert _code(e) == "card.file_tampered"
    path.write_bytes(original)
    assert store.load("card", clock).chip_id == "card"


def test_another_keystore_cannot_open_the_file(store: ChipStore, tmp_path: Path) -> None:
    other = ChipStore(store.path("card").parent, DictKeystore())
    with pytest.raises(CardError) as e:
        other.load("card", FixedClock(NOW))
    assert _code(e) == "card.file_tampered"


def test_store_ids(store: ChipStore, clock: FixedClock, card: Chip) -> None:
    with pytest.raises(CardError) as e:
        store.add(card)  # never overwrites an existing chip
    assert _code(e) == "card.exists"
    with pytest.raises(CardError) as e:
        store.load("nobody", clock)
    assert _code(e) == "card.not_found"
    for bad in ("../card", "", "a" * 65, "card.chip", "カード"):
        with pytest.raises(CardError) as e:
            store.load(bad, clock)
        assert _code(e) == "card.chip_id"
    assert store.exists("card") and not store.exists("nobody")


def test_a_loaded_chip_keeps_everything(store: ChipStore, clock: FixedClock, card: Chip) -> None:
    again = store.load("card", clock)
    assert again.face == FACE and again.created_at == NOW
    for kind in KeyKind:
        assert again.certificate(kind) == card.certificate(kind)
        assert again.public_key(kind) == card.public_key(kind)
        _use(again, kind, PINS[kind])


def test_card_errors_carry_both_languages_and_their_status() -> None:
    import mynumber.card.errors as errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, CardError) and issubclass(cls, MynumberError)
    doc = (Path(__file__).resolve().parent.parent / "docs" / "reason-codes.md").read_text()
    section = doc.split("## Card (chip)", 1)[1]
    codes = set(re.findall(r"`(card\.[a-z_]+)`", section))
    source = "".join(p.read_text() for p in Path(errors.__file__).parent.glob("*.py"))
    assert set(re.findall(r'"(card\.[a-z_]+)"', source)) == codes


# --- state machine --------------------------------------------------------------------------


class PinMachine(RuleBasedStateMachine):
    """Right and wrong PINs, counter resets (valid or not) and restarts, against a model.

    Invariants: a PIN is locked iff its consecutive-wrong count reached its limit, and the file
    on disk always agrees with the chip in memory. Each rule checks that signing succeeds iff
    the PIN is not locked and is right.
    """

    def __init__(self) -> None:
        super().__init__()
        template = _template()
        self.dir = Path(tempfile.mkdtemp())
        self.store = ChipStore(self.dir, template.keystore)
        self.store.path("card").write_bytes(template.blobs["card"])
        self.clock = FixedClock(NOW)
        self.chip = self.store.load("card", self.clock)
        self.pins = dict(PINS)
        self.wrong = {AUTH: 0, SIG: 0}

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def _locked(self, kind: KeyKind) -> bool:
        return self.wrong[kind] >= MAX_TRIES[kind]

    @rule(kind=st.sampled_from(KeyKind))
    def right_pin(self, kind: KeyKind) -> None:
        if self._locked(kind):
            with pytest.raises(CardError) as e:
                _use(self.chip, kind, self.pins[kind])
            assert e.value.code == "card.pin_locked"
        else:
            _use(self.chip, kind, self.pins[kind])
            self.wrong[kind] = 0

    @rule(kind=st.sampled_from(KeyKind), tries=st.integers(1, 4), data=st.data())
    def wrong_pins(self, kind: KeyKind, tries: int, data: st.DataObject) -> None:
        self._wrong(kind, tries, data)

    @rule(kind=st.sampled_from(KeyKind), data=st.data())
    def lock_out(self, kind: KeyKind, data: st.DataObject) -> None:
        """Wrong PINs until the limit and one past it, so that locks are reached often."""
        self._wrong(kind, max(MAX_TRIES[kind] - self.wrong[kind], 0) + 1, data)

    def _wrong(self, kind: KeyKind, tries: int, data: st.DataObject) -> None:
        for _ in range(tries):
            pin = data.draw(_well_formed(kind).filter(lambda p: p != self.pins[kind]))
            with pytest.raises(CardError) as e:
                _use(self.chip, kind, pin)
            if self._locked(kind):
                assert e.value.code == "card.pin_locked"
            else:
                self.wrong[kind] += 1
                assert e.value.code == "card.pin_wrong"
                assert e.value.extra["remaining_tries"] == MAX_TRIES[kind] - self.wrong[kind]

    @rule(kind=st.sampled_from(KeyKind), index=st.integers(0, 2), minutes=st.integers(0, 10))
    def unlock(self, kind: KeyKind, index: int, minutes: int) -> None:
        self.clock.advance(dt.timedelta(minutes=minutes))
        at = self.clock.now() - dt.timedelta(minutes=minutes)
        self.chip.unlock(kind, _authorisation(self.clock, at=at), NEW_PINS[kind][index])
        self.pins[kind] = NEW_PINS[kind][index]
        self.wrong[kind] = 0

    @rule(
        kind=st.sampled_from(KeyKind),
        bad=st.sampled_from(
            [
                {"identity_check": "none"},
                {"municipality_code": "000000"},
                {"staff_id": ""},
                {"at": NOW - dt.timedelta(days=1)},
            ]
        ),
    )
    def unlock_refused(self, kind: KeyKind, bad: dict[str, Any]) -> None:
        with pytest.raises(CardError) as e:
            self.chip.unlock(kind, _authorisation(self.clock, **bad), NEW_PINS[kind][0])
        assert e.value.code == "card.unlock_unauthorised"

    @rule()
    def restart(self) -> None:
        self.chip = self.store.load("card", self.clock)

    @invariant()
    def locked_iff_the_limit_was_reached(self) -> None:
        on_disk = self.store.load("card", self.clock)
        for kind in KeyKind:
            for chip in (self.chip, on_disk):
                assert chip.is_locked(kind) == self._locked(kind)
                assert chip.remaining_tries(kind) == MAX_TRIES[kind] - self.wrong[kind]


PinMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
test_pin_state_machine = PinMachine.TestCase
