"""Demo agencies and exchanges for a seeded deployment (`mynumber serve --seed-residents N`).

Five information holders are registered with the network, each with synthetic business records
for the seeded residents, its codes obtained through J-LIS (by individual number, as an agency
that already holds the numbers would) and its intermediate server's copy refreshed:

===================  ===================  =========================================================
agency id            kind                 records
===================  ===================  =========================================================
``shinjuku-tax``     municipal_tax        income, income bracket, resident tax of adults
``shinjuku-kodomo``  municipal_welfare    child allowance of households with children
``kenpo-mirai``      health_insurer       insurance qualification of most residents
``nenkin``           pension              pension receipt of adults of 20 and over
``jlis``             jlis                 current address of every resident (本人確認情報)
===================  ===================  =========================================================

Then a few hundred exchanges the legal-basis table allows, and a few it does not (recorded as
refusals), so the log, a person's records and the auditor's report have something to show — a
share of them about the demo card holders, so that logging in with a demo card shows records.
Everything is derived from a seed: the same residents give the same records. Seeding again adds
nothing (records and codes are replaced by the same; exchanges only run on an empty network).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mynumber.dates import age_on
from mynumber.municipality.bulk import export_residents

__all__ = ["DEMO_AGENCIES", "DemoAgency", "demo_records", "seed_agencies"]


@dataclass(frozen=True, slots=True)
class DemoAgency:
    agency_id: str
    kind: str
    name_ja: str
    name_en: str


DEMO_AGENCIES = (
    DemoAgency("shinjuku-tax", "municipal_tax", "新宿区 税務課", "Shinjuku City Tax Division"),
    DemoAgency(
        "shinjuku-kodomo",
        "municipal_welfare",
        "新宿区 子ども家庭部",
        "Shinjuku City Children and Families Department",
    ),
    DemoAgency(
        "kenpo-mirai", "health_insurer", "みらい健康保険組合", "Mirai Health Insurance Society"
    ),
    DemoAgency("nenkin", "pension", "日本年金機構", "Japan Pension Service"),
    DemoAgency("jlis", "jlis", "地方公共団体情報システム機構", "J-LIS"),
)

# (requester, task, provider, item, how many): the demo's traffic; the last rows have no basis.
_TRAFFIC = (
    ("shinjuku-kodomo", "child_allowance", "shinjuku-tax", "income", 80),
    ("shinjuku-kodomo", "child_rearing_allowance", "nenkin", "pension_receipt", 20),
    ("kenpo-mirai", "high_cost_medical", "shinjuku-tax", "income_bracket", 60),
    ("nenkin", "pension_benefit", "jlis", "current_address", 60),
    ("shinjuku-tax", "tax_assessment", "nenkin", "pension_receipt", 40),
    ("kenpo-mirai", "qualification_check", "jlis", "current_address", 30),
    ("kenpo-mirai", "high_cost_medical", "shinjuku-tax", "income", 12),
    ("nenkin", "pension_benefit", "shinjuku-tax", "resident_tax", 3),
)


def _internal_id(prefix: str, resident_code: str, seed: int) -> str:
    digest = hashlib.sha256(f"{seed}:{prefix}:{resident_code}".encode()).hexdigest()
    return f"{prefix}{int(digest[:12], 16) % 10**10:010d}"


def _bracket(income: int) -> str:
    """高額療養費の所得区分 (under 70): ア–エ by income, オ when no resident tax is due."""
    if income >= 9_010_000:
        return "ア"
    if income >= 6_000_000:
        return "イ"
    if income >= 2_100_000:
        return "ウ"
    if income >= 450_000:
        return "エ"
    return "オ"


def demo_records(
    residents: Iterable[Mapping[str, str]], today: dt.date, seed: int = 1
) -> dict[str, dict[str, tuple[str, dict[str, Any]]]]:
    """Synthetic business records: agency id → internal id → (individual number, item → value).
    Pure and deterministic in (residents, today, seed)."""
    out: dict[str, dict[str, tuple[str, dict[str, Any]]]] = defaultdict(dict)
    rows = list(residents)
    children: dict[str, int] = defaultdict(int)
    for r in rows:
        if age_on(dt.date.fromisoformat(r["birth_date"]), today) < 18:
            children[r["household_id"]] += 1
    for r in rows:
        rc, number = r["resident_code"], r["individual_number"]
        rng = random.Random(f"{seed}:{rc}")
        age = age_on(dt.date.fromisoformat(r["birth_date"]), today)
        out["jlis"][rc] = (
            number,
            {"current_address": {"postal_code": r["postal_code"], "address": r["address"]}},
        )
        if age >= 18:
            income = 0 if rng.random() < 0.15 else int(rng.lognormvariate(15.0, 0.6)) // 1000 * 1000
            out["shinjuku-tax"][_internal_id("T", rc, seed)] = (
                number,
                {
                    "income": {"year": today.year - 1, "amount": income},
                    "income_bracket": {"year": today.year - 1, "bracket": _bracket(income)},
                    "resident_tax": {
                        "year": today.year,
                        "amount": max(0, (income - 450_000) // 10 // 100 * 100),
                    },
                },
            )
        if rng.random() < 0.7:
            out["kenpo-mirai"][_internal_id("H", rc, seed)] = (
                number,
                {
                    "insurance_qualification": {
                        "insurer_number": "06139999",
                        "status": "被保険者" if age >= 18 else "被扶養者",
                        "since": f"{max(int(r['birth_date'][:4]), today.year - rng.randint(0, 20))}-04-01",
                    }
                },
            )
        if age >= 20:
            receiving = age >= 65 or rng.random() < 0.02
            out["nenkin"][_internal_id("N", rc, seed)] = (
                number,
                {
                    "pension_receipt": {
                        "receiving": receiving,
                        "kind": "老齢基礎年金"
                        if age >= 65
                        else ("障害基礎年金" if receiving else None),
                        "annual": rng.randrange(600_000, 2_400_000, 1000) if receiving else 0,
                    }
                },
            )
        n_children = children[r["household_id"]]
        if r["relationship"] == "世帯主" and n_children and age >= 18:
            out["shinjuku-kodomo"][_internal_id("K", rc, seed)] = (
                number,
                {"child_allowance_status": {"receiving": True, "children": n_children}},
            )
    return dict(out)


def seed_agencies(p: Any, seed: int = 1, progress: Callable[[str], None] | None = None) -> int:
    """Register the demo agencies, give them their records, codes and copies, and run the demo
    traffic on an empty network. Returns the number of exchanges run."""
    say = progress or (lambda _msg: None)
    residents = list(export_residents(p.municipality))
    records = demo_records(residents, p.clock.today(), seed)
    for a in DEMO_AGENCIES:
        p.network.register_agency(
            a.agency_id, a.kind, a.name_ja, a.name_en, p.agencies.public_key(a.agency_id)
        )
        mine = records.get(a.agency_id, {})
        p.agencies.put_records(a.agency_id, {iid: data for iid, (_num, data) in mine.items()})
        p.acquire_codes(a.agency_id, {iid: num for iid, (num, _data) in mine.items()}, "seed")
        p.agencies.refresh_copy(a.agency_id, a.kind)
        say(f"{a.name_ja}: {len(mine):,} records")
    if p.network.counts()["total"]:
        return 0
    # Card holders first, so that logging in with a demo card shows records.
    holders = {c.resident_code for c in p.cards.list_cards(limit=1000)}
    focus = {
        (_internal_id(prefix, rc, seed) if prefix else rc)
        for rc in holders
        for prefix in ("T", "H", "N", "K", "")
    }
    rng = random.Random(seed)
    ran = 0
    for requester, task, provider, item, n in _TRAFFIC:
        ids = p.agencies.internal_ids(requester)
        first = [i for i in ids if i in focus][: max(1, n // 4)]
        rest = [i for i in ids if i not in set(first)]
        for iid in first + rng.sample(rest, min(n - len(first), len(rest))):
            message, signature = p.agencies.sign_request(requester, iid, task, provider, item)
            p.network.exchange(message, signature)
            ran += 1
    say(f"{ran} exchanges between {len(DEMO_AGENCIES)} agencies recorded in the log")
    return ran
