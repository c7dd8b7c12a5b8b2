"""The decision core of single enrolment: may this agency record be linked to a person? (DESIGN I3)

Pure functions, no I/O. The caller asks J-LIS (``number_status``, the owner's registered identity,
the owner's household, or ``five_item_query``) and passes the answers in as :class:`Candidate`
evidence; this module decides. Items are compared only by :func:`mynumber.identity.compare`, i.e.
after the normalisation of docs/normalisation.md (髙橋 = 高橋, but 斎藤 ≠ 斉藤).

An item *matches* a person when ``compare`` reports ``match`` or ``match_normalised``, or, for
the name, the kana name and the address, a mismatch that ``matches_earlier`` (a value the register
recorded for this person before). A person *five-matches* a record when all five items match.

Rules of :func:`decide_claim` (a number was claimed), applied in this order:

1. ``check_digit``: the claimed number is not 12 digits (after :func:`parse_individual`'s
   tolerance of full-width digits, spaces and hyphens) or fails its check digit → ``rejected``;
   nothing else is looked at.
2. ``number_unknown``: there is no owner (J-LIS never issued the number) or the number's status is
   anything but ``active`` (``retired`` or ``unknown``) → ``review``. When a retired number's former
   owner is known, it is named as ``resident_code`` and compared in ``matched``, for the reviewer;
   the reasons are ``number_unknown`` alone.
3. The owner five-matches the record and is not deceased → ``linked`` to the owner. An owner whose
   status is ``moved_out`` still holds the number and may be linked.
4. ``household_member_number``: the owner does not five-match, but another member of the owner's
   household (``household``; the owner itself is skipped) does → ``review``; the number is never
   linked to its owner, under either policy. With exactly one such member, ``resident_code`` names
   that member (the person the record's items identify); with several it is ``None`` and
   ``ambiguous`` is added. The item reasons against the owner follow (rule 6), and ``deceased``
   when the owner is dead.
5. ``deceased``: the owner is deceased → ``review`` (a dead person's number is never linked to a
   living record), with the item reasons of rule 6 beside it.
6. Otherwise: under the ``assisted`` policy, the owner is linked when four items match, the fifth
   differs by one documented slip (below), and no other household member five-matches or is within
   one slip; the reasons carry ``assisted_<item>`` (``assisted_name_kana``,
   ``assisted_birth_date``). In every other case → ``review`` with one reason per failing item:
   ``name_mismatch``, ``kana_mismatch``, ``birth_date_mismatch``, ``sex_mismatch``,
   ``address_mismatch``; ``resident_code`` is the owner.

Provenance notes: wherever an item matched only an earlier value, the reasons carry ``moved``
(address) or ``name_changed`` (kanji name or kana name), on ``linked`` decisions too, because I3
allows earlier values. Issue 5 lists ``moved`` and ``name_changed`` among the review reasons; we
read them as review reasons only when another item also fails, so a record whose only difference
is an earlier address or name is linked, with the note kept as provenance.

Slips (assisted policy only; each compared with the owner's *current* value):

- kana name: the normalised keys differ by exactly one kana character — one substitution,
  insertion or deletion — and the record's key is kana (:func:`mynumber.jtext.is_kana`);
- birth date: the two dates written as ``YYYYMMDD`` differ in exactly one digit, or day and month
  are swapped (same year).

The kanji name, sex and address have no slip: one different kanji can be another family's name
(斎藤/斉藤), a different sex is another person. An item that is missing counts as a mismatch.

Rules of :func:`decide_query` (no number claimed; ``matches`` are the people J-LIS's five-item
query found, duplicates by resident code counted once):

- none → ``unmatched`` with ``no_match``;
- several → ``review`` with ``ambiguous`` and ``resident_code`` ``None``;
- exactly one: deceased → ``review`` with ``deceased``; otherwise it is compared again here
  (defence in depth) and ``linked`` when it five-matches, with ``moved``/``name_changed`` notes;
  if J-LIS's answer does not five-match here, ``review`` with the item reasons.

Reasons are sorted by code, except that ``household_member_number``, when present, comes first.
``matched`` is the per-item comparison with the number's owner for claims (the person linked, or
the claimed person under review — also for ``household_member_number``, whose member five-matches
by definition) and with the single match for queries; it is empty when there is nobody to compare
(``rejected``, unknown number, no or several matches).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from mynumber.errors import ValidationError
from mynumber.identity import (
    Comparison,
    FiveItems,
    ItemReport,
    ItemResult,
    RegisteredIdentity,
    compare,
)
from mynumber.jtext import is_kana, normalise_kana
from mynumber.numbers import parse_individual

__all__ = [
    "DECISIONS",
    "MAX_CANDIDATES",
    "METHODS",
    "POLICIES",
    "REASONS",
    "Candidate",
    "Decision",
    "decide_claim",
    "decide_query",
    "decide_search",
    "how_matched",
    "provenance_notes",
    "within_tolerance",
]

DECISIONS = ("linked", "review", "unmatched", "rejected")
METHODS = ("claimed_number", "five_item_query", "search")
POLICIES = ("strict", "assisted")

REASONS: dict[str, str] = {
    "check_digit": "the claimed number is not 12 digits or fails its check digit",
    "number_unknown": "J-LIS never issued the claimed number, or it is retired",
    "deceased": "the person is recorded as deceased",
    "household_member_number": "the number belongs to another member of the same household",
    "ambiguous": "more than one person matches the record",
    "no_match": "no person matches the record on all five items",
    "name_mismatch": "the kanji name differs from the person's current and earlier names",
    "kana_mismatch": "the kana name differs from the person's current and earlier readings",
    "birth_date_mismatch": "the birth date differs",
    "sex_mismatch": "the sex differs",
    "address_mismatch": "the address differs from the person's current and earlier addresses",
    "moved": "the record's address is an earlier address of the person (provenance note)",
    "name_changed": "the record's name or kana is an earlier one of the person (provenance note)",
    "assisted_name_kana": "linked under the assisted policy despite a one-kana slip",
    "assisted_birth_date": "linked under the assisted policy despite a one-digit or day/month slip",
    "claimed_number_ignored": (
        "the claimed number is not this person's (a typo or another person's number): linked by"
        " the five items alone, the claim flagged"
    ),
}
"""Every reason code a :class:`Decision` can carry, with its meaning."""

_MISMATCH = {
    "name": "name_mismatch",
    "name_kana": "kana_mismatch",
    "birth_date": "birth_date_mismatch",
    "sex": "sex_mismatch",
    "address": "address_mismatch",
}
_EARLIER = {"name": "name_changed", "name_kana": "name_changed", "address": "moved"}
_HEADLINE = "household_member_number"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A person J-LIS knows, as evidence."""

    resident_code: str
    identity: RegisteredIdentity
    status: str
    """``active`` | ``moved_out`` | ``deceased`` (as in the J-LIS identity mirror)."""
    household_id: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    decision: str
    """``linked`` | ``review`` | ``unmatched`` | ``rejected``."""
    resident_code: str | None
    """Whom the record links to (``linked``) or the best candidate (``review``)."""
    reasons: tuple[str, ...]
    """Codes of :data:`REASONS`: sorted, ``household_member_number`` first when present."""
    matched: tuple[ItemReport, ...]
    """How each item matched the linked or claimed person (provenance)."""
    method: str
    """``claimed_number`` | ``five_item_query``."""


