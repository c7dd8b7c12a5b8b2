"""The chip's counter-side changes used by card management: a new face (追記) and a new key."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cardkit import fast_chips  # noqa: F401
from mynumber.card import (
    CardError,
    CardFace,
    Chip,
    ChipStore,
    CounterAuthorisation,
    KeyKind,
    PinKdf,
)
from mynumber.clock import JST, FixedClock
from mynumber.keystore import FileKeystore

NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=JST)
BIRTH = dt.date(1984, 5, 30)
FACE = CardFace("山田 太郎", "東京都新宿区西新宿二丁目8番1号", BIRTH, 1, dt.date(2034, 5, 30))
AUTH = CounterAuthorisation("131041", "counter-01", "photo_id", NOW)
pytestmark = pytest.mark.usefixtures("fast_chips")


def make_chip(clock: FixedClock) -> Chip:
    return Chip.create(
        "chip-1",
        auth_pin="2719",
        signature_pin="K7QX9M",
        clock=clock,
        face=FACE,
        kdf=PinKdf(n=2**4, r=1, p=1),
    )


def self_signed_for(chip: Chip, kind: KeyKind) -> x509.Certificate:
    """A certificate for the chip's `kind` key (issuer: a throwaway CA key)."""
    ca = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(chip.public_key(kind))
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=365))
        .sign(ca, hashes.SHA256())
    )


def test_update_face_needs_a_counter_authorisation(tmp_path: Path) -> None:
    clock = FixedClock(NOW)
    store = ChipStore(tmp_path, FileKeystore(tmp_path / "keys"))
    chip = make_chip(clock)
    store.add(chip)
    moved = dataclasses.replace(FACE, address="東京都新宿区新宿一丁目1番1号")
    with pytest.raises(CardError) as caught:
        chip.update_face(moved, None)
    assert caught.value.code == "card.unlock_unauthorised"
    stale = dataclasses.replace(AUTH, at=NOW - dt.timedelta(hours=1))
    with pytest.raises(CardError):
        chip.update_face(moved, stale)
    assert chip.face == FACE
    chip.update_face(moved, AUTH)
    assert chip.face.address == "東京都新宿区新宿一丁目1番1号"
    # Persisted before it answers.
    assert store.load("chip-1", clock).face.address == "東京都新宿区新宿一丁目1番1号"
    with pytest.raises(ValueError, match="birth date"):
        chip.update_face(dataclasses.replace(FACE, birth_date=dt.date(1984, 5, 31)), AUTH)
    with pytest.raises(TypeError):
        chip.update_face("a face", AUTH)  # type: ignore[arg-type]


def test_smartphone_form_has_no_face_to_update() -> None:
    clock = FixedClock(NOW)
    phone = Chip.create(
        "phone-1",
        auth_pin="2719",
        signature_pin="K7QX9M",
        clock=clock,
        birth_date=BIRTH,
        is_smartphone=True,
        kdf=PinKdf(n=2**4, r=1, p=1),
    )
    with pytest.raises(CardError) as caught:
        phone.update_face(FACE, AUTH)
    assert caught.value.code == "card.no_face_data"


def test_renew_key_replaces_the_key_and_drops_its_certificate(tmp_path: Path) -> None:
    clock = FixedClock(NOW)
    store = ChipStore(tmp_path, FileKeystore(tmp_path / "keys"))
    chip = make_chip(clock)
    store.add(chip)
    for kind in KeyKind:
        chip.install_certificate(kind, self_signed_for(chip, kind))
    old_sig = chip.public_key(KeyKind.SIGNATURE).public_numbers()
    old_auth = chip.public_key(KeyKind.AUTHENTICATION).public_numbers()
    with pytest.raises(CardError):
        chip.renew_key(KeyKind.SIGNATURE, "not an authorisation")
    assert chip.has_certificate(KeyKind.SIGNATURE)
    chip.renew_key("signature", AUTH)
    assert chip.public_key(KeyKind.SIGNATURE).public_numbers() != old_sig
    assert not chip.has_certificate(KeyKind.SIGNATURE)
    # The other key and its certificate are untouched; the PIN is unchanged.
    assert chip.public_key(KeyKind.AUTHENTICATION).public_numbers() == old_auth
    assert chip.has_certificate(KeyKind.AUTHENTICATION)
    with pytest.raises(CardError) as caught:
        chip.sign(KeyKind.SIGNATURE, b"x", "K7QX9M")
    assert caught.value.code == "card.no_certificate"
    # A new request can be made, for the new key only, and its certificate installed.
    csr = chip.certificate_request(KeyKind.SIGNATURE)
    assert csr.public_key().public_numbers() == chip.public_key(KeyKind.SIGNATURE).public_numbers()  # type: ignore[union-attr]
    chip.install_certificate(KeyKind.SIGNATURE, self_signed_for(chip, KeyKind.SIGNATURE))
    chip.sign(KeyKind.SIGNATURE, b"x", "K7QX9M")
    reloaded = store.load("chip-1", clock)
    assert (
        reloaded.public_key(KeyKind.SIGNATURE).public_numbers()
        == chip.public_key(KeyKind.SIGNATURE).public_numbers()
    )


def test_store_remove(tmp_path: Path) -> None:
    clock = FixedClock(NOW)
    store = ChipStore(tmp_path, FileKeystore(tmp_path / "keys"))
    store.add(make_chip(clock))
    assert store.exists("chip-1")
    store.remove("chip-1")
    assert not store.exists("chip-1")
    store.remove("chip-1")  # quiet when there is none
    assert not store.exists("chip-1")
