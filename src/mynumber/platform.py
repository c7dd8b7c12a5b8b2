"""Wires the roles of one deployment together: settings → keystore, engines, services.

In one process the roles call each other's services directly; each still owns its own engine.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mynumber.agency.service import AgencyService
from mynumber.card import ChipStore
from mynumber.clock import Clock, SystemClock
from mynumber.config import Settings
from mynumber.db import make_engine
from mynumber.documents.verify import DocumentVerification, verify_document
from mynumber.jlis.cards import CardService
from mynumber.jlis.generator import NumberGenerator
from mynumber.jlis.kiosk import KioskCentre
from mynumber.jlis.lgpki import OrganisationAuthority
from mynumber.jlis.pki import PkiService
from mynumber.jlis.service import JlisService
from mynumber.jlis.sessions import PlatformLogin
from mynumber.jlis.verifiers import VerifierService
from mynumber.keystore import FileKeystore
from mynumber.ledger.service import LedgerService
from mynumber.municipality.issuance import IssuanceService
from mynumber.municipality.seals import SealService
from mynumber.municipality.service import MunicipalityService
from mynumber.municipality.signer import SignerStore
from mynumber.network.service import NetworkService
from mynumber.portal.service import PortalService
from mynumber.vault import NumberVault

__all__ = ["Platform"]

log = logging.getLogger("mynumber.platform")


@dataclass
class Platform:
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    auto_sync: bool = True

    def __post_init__(self) -> None:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self.keystore = FileKeystore(s.data_dir / "keys", s.master_key)
        self.jlis = JlisService(
            make_engine(s.role_database_url("jlis"), "jlis"),
            NumberVault(self.keystore, "jlis"),
            NumberGenerator(self.keystore.secret("jlis-ff1")),
            self.clock,
        )
        self.pki = PkiService.open(
            self.jlis.engine,
            s.data_dir / "jpki",
            self.keystore,
            self.clock,
            base_url=s.base_url,
        )
        chips = ChipStore(s.data_dir / "cards", self.keystore)
        self.cards = CardService(self.jlis.engine, self.pki, chips, self.clock)
        # Registered verifiers, 基本4情報提供 and the platform's own card login (J-LIS's engine).
        self.verifiers = VerifierService(self.jlis.engine, self.pki, self.clock)
        self.login = PlatformLogin(self.pki, self.keystore, self.clock)
        # Certificates are revoked in the same transaction that brings the change into the
        # identity mirror: a move, a new name or sex, a death, a move abroad.
        self.jlis.on_identity_change(self.pki.revoke_for_changes)
        self.municipality = MunicipalityService(
            make_engine(s.role_database_url("municipality"), "municipality"),
            NumberVault(self.keystore, "municipality"),
            self.jlis,
            self.clock,
        )
        self.municipality.on_change(self._after_change)
        # The seal register lives in the municipality's database (issuance reads it there, I2).
        self.seals = SealService(self.municipality.engine, self.clock)
        # LGPKI (J-LIS's organisation CA) certifies each municipality's document-signing key;
        # the municipality issues and signs certificates from its own register (I2).
        self.lgpki = OrganisationAuthority.open(
            self.jlis.engine, s.data_dir / "lgpki", self.keystore, self.clock, base_url=s.base_url
        )
        self.signers = SignerStore(s.data_dir / "signers", self.keystore, self._enrol_signer)
        self.issuance = IssuanceService(
            self.municipality.engine,
            self.municipality.vault,
            self.seals,
            self.signers,
            self.clock,
            s.base_url,
        )
        # J-LIS's kiosk centre: checks the card, routes the order to the holder's municipality.
        self.kiosk = KioskCentre(
            self.jlis.engine,
            self.pki,
            self.issuance.issue,
            self.issuance.report_print,
            self.clock,
            ttl=dt.timedelta(seconds=s.kiosk_session_seconds),
        )
        # The transparency log (ledger role, its own database and key).
        self.ledger = LedgerService(
            make_engine(s.role_database_url("ledger"), "ledger"), self.keystore, self.clock
        )
        # The information-provision network (codes, legal basis, brokered exchanges) and the
        # agencies with their intermediate servers, each role in its own database.
        self.network = NetworkService(
            make_engine(s.role_database_url("network"), "network"),
            self.keystore,
            self.ledger,
            self.clock,
        )
        self.agencies = AgencyService(
            make_engine(s.role_database_url("agency"), "agency"), self.keystore, self.clock
        )
        self.network.connect_holder("*", self.agencies)
        # Every certificate issued is an access record about the person (I6): the municipality
        # sends it to the network after its own commit; what a crash kept from the log is sent
        # at start-up and before a person's records are read.
        self.issuance.connect_log(self.network)
        self.network.before_records(self.issuance.reconcile_log)
        self.network.reconcile()
        self.issuance.reconcile_log()
        # J-LIS's 本人確認情報 as an information holder: its copy follows the mirror, so an agency
        # asking for a current address after a move gets the new one (applied after each sync).
        self._moved = threading.local()
        self.jlis.on_identity_change(self._note_moves)
        # The portal (マイナポータル, its own database): public-funds accounts, each registration
        # authorised by the person's card in that transaction (I4).
        self.portal = PortalService(
            make_engine(s.role_database_url("portal"), "portal"),
            self.login,
            self.pki,
            self.jlis,
            self.municipality,
            self.clock,
        )

    def _enrol_signer(self, code: str, public_key: Any) -> tuple[Any, list[Any]]:
        names = {m["code"]: m for m in self.municipality.list_municipalities()}
        place = names.get(code)
        name = f"{place['prefecture']}{place['name']}" if place else code
        return self.lgpki.issue(code, name, public_key), self.lgpki.chain

    def verify_document(self, pdf: bytes) -> DocumentVerification:
        """Check a document: its signature against LGPKI's root and current CRL, its content,
        and the issuing municipality's record of it."""
        return verify_document(
            pdf,
            trust_roots=[self.lgpki.root],
            crls=[self.lgpki.crl()],
            at=self.clock.now(),
            lookup=self.issuance.record,
        )

    def _after_change(self) -> None:
        if not self.auto_sync:
            return
        try:
            self.sync()
        except Exception as exc:  # the change is committed; the next sync catches up
            log.warning("J-LIS mirror sync deferred: %s", type(exc).__name__)

    def sync(self) -> int:
        """Bring the J-LIS identity mirror up to date with every municipality's events.

        Certificates are revoked inside the sync itself; after it, the cards of people who died
        are closed (returned, or cancelled if not yet handed over)."""
        self._moved.addresses = {}
        applied = self.jlis.sync(self.municipality)
        if applied:
            self.cards.close_for_deceased()
        moved: dict[str, dict[str, Any]] = getattr(self._moved, "addresses", {})
        if moved:
            self.agencies.update_items("jlis", moved, "jlis")
        return applied

    def _note_moves(self, _conn: Any, changes: Sequence[Any]) -> None:
        moved = getattr(self._moved, "addresses", None)
        if moved is None:
            return
        for ch in changes:
            before, after = ch.before, ch.after
            if (before.get("address"), before.get("postal_code")) != (
                after.get("address"),
                after.get("postal_code"),
            ):
                moved[ch.resident_code] = {
                    "current_address": {
                        "postal_code": after.get("postal_code"),
                        "address": after.get("address"),
                    }
                }

    def number_change(
        self, resident_code: str, idempotency_key: str | None = None
    ) -> tuple[int, dict[str, Any], bool]:
        """Change a leaked number at J-LIS and carry the new one into the register."""
        result = self.jlis.change_number(resident_code, idempotency_key=idempotency_key)
        self.municipality.refresh_number(resident_code)
        self.municipality.notify()
        return result

    def acquire_codes(
        self, agency_id: str, numbers: Mapping[str, str], method: str = "number"
    ) -> tuple[dict[str, str], list[str]]:
        """符号取得: an agency obtains its codes for the people of its records (internal id →
        individual number). J-LIS resolves the numbers to resident record codes and hands only
        those to the network, which issues the codes; the agency keeps them. Returns the codes
        (internal id → code) and the internal ids whose number is not active."""
        owners = self.jlis.active_owners(list(numbers.values()))
        wanted = {iid: owners[num] for iid, num in numbers.items() if num in owners}
        issued = self.network.issue_codes(agency_id, list(dict.fromkeys(wanted.values())))
        codes = {iid: issued[rc] for iid, rc in wanted.items()}
        self.agencies.store_codes(agency_id, codes, method)
        return codes, [iid for iid in numbers if iid not in wanted]

    def close(self) -> None:
        self.jlis.engine.dispose()
        self.municipality.engine.dispose()
        self.ledger.engine.dispose()
        self.network.engine.dispose()
        self.agencies.engine.dispose()
        self.portal.engine.dispose()