def how_matched(r: ItemReport) -> str:
    """How an item matched, as a link's provenance records it: ``match`` |
    ``match_normalised`` | ``earlier`` (an earlier value the register recorded) | ``mismatch``."""
    return "earlier" if r.result is ItemResult.MISMATCH and r.matches_earlier else str(r.result)


def provenance_notes(reasons: Sequence[str]) -> list[str]:
    """A linked decision's reasons as a link keeps them: the notes first, ``assisted_*`` last."""
    return [r for r in reasons if not r.startswith("assisted_")] + [
        r for r in reasons if r.startswith("assisted_")
    ]


def _reasons(codes: Iterable[str]) -> tuple[str, ...]:
    unique = set(codes)
    head = (_HEADLINE,) if _HEADLINE in unique else ()
    return head + tuple(sorted(unique - {_HEADLINE}))


def _item_matches(r: ItemReport) -> bool:
    return r.result is not ItemResult.MISMATCH or r.matches_earlier


def _five_match(c: Comparison) -> bool:
    return all(_item_matches(r) for r in c.items)


def _item_reasons(c: Comparison) -> set[str]:
    """A mismatch code per failing item, a provenance note per item matched only earlier."""
    out: set[str] = set()
    for r in c.items:
        if not _item_matches(r):
            out.add(_MISMATCH[r.item])
        elif r.result is ItemResult.MISMATCH:  # matched an earlier value
            out.add(_EARLIER[r.item])
    return out


