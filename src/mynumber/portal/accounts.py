"""Public-funds receiving accounts (公金受取口座): the checks a registration must pass. Pure.

In 2022–23, 748 accounts were found registered to the wrong person — support-desk staff did not
log the previous person out (I4) — and many accounts were registered in a family member's name.
Two checks catch what the card authorisation (I4, the portal's job) cannot:

- **Holder's kana.** A bank account's holder name is kept in kana, usually half-width upper-case
  (ﾔﾏﾀﾞ ﾀﾛｳ, small letters written large: ｼﾖｳｺ). It must be the person's registered kana — current
  or earlier (an account opened before a marriage keeps the old name) — after the documented kana
  normalisation (:func:`mynumber.jtext.normalise_kana`: width, small letters, hiragana, spaces).
  Anything else is refused with ``holder_mismatch``; a match on an earlier reading is accepted
  with the note ``holder_earlier_name``.
- **One account, several people.** An account already registered to someone else is not refused
  — a parent may receive a child's allowance legitimately — but flagged for review as
  ``account_shared``, naming the relationship when the two share a household
  (``account_shared_family``, with both people's relationships to the head of household), since a
  family member's account is the commonest wrong registration.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from mynumber.jtext import normalise_kana

__all__ = ["Account", "AccountCheck", "Holder", "check_registration", "parse_account"]

# ASCII digits only (\d would take any script's digits, ٠١٢ or １２３).
_BANK = re.compile(r"[0-9]{4}")
_BRANCH = re.compile(r"[0-9]{3}")


@dataclass(frozen=True, slots=True)
class Account:
    """A bank account as the Zengin system names it: bank code (4 digits), branch code (3),
    account number (7, zero-padded). Ordinary or current deposits are the same account here."""

    bank: str
    branch: str
    number: str


def parse_account(bank: str, branch: str, number: str) -> Account:
    """The account, digits checked (number zero-padded to 7); ValueError naming the field."""
    bank, branch, number = bank.strip(), branch.strip(), number.strip()
    if not _BANK.fullmatch(bank):
        raise ValueError("bank: a 4-digit bank code")
    if not _BRANCH.fullmatch(branch):
        raise ValueError("branch: a 3-digit branch code")
    if not number.isascii() or not number.isdigit() or not 1 <= len(number) <= 7:
        raise ValueError("number: an account number of 1–7 digits")
    return Account(bank, branch, number.zfill(7))


@dataclass(frozen=True, slots=True)
class Holder:
    """A person registering (or registered to) an account, as the register knows them."""

    person: str  # an opaque id of the person (the portal's; never the individual number)
    kana: str  # registered kana name, current
    earlier_kana: Sequence[str] = ()
    household_id: str | None = None
    relationship: str | None = None  # 続柄 to the head of household (世帯主, 妻, 子, …)


@dataclass(frozen=True, slots=True)
class AccountCheck:
    accepted: bool
    """False: refused (the holder's name is not this person's)."""
    review: bool
    """True: accepted but flagged for a human (shared account)."""
    reasons: tuple[str, ...]
    shared_with: tuple[tuple[str, str | None, str | None], ...] = ()
    """(person, their relationship, the registrant's relationship) for each other registrant;
    relationships only when the two share a household."""


def check_registration(
    holder_kana: str, registrant: Holder, others: Sequence[Holder]
) -> AccountCheck:
    """Check a registration of an account whose holder name is `holder_kana` by `registrant`;
    `others` are the people this account is already registered to."""
    key = normalise_kana(holder_kana)
    reasons: list[str] = []
    if not key or key != normalise_kana(registrant.kana):
        if key and key in {normalise_kana(k) for k in registrant.earlier_kana}:
            reasons.append("holder_earlier_name")
        else:
            return AccountCheck(False, False, ("holder_mismatch",))
    shared = []
    family = False
    for o in others:
        if o.person == registrant.person:
            continue
        same_household = o.household_id is not None and o.household_id == registrant.household_id
        family = family or same_household
        shared.append(
            (
                o.person,
                o.relationship if same_household else None,
                registrant.relationship if same_household else None,
            )
        )
    if shared:
        reasons.append("account_shared_family" if family else "account_shared")
    return AccountCheck(True, bool(shared), tuple(sorted(reasons)), tuple(shared))
