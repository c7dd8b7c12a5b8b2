"""Batch linkage at scale: a whole roll against a whole register, in two stages (DESIGN I3).

This module computes; it does no storage I/O. Its evidence is a :class:`Register` — the J-LIS
mirror's identities with their households, as an Arrow table, and a resolver of claimed numbers —
built by :mod:`mynumber.agency.batch` from the platform's roles, or by ``benchmarks/linkage`` from
generated data. What it returns (:class:`BatchDecision`) is stored by the caller.

Stage 1 (deterministic): each record's normalised keys are joined in DuckDB with the register on
(kana key — current or earlier —, birth date, sex); the owner of a claimed number and the owner's
household are looked up. Every decision is then made by the same pure functions as a single
enrolment (:func:`mynumber.agency.linkage.decide_claim`, :func:`~.decide_query`), so a roll links
exactly what one-by-one enrolment would.

Stage 2 (probabilistic, Splink on DuckDB) for every record stage 1 did not link: Splink proposes
candidates with Japanese-aware comparisons; I3 disposes (:func:`mynumber.agency.linkage.decide_search`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from mynumber import duck
from mynumber.agency.linkage import (
    MAX_CANDIDATES,
    POLICIES,
    Candidate,
    Decision,
    decide_claim,
    decide_query,
    decide_search,
    how_matched,
    within_tolerance,
)
from mynumber.agency.roll import RollRecord
from mynumber.errors import ValidationError
from mynumber.identity import FiveItems, Keys, RegisteredIdentity, keys_of
from mynumber.numbers import parse_individual

__all__ = [
    "REGISTER_SCHEMA",
    "BatchDecision",
    "BatchResult",
    "Progress",
    "Register",
    "address_levels",
    "link_records",
    "register_table",
    "split_kana",
]

REGISTER_SCHEMA = pa.schema(
    [
        ("resident_code", pa.string()),
        ("status", pa.string()),  # active | moved_out | deceased
        ("household_id", pa.string()),  # may be null
        ("name", pa.string()),  # full kanji name as registered
        ("name_kana", pa.string()),  # full kana name as registered
        ("birth_date", pa.date32()),
        ("sex", pa.int8()),
        ("address", pa.string()),
        ("family_kana_key", pa.string()),  # the family name's kana key; may be null
        ("name_key", pa.string()),
        ("kana_key", pa.string()),
        ("address_key", pa.string()),
        ("earlier_name_keys", pa.list_(pa.string())),
        ("earlier_kana_keys", pa.list_(pa.string())),
        ("earlier_address_keys", pa.list_(pa.string())),
    ]
)
"""One row per person J-LIS knows. Keys are :func:`mynumber.identity.keys_of` of the values."""

Resolver = Callable[[Sequence[str]], Mapping[str, tuple[str, str | None]]]
"""Claimed numbers (already valid: 12 digits, check digit) → (``active`` | ``retired`` |
``unknown``, owner's resident code or ``None``), as :meth:`JlisService.number_status` answers."""

Progress = Callable[[str, int], Callable[[int], None]]
"""``progress(stage_label, total)`` returns a function to call with the count just done."""


@dataclass(frozen=True)
class Register:
    people: pa.Table
    """:data:`REGISTER_SCHEMA`."""
    resolve: Resolver


def register_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """A :data:`REGISTER_SCHEMA` table from plain rows with keys ``resident_code``, ``status``,
    ``household_id``, ``name``, ``name_kana``, ``birth_date`` (``date`` or ISO text), ``sex``,
    ``address`` and optionally ``family_name_kana``, ``earlier_names``, ``earlier_kanas``, ``earlier_addresses`` (values
    as written; their keys are computed here)."""
    cols: dict[str, list[Any]] = {f.name: [] for f in REGISTER_SCHEMA}
    for r in rows:
        k = keys_of(r["name"], r["name_kana"], r["address"])
        bd = r["birth_date"]
        cols["resident_code"].append(r["resident_code"])
        cols["status"].append(r.get("status", "active"))
        cols["household_id"].append(r.get("household_id"))
        cols["name"].append(r["name"])
        cols["name_kana"].append(r["name_kana"])
        cols["birth_date"].append(bd if isinstance(bd, dt.date) else dt.date.fromisoformat(bd))
        cols["sex"].append(int(r["sex"]))
        cols["address"].append(r["address"])
        family = r.get("family_name_kana")
        cols["family_kana_key"].append(keys_of("", family, "").name_kana if family else None)
        cols["name_key"].append(k.name)
        cols["kana_key"].append(k.name_kana)
        cols["address_key"].append(k.address)
        cols["earlier_name_keys"].append(
            [keys_of(v, "", "").name for v in r.get("earlier_names", ())]
        )
        cols["earlier_kana_keys"].append(
            [keys_of("", v, "").name_kana for v in r.get("earlier_kanas", ())]
        )
        cols["earlier_address_keys"].append(
            [keys_of("", "", v).address for v in r.get("earlier_addresses", ())]
        )
    return pa.table(cols, schema=REGISTER_SCHEMA)


@dataclass(frozen=True, slots=True)
class BatchDecision:
    record_id: str
    decision: str
    """``linked`` | ``review`` | ``unmatched`` | ``rejected``."""
    resident_code: str | None
    """Linked to (``linked``), or the best candidate (``review``)."""
    reasons: tuple[str, ...]
    """Codes of :data:`mynumber.agency.linkage.REASONS`."""
    method: str
    """``claimed_number`` | ``five_item_query`` | ``search`` (stage 2)."""
    stage: str
    """``deterministic`` | ``probabilistic``."""
    score: float | None = None
    """Splink's match probability for ``resident_code`` (stage 2 only)."""
    candidates: tuple[str, ...] = ()
    """Resident codes a reviewer is shown, best first (at most 3); the linked person for links."""
    items: Mapping[str, str] = field(default_factory=dict)
    """Provenance: item → ``match`` | ``match_normalised`` | ``earlier`` | ``mismatch``."""
    weight: float | None = None
    """Splink's match weight (bits) for the best candidate the probabilistic stage ranked."""


@dataclass(frozen=True, slots=True)
class BatchResult:
    decisions: list[BatchDecision]
    """One per record, in roll order."""
    stage_seconds: dict[str, float]
    """Wall time of each stage (``normalise``, ``deterministic``, ``probabilistic``, …)."""


# -- computing ----------------------------------------------------------------------------------

_PREFECTURE = "(?:東京都|北海道|京都府|大阪府|.{2,3}?県)"
_ADDRESS_LEVELS_SQL = f"""
    regexp_extract(address_key, '^({_PREFECTURE})', 1) AS addr_pref,
    regexp_extract(address_key,
                   '^({_PREFECTURE}(?:.+?郡.+?[町村]|.+?市.+?区|.+?[市区町村]))', 1) AS addr_muni,
    regexp_extract(address_key, '^([^0-9]*[0-9]+)', 1) AS addr_chome,
    regexp_extract(address_key, '^([^0-9]*[0-9]+[^0-9]+[0-9]+)', 1) AS addr_block
"""
"""The address levels the probabilistic stage compares, from a normalised address key:
prefecture, municipality (a designated city's ward included), 丁目 (up to the first number) and
番 (up to the second); a level that cannot be read is the empty string."""


def address_levels(keys: Sequence[str]) -> list[tuple[str, str, str, str]]:
    """:data:`_ADDRESS_LEVELS_SQL` applied to `keys` (for tests and for reading): the very
    expressions the probabilistic stage uses."""
    con = duck.connect()
    con.register("a", pa.table({"address_key": pa.array(keys, pa.string())}))
    rows = con.sql(f"SELECT {_ADDRESS_LEVELS_SQL} FROM a").fetchall()
    con.close()
    return [(str(p), str(m), str(c), str(b)) for p, m, c, b in rows]


def split_kana(key: str, families: frozenset[str]) -> tuple[str, str]:
    """A full kana key split into family and given name by the longest family name of the
    register it starts with (names are written family first); unknown family → (key, "")."""
    for n in range(min(len(key) - 1, 8), 0, -1):
        if key[:n] in families:
            return key[:n], key[n:]
    return key, ""


def candidates(table: pa.Table) -> list[Candidate]:
    """Register rows (:data:`REGISTER_SCHEMA`) as the evidence the linkage core compares; read
    column by column (row dicts cost twice as much at a million rows)."""
    col = {name: table.column(name).to_pylist() for name in table.column_names}
    return [
        Candidate(
            rc,
            RegisteredIdentity(
                FiveItems(nm, kn, bd, sx, ad), tuple(en or ()), tuple(ek or ()), tuple(ea or ())
            ),
            st,
            hh,
        )
        for rc, st, hh, nm, kn, bd, sx, ad, en, ek, ea in zip(
            col["resident_code"],
            col["status"],
            col["household_id"],
            col["name"],
            col["name_kana"],
            col["birth_date"],
            col["sex"],
            col["address"],
            col["earlier_name_keys"],
            col["earlier_kana_keys"],
            col["earlier_address_keys"],
            strict=True,
        )
    ]


class _Ticker:
    def __init__(self, progress: Progress | None, label: str, total: int) -> None:
        self._advance = progress(label, total) if progress is not None else None

    def __call__(self, n: int = 1) -> None:
        if self._advance is not None:
            self._advance(n)


def _pairs(con: duckdb.DuckDBPyConnection, sql: str) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for idx, rc in con.execute(sql).fetchall():
        out.setdefault(int(idx), []).append(str(rc))
    return out


_EXPLODED = """
CREATE TEMP TABLE {name} AS
SELECT resident_code, {col} AS k, birth_date, sex FROM people
UNION ALL
SELECT resident_code, unnest({earlier}) AS k, birth_date, sex FROM people
"""


MAY_BE_TOLERANT = """
p.sex = r.sex
AND (p.name_key = r.name_key OR list_contains(p.earlier_name_keys, r.name_key))
AND (p.address_key = r.address_key OR list_contains(p.earlier_address_keys, r.address_key))
"""
"""A necessary condition for :func:`~mynumber.agency.linkage.within_tolerance` under either
policy, on keys (``p`` a register row, ``r`` a roll row): only the kana and the birth date may
slip, so sex, name and address must match, current or earlier. It only shrinks the pool before
the exact Python check; it never decides (tests/test_bulk_link.py proves it is necessary)."""

_POOL = f"""
SELECT DISTINCT r.idx, p.resident_code
FROM residue JOIN roll r USING (idx)
  JOIN pn ON pn.k = r.name_key AND pn.sex = r.sex
  JOIN people p ON p.resident_code = pn.resident_code
WHERE {MAY_BE_TOLERANT}
"""
"""Stage 2's pool for each residue record: everyone who passes :data:`MAY_BE_TOLERANT` (``pn``
holds current and earlier name keys). It holds everyone within tolerance, as
:func:`~mynumber.agency.linkage.decide_search` requires, and few others."""


_OWNER_HOUSEHOLDS = (
    """
SELECT DISTINCT p.household_id
FROM claim_owners c JOIN roll r USING (idx) JOIN people p ON p.resident_code = c.owner
WHERE p.household_id IS NOT NULL AND (p.status = 'deceased' OR NOT (
  p.birth_date = r.birth_date
  AND (p.kana_key = r.kana_key OR list_contains(p.earlier_kana_keys, r.kana_key))
  AND """
    + MAY_BE_TOLERANT
    + "))"
)


def roll_table(records: Sequence[RollRecord], keys: Sequence[Keys]) -> pa.Table:
    """The roll as the stages' SQL sees it: ``idx`` (position), keys, birth date and sex."""
    return pa.table(
        {
            "idx": pa.array(range(len(records)), pa.int64()),
            "name_key": [k.name for k in keys],
            "kana_key": [k.name_kana for k in keys],
            "birth_date": pa.array([r.items.birth_date for r in records], pa.date32()),
            "sex": pa.array([r.items.sex for r in records], pa.int8()),
            "address_key": [k.address for k in keys],
        }
    )


def link_records(
    register: Register,
    records: Sequence[RollRecord],
    *,
    policy: str = "strict",
    progress: Progress | None = None,
) -> BatchResult:
    """Decide every record of a checked roll against `register`; see the module docstring."""
    if policy not in POLICIES:
        raise ValueError(f"unknown linkage policy {policy!r}; expected one of {POLICIES}")
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    # -- normalise --------------------------------------------------------------------------
    tick = _Ticker(progress, "normalise", len(records))
    keys: list[Keys] = []
    for r in records:
        keys.append(keys_of(r.items.name, r.items.name_kana, r.items.address))
        tick()
    roll = roll_table(records, keys)
    claims: dict[int, str] = {}
    for i, r in enumerate(records):
        if r.claimed is not None:
            with contextlib.suppress(ValidationError):
                claims[i] = parse_individual(r.claimed)
    now = time.perf_counter()
    seconds["normalise"], started = now - started, now

    # -- stage 1: deterministic ---------------------------------------------------------------
    con = duck.connect()
    # A table of DuckDB's own: joins against a registered Arrow table scan it again each time
    # (the pool query took 20 s instead of 0.3 s at 100k).
    con.register("register_people", register.people)
    con.execute("CREATE TEMP TABLE people AS SELECT * FROM register_people")
    con.unregister("register_people")
    con.register("roll", roll)
    con.execute(
        _EXPLODED.format(name="pk", col="kana_key", earlier="earlier_kana_keys")
        + ";"
        + _EXPLODED.format(name="pn", col="name_key", earlier="earlier_name_keys")
    )
    exact = _pairs(
        con,
        "SELECT DISTINCT roll.idx, pk.resident_code FROM roll JOIN pk ON pk.k = roll.kana_key"
        " AND pk.birth_date = roll.birth_date AND pk.sex = roll.sex",
    )
    statuses = register.resolve(sorted(set(claims.values())))
    owners = {st[1] for st in statuses.values() if st[1] is not None}
    needed: set[str] = set(owners).union(*exact.values()) if exact else set(owners)
    cache = _Cache(con)
    cache.fetch(needed)
    # Households only where decide_claim may look at them (the owner is not a five-item match
    # on keys, or is deceased); any other is fetched when asked for, so this only saves time.
    if claims:
        con.register(
            "claim_owners",
            pa.table(
                {
                    "idx": pa.array(list(claims), pa.int64()),
                    "owner": [statuses.get(n, ("unknown", None))[1] for n in claims.values()],
                }
            ),
        )
        cache.fetch_households(h for (h,) in con.execute(_OWNER_HOUSEHOLDS).fetchall())

    tick = _Ticker(progress, "deterministic", len(records))
    decisions: list[Decision] = []
    for i, r in enumerate(records):
        if r.claimed is None:
            matches = [cache.people[rc] for rc in exact.get(i, ())]
            five = [c for c in matches if within_tolerance(r.items, c.identity, "strict")]
            decisions.append(decide_query(r.items, five))
        elif i not in claims:
            decisions.append(decide_claim(r.items, r.claimed, None, "unknown", [], policy))
        else:
            status, owner_rc = statuses.get(claims[i], ("unknown", None))
            owner = cache.people.get(owner_rc) if owner_rc else None
            members = functools.partial(cache.household, owner)
            decisions.append(decide_claim(r.items, claims[i], owner, status, members, policy))
        tick()
    now = time.perf_counter()
    seconds["deterministic"], started = now - started, now

    # -- stage 2: probabilistic -----------------------------------------------------------------
    residue = [i for i, d in enumerate(decisions) if d.decision != "linked"]
    ranked: dict[int, list[tuple[str, float, float]]] = {}
    pool_pairs: dict[int, list[str]] = {}
    if residue:
        ranked = _splink_rank(con, register, records, keys, residue, progress)
    now = time.perf_counter()
    seconds["probabilistic"], started = now - started, now

    tick = _Ticker(progress, "decide", len(residue))
    if residue:
        con.register("residue", pa.table({"idx": pa.array(residue, pa.int64())}))
        pool_pairs = _pairs(con, _POOL)
        cache.fetch(set().union(*pool_pairs.values()) if pool_pairs else set())
        cache.fetch({rc for v in ranked.values() for rc, _w, _p in v[:MAX_CANDIDATES]})
    # The pool's members within tolerance, computed once (decide_search looks at no others).
    pools: dict[int, list[Candidate]] = {}
    sole: dict[int, Candidate] = {}
    for i in residue:
        pool = [cache.people[rc] for rc in pool_pairs.get(i, ())]
        pools[i] = [c for c in pool if within_tolerance(records[i].items, c.identity, policy)]
        if len(pools[i]) == 1:
            sole[i] = pools[i][0]
    cache.fetch_households({c.household_id for c in sole.values()})
    out: list[BatchDecision] = []
    for i, r in enumerate(records):
        d = decisions[i]
        if d.decision == "linked":
            out.append(
                BatchDecision(
                    r.record_id,
                    "linked",
                    d.resident_code,
                    d.reasons,
                    d.method,
                    "deterministic",
                    1.0,
                    (d.resident_code,) if d.resident_code else (),
                    {x.item: how_matched(x) for x in d.matched},
                )
            )
            continue
        tick()
        top = ranked.get(i, [])
        household = cache.household(sole[i]) if i in sole else []
        ranking = [(rc, w) for rc, w, _p in top]
        s = decide_search(r.items, d, pools[i], ranking, household, policy)
        prob = {rc: p for rc, _w, p in top}
        if s is not d:
            out.append(
                BatchDecision(
                    r.record_id,
                    "linked",
                    s.resident_code,
                    s.reasons,
                    s.method,
                    "probabilistic",
                    prob.get(s.resident_code or ""),
                    (s.resident_code,) if s.resident_code else (),
                    {x.item: how_matched(x) for x in s.matched},
                    top[0][1],
                )
            )
            continue
        shown = ([d.resident_code] if d.resident_code else []) + [rc for rc, _w, _p in top]
        candidates = tuple(dict.fromkeys(shown))[:MAX_CANDIDATES]
        best = d.resident_code or (candidates[0] if candidates else None)
        out.append(
            BatchDecision(
                r.record_id,
                d.decision,
                best,
                d.reasons,
                d.method,
                "probabilistic" if top else "deterministic",
                prob.get(best or ""),
                candidates,
                {x.item: how_matched(x) for x in d.matched},
                top[0][1] if top else None,
            )
        )
    seconds["decide"] = time.perf_counter() - started
    con.close()
    return BatchResult(out, seconds)


class _Cache:
    """Register rows as :class:`Candidate` evidence, fetched only for the people needed."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self.people: dict[str, Candidate] = {}
        self.members: dict[str, list[str]] = {}

    def _rows(self, column: str, values: list[str]) -> list[Candidate]:
        """Register rows whose `column` is one of `values`."""
        self._con.register("wanted", pa.table({"v": pa.array(values, pa.string())}))
        rows = self._con.sql(f"SELECT p.* FROM people p JOIN wanted w ON p.{column} = w.v")
        table = rows.to_arrow_table()
        self._con.unregister("wanted")
        return [] if table is None else candidates(table)

    def fetch(self, codes: Iterable[str]) -> None:
        missing = [c for c in codes if c not in self.people]
        for c in self._rows("resident_code", missing) if missing else []:
            self.people[c.resident_code] = c

    def fetch_households(self, ids: Iterable[str | None]) -> None:
        missing = [h for h in ids if h is not None and h not in self.members]
        for h in missing:
            self.members[h] = []
        for c in self._rows("household_id", missing) if missing else []:
            c = self.people.setdefault(c.resident_code, c)
            self.members[str(c.household_id)].append(c.resident_code)

    def household(self, person: Candidate | None) -> list[Candidate]:
        if person is None or person.household_id is None:
            return []
        if person.household_id not in self.members:
            self.fetch_households([person.household_id])
        # As MunicipalityService.household_of: the person, and the members still active.
        return [
            c
            for c in (self.people[rc] for rc in self.members[person.household_id])
            if c.status == "active" or c.resident_code == person.resident_code
        ]


# -- stage 2: Splink ----------------------------------------------------------------------------

_SPLINK_COLUMNS = (
    """
    {uid} AS unique_id, family_kana, given_kana, name_key, name_keys, kana_key, kana_keys,
    strftime(birth_date, '%Y%m%d') AS birth, year(birth_date) AS by,
    strftime(birth_date, '%m%d') AS md, sex, address_key, address_keys,
"""
    + _ADDRESS_LEVELS_SQL
)


def _level(sql: str, label: str, m: float, tf: str | None = None) -> Any:
    from splink.comparison_level_library import CustomLevel

    level = CustomLevel(sql, label_for_charts=label)
    if tf is not None:
        return level.configure(
            m_probability=m, tf_adjustment_column=tf, disable_tf_exact_match_detection=True
        )
    return level.configure(m_probability=m)


def _comparisons() -> list[Any]:
    """Japanese-aware comparisons on the normalised keys. The m probabilities are the error
    rates this project assumes for agency records (docs/design.md, "Batch linkage"); the u
    probabilities and term frequencies are measured on the data."""
    from splink.comparison_level_library import NullLevel
    from splink.comparison_library import CustomComparison

    def null(col: str) -> Any:
        return NullLevel(col)

    return [
        CustomComparison(
            [
                null("family_kana"),
                _level("family_kana_l = family_kana_r", "family kana", 0.85, "family_kana"),
                _level(
                    "list_contains(kana_keys_r, kana_key_l) OR list_contains(kana_keys_l, kana_key_r)",
                    "an earlier kana",
                    0.05,
                ),
                _level("levenshtein(family_kana_l, family_kana_r) <= 1", "one kana off", 0.04),
                _level("TRUE", "else", 0.06),
            ],
            output_column_name="family_kana",
        ),
        CustomComparison(
            [
                null("given_kana"),
                _level("given_kana_l = given_kana_r", "given kana", 0.93, "given_kana"),
                _level("levenshtein(given_kana_l, given_kana_r) <= 1", "one kana off", 0.04),
                _level("TRUE", "else", 0.03),
            ],
            output_column_name="given_kana",
        ),
        CustomComparison(
            [
                null("name_key"),
                _level(
                    "list_contains(name_keys_r, name_key_l) OR list_contains(name_keys_l, name_key_r)",
                    "name (current or earlier)",
                    0.90,
                    "name_key",
                ),
                _level("jaro_winkler_similarity(name_key_l, name_key_r) >= 0.8", "similar", 0.06),
                _level("TRUE", "else", 0.04),
            ],
            output_column_name="name",
        ),
        CustomComparison(
            [
                _level("birth_l = birth_r", "birth date", 0.93),
                _level(
                    "hamming(birth_l, birth_r) = 1 OR (by_l = by_r"
                    " AND substr(md_l, 1, 2) = substr(md_r, 3, 2)"
                    " AND substr(md_l, 3, 2) = substr(md_r, 1, 2))",
                    "one digit / day-month swap",
                    0.04,
                ),
                _level("abs(by_l - by_r) = 1 AND md_l = md_r", "a year off", 0.015),
                _level("TRUE", "else", 0.015),
            ],
            output_column_name="birth_date",
        ),
        CustomComparison(
            [_level("sex_l = sex_r", "sex", 0.995), _level("TRUE", "else", 0.005)],
            output_column_name="sex",
        ),
        CustomComparison(
            [
                null("address_key"),
                _level(
                    "list_contains(address_keys_r, address_key_l)"
                    " OR list_contains(address_keys_l, address_key_r)",
                    "address (current or earlier)",
                    0.80,
                ),
                _level("addr_block_l <> '' AND addr_block_l = addr_block_r", "番", 0.05),
                _level("addr_chome_l <> '' AND addr_chome_l = addr_chome_r", "丁目", 0.04),
                _level("addr_muni_l <> '' AND addr_muni_l = addr_muni_r", "municipality", 0.05),
                _level("addr_pref_l <> '' AND addr_pref_l = addr_pref_r", "prefecture", 0.03),
                _level("TRUE", "else", 0.03),
            ],
            output_column_name="address",
        ),
    ]


def _splink_rank(
    con: duckdb.DuckDBPyConnection,
    register: Register,
    records: Sequence[RollRecord],
    keys: Sequence[Keys],
    residue: Sequence[int],
    progress: Progress | None,
) -> dict[int, list[tuple[str, float, float]]]:
    """Splink's best candidates (resident code, match weight, probability), up to 4 per record,
    for the records of `residue`."""
    import logging

    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    tick = _Ticker(progress, "probabilistic", 4)
    fam = con.execute(
        "SELECT family_kana_key FROM people WHERE family_kana_key IS NOT NULL"
        " GROUP BY family_kana_key"
    ).fetchall()
    families = frozenset(str(f) for (f,) in fam)
    split = [split_kana(keys[i].name_kana, families) for i in residue]
    roll2 = pa.table(
        {
            "idx": pa.array(residue, pa.int64()),
            "family_kana": [f or None for f, _g in split],
            "given_kana": [g or None for _f, g in split],
            "name_key": [keys[i].name or None for i in residue],
            "kana_key": [keys[i].name_kana or None for i in residue],
            "address_key": [keys[i].address or None for i in residue],
            "birth_date": pa.array([records[i].items.birth_date for i in residue], pa.date32()),
            "sex": pa.array([records[i].items.sex for i in residue], pa.int8()),
        }
    )
    con.register("roll2", roll2)
    left = con.sql(
        "SELECT "
        + _SPLINK_COLUMNS.replace("{uid}", "'r' || idx::VARCHAR")
        + " FROM (SELECT *, [name_key] AS name_keys, [kana_key] AS kana_keys,"
        " [address_key] AS address_keys FROM roll2)"
    ).to_arrow_table()
    right = con.sql(
        "SELECT "
        + _SPLINK_COLUMNS.replace("{uid}", "resident_code")
        + " FROM (SELECT *, coalesce(family_kana_key, kana_key) AS family_kana,"
        " CASE WHEN family_kana_key IS NULL THEN NULL"
        " ELSE substr(kana_key, length(family_kana_key) + 1) END AS given_kana,"
        " list_prepend(name_key, earlier_name_keys) AS name_keys,"
        " list_prepend(kana_key, earlier_kana_keys) AS kana_keys,"
        " list_prepend(address_key, earlier_address_keys) AS address_keys FROM people)"
    ).to_arrow_table()
    tick()
    splink_con = duck.connect()
    try:
        db = DuckDBAPI(connection=splink_con)
        settings = SettingsCreator(
            link_type="link_only",
            unique_id_column_name="unique_id",
            comparisons=_comparisons(),
            blocking_rules_to_generate_predictions=[
                block_on("kana_key", "birth"),
                block_on("name_key", "birth"),
                block_on("given_kana", "birth", "sex"),
                block_on("kana_key", "sex", "addr_chome"),
                block_on("birth", "sex", "addr_block"),
                block_on("name_key", "sex", "addr_chome"),
                block_on("name_key", "sex", "by"),
            ],
            probability_two_random_records_match=1 / max(register.people.num_rows, 2),
            retain_matching_columns=False,  # ids and weights only: 1M × 500k makes ~10⁸ pairs
            retain_intermediate_calculation_columns=False,
        )
        linker = Linker(
            [
                db.register(left, dataset_display_name="roll"),
                db.register(right, dataset_display_name="register"),
            ],
            settings,
            log_level=logging.ERROR,
        )
        pairs = min(2_000_000, len(residue) * register.people.num_rows)
        linker.training.estimate_u_using_random_sampling(max_pairs=pairs, seed=5)
        tick()
        predictions = linker.inference.predict(threshold_match_weight=-10)
        tick()
        # Reduced where Splink left them, in its own connection: never copied out whole.
        rows = splink_con.execute(
            f"""
            WITH p AS (
                SELECT CASE WHEN unique_id_l LIKE 'r%' THEN unique_id_l ELSE unique_id_r END AS rid,
                       CASE WHEN unique_id_l LIKE 'r%' THEN unique_id_r ELSE unique_id_l END AS rc,
                       match_weight, match_probability
                FROM {predictions.physical_name}
            ), best AS (
                SELECT rid, rc, max(match_weight) AS w, max(match_probability) AS prob
                FROM p GROUP BY rid, rc
            )
            SELECT rid, rc, w, prob FROM (
                SELECT *, row_number() OVER (PARTITION BY rid ORDER BY w DESC, rc) AS n FROM best
            ) WHERE n <= 4 ORDER BY rid, n
            """
        ).fetchall()
    finally:
        splink_con.close()
    tick()
    out: dict[int, list[tuple[str, float, float]]] = {}
    for rid, rc, w, prob in rows:
        out.setdefault(int(rid[1:]), []).append((str(rc), float(w), float(prob)))
    return out