def _one_edit(a: str, b: str) -> bool:
    """`a` and `b` differ by exactly one substitution, insertion or deletion."""
    if len(a) > len(b):
        a, b = b, a
    if len(b) - len(a) > 1 or a == b:
        return False
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1 :] == b[i + 1 :]
    return a[i:] == b[i + 1 :]


def _date_slip(a: dt.date, b: dt.date) -> bool:
    """One digit of YYYYMMDD differs, or day and month are swapped."""
    if a == b:
        return False
    if a.year == b.year and a.month == b.day and a.day == b.month:
        return True
    sa, sb = f"{a:%Y%m%d}", f"{b:%Y%m%d}"
    return sum(x != y for x, y in zip(sa, sb, strict=True)) == 1


def _slipped_item(record: FiveItems, person: RegisteredIdentity, c: Comparison) -> str | None:
    """The one item that misses `person` by a documented slip while the other four match."""
    failing = [r.item for r in c.items if not _item_matches(r)]
    if len(failing) != 1:
        return None
    item, cur = failing[0], person.current
    if item == "name_kana":
        key = normalise_kana(record.name_kana)
        if is_kana(key) and _one_edit(key, normalise_kana(cur.name_kana)):
            return item
    elif item == "birth_date" and _date_slip(record.birth_date, cur.birth_date):
        return item
    return None


def _within_tolerance(record: FiveItems, person: RegisteredIdentity) -> bool:
    c = compare(record, person)
    return _five_match(c) or _slipped_item(record, person, c) is not None


def within_tolerance(record: FiveItems, person: RegisteredIdentity, policy: str) -> bool:
    """`person` five-matches `record` (strict), or does so or misses by one documented slip
    (assisted)."""
    if policy == "assisted":
        return _within_tolerance(record, person)
    return _five_match(compare(record, person))


def decide_claim(
    record: FiveItems,
    claimed_number: str,
    owner: Candidate | None,
    owner_number_status: str,
    household: Sequence[Candidate] | Callable[[], Sequence[Candidate]],
    policy: str = "strict",
) -> Decision:
    """Decide a record that claims `claimed_number`, whose owner per J-LIS is `owner`.

    `owner_number_status` is J-LIS's ``number_status`` (``active`` | ``retired`` | ``unknown``);
    `household` the members of the owner's household (the owner may be among them), or a
    function giving them, called only when the owner is not a five-item match or is deceased.
    See the module docstring for the rules."""
    if policy not in POLICIES:
        raise ValueError(f"unknown linkage policy {policy!r}; expected one of {POLICIES}")
    method = "claimed_number"
    try:
        parse_individual(claimed_number)
    except ValidationError:
        return Decision("rejected", None, ("check_digit",), (), method)
    if owner is None:
        return Decision("review", None, ("number_unknown",), (), method)
    comparison = compare(record, owner.identity)
    items = comparison.items
    if owner_number_status != "active":
        return Decision("review", owner.resident_code, ("number_unknown",), items, method)

    reasons = _item_reasons(comparison)
    deceased = owner.status == "deceased"
    if _five_match(comparison) and not deceased:
        return Decision("linked", owner.resident_code, _reasons(reasons), items, method)

    members = household() if callable(household) else household
    others = [
        c
        for c in {c.resident_code: c for c in members}.values()
        if c.resident_code != owner.resident_code
    ]
    if deceased:
        reasons.add("deceased")
    if not _five_match(comparison):
        hits = [c for c in others if _five_match(compare(record, c.identity))]
        if hits:
            reasons.add(_HEADLINE)
            if len(hits) > 1:
                reasons.add("ambiguous")
            who = hits[0].resident_code if len(hits) == 1 else None
            return Decision("review", who, _reasons(reasons), items, method)
    if deceased:
        return Decision("review", owner.resident_code, _reasons(reasons), items, method)

    if policy == "assisted":
        slipped = _slipped_item(record, owner.identity, comparison)
        if slipped is not None and not any(_within_tolerance(record, c.identity) for c in others):
            reasons.discard(_MISMATCH[slipped])
            reasons.add(f"assisted_{slipped}")
            return Decision("linked", owner.resident_code, _reasons(reasons), items, method)
    return Decision("review", owner.resident_code, _reasons(reasons), items, method)


