"""What the portal needs to know about people, asked of the roles that own it.

The portal keeps no copy of anyone's name or household: the registered kana (current and
earlier readings) come from J-LIS's identity mirror (:meth:`JlisService.registered`), the
household and the relationship to its head (続柄) from the municipality's register — both read
in the same request that uses them (DESIGN I2), through the roles' service interfaces.
"""

from __future__ import annotations

from dataclasses import dataclass

from mynumber.errors import NotFoundError
from mynumber.jlis.service import JlisService
from mynumber.municipality.service import MunicipalityService
from mynumber.portal.accounts import Holder

__all__ = ["Household", "People"]


@dataclass(frozen=True, slots=True)
class Household:
    household: str | None  # "<municipality code>:<household id>" (ids are per municipality)
    relationship: str | None


class People:
    def __init__(self, jlis: JlisService, municipality: MunicipalityService) -> None:
        self._jlis = jlis
        self._municipality = municipality

    def household(self, resident_code: str) -> Household:
        """The person's household and relationship on the register (their current record when
        they have lived in several municipalities of this deployment)."""
        found: Household | None = None
        for code in self._municipality.municipality_codes():
            try:
                row = self._municipality.get_resident(code, resident_code)
            except NotFoundError:
                continue
            hid = row.get("household_id")
            here = Household(f"{code}:{hid}" if hid else None, row.get("relationship") or None)
            if row.get("status") == "active":
                return here
            found = found or here
        return found or Household(None, None)

    def registrant(self, resident_code: str) -> Holder | None:
        """The person as a registrant: kana (current and earlier) and household; None unless
        J-LIS knows them as an active resident."""
        known = self._jlis.registered([resident_code]).get(resident_code)
        if known is None or known[1] != "active":
            return None
        identity, _status = known
        home = self.household(resident_code)
        return Holder(
            resident_code,
            identity.current.name_kana,
            tuple(identity.earlier_kana_keys),
            home.household,
            home.relationship,
        )

    def others(self, resident_codes: list[str]) -> list[Holder]:
        """Other registrants of an account: only their household and relationship matter."""
        out = []
        for rc in resident_codes:
            home = self.household(rc)
            out.append(Holder(rc, "", (), home.household, home.relationship))
        return out