def decide_query(record: FiveItems, matches: Sequence[Candidate]) -> Decision:
    """Decide a record without a number from the people J-LIS's five-item query found."""
    method = "five_item_query"
    unique = list({c.resident_code: c for c in matches}.values())
    if not unique:
        return Decision("unmatched", None, ("no_match",), (), method)
    if len(unique) > 1:
        return Decision("review", None, ("ambiguous",), (), method)
    person = unique[0]
    comparison = compare(record, person.identity)
    reasons = _item_reasons(comparison)
    if person.status == "deceased":
        reasons.add("deceased")
        return Decision("review", person.resident_code, _reasons(reasons), comparison.items, method)
    verdict = "linked" if _five_match(comparison) else "review"
    return Decision(verdict, person.resident_code, _reasons(reasons), comparison.items, method)


MAX_CANDIDATES = 3
"""How many candidates a review item shows at most (batch search), best first."""

SEARCH_GAP_BITS = 5.0
"""How clearly the best candidate must beat the second in a search: 5 bits of Splink match weight
(the evidence is 32 times likelier for the best). Fixed by design, not fitted to any ground
truth."""


def decide_search(
    record: FiveItems,
    prior: Decision,
    pool: Sequence[Candidate],
    ranked: Sequence[tuple[str, float]],
    household: Sequence[Candidate],
    policy: str = "strict",
) -> Decision:
    """Stage 2 of batch linkage: may a record that `prior` (:func:`decide_claim` or
    :func:`decide_query`) did not link be linked by a search of the register?

    `pool` must hold *every* person who could be within tolerance of the record (batch linkage
    passes everyone with the record's sex, name and address, current or earlier values: only
    the kana and the birth date can slip); `ranked` is the probabilistic model's
    ranking of candidates (resident code, match weight in bits), best first; `household` the
    members of the household of the pool's tolerant person (may include that person).

    Linked (method ``search``) only when all of these hold, else `prior` is returned unchanged:

    - `prior` is not ``linked`` and carries neither ``household_member_number`` (a family member's
      number stays with the reviewer) nor ``deceased``;
    - exactly one person of `pool` is within tolerance (:func:`within_tolerance` — strict: all five
      items match, current or earlier values; assisted: or four do and the fifth is one slip);
    - that person is alive, is the model's best candidate, and beats the second by at least
      :data:`SEARCH_GAP_BITS`;
    - no other member of that person's household is within tolerance (twins, a parent and a child
      with the same name).

    The reasons are the item notes (``moved``, ``name_changed``), ``assisted_<item>`` for a slip,
    and ``claimed_number_ignored`` when the record claimed a number that was not this person's."""
    if policy not in POLICIES:
        raise ValueError(f"unknown linkage policy {policy!r}; expected one of {POLICIES}")
    if prior.decision == "linked" or {"household_member_number", "deceased"} & set(prior.reasons):
        return prior
    tolerant = [
        c
        for c in {c.resident_code: c for c in pool}.values()
        if within_tolerance(record, c.identity, policy)
    ]
    if len(tolerant) != 1 or not ranked:
        return prior
    person = tolerant[0]
    if person.status == "deceased" or ranked[0][0] != person.resident_code:
        return prior
    if len(ranked) > 1 and ranked[0][1] - ranked[1][1] < SEARCH_GAP_BITS:
        return prior
    if any(
        within_tolerance(record, m.identity, policy)
        for m in household
        if m.resident_code != person.resident_code
    ):
        return prior
    comparison = compare(record, person.identity)
    reasons = _item_reasons(comparison)
    slipped = (
        None if _five_match(comparison) else _slipped_item(record, person.identity, comparison)
    )
    if slipped is not None:
        reasons.discard(_MISMATCH[slipped])
        reasons.add(f"assisted_{slipped}")
    if prior.method == "claimed_number":
        reasons.add("claimed_number_ignored")
    return Decision("linked", person.resident_code, _reasons(reasons), comparison.items, "search")
