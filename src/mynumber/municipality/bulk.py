"""Bulk import and export of residents in DESIGN.md's CSV format.

An import is one transaction in the municipality's database: with any bad row nothing is
committed, unless `skip_invalid`, which commits the good rows and reports the rest. Rows are
validated by the same function as the HTTP API's (:func:`validate_resident`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from mynumber.csvformat import RESIDENT_COLUMNS
from mynumber.db import bulk_insert, is_postgres
from mynumber.errors import MynumberError
from mynumber.municipality import models as m
from mynumber.municipality.domain import EventKind, ResidentItems, Status, validate_resident
from mynumber.municipality.service import MunicipalityService, lock_event_stream, snapshot_of
from mynumber.numbers import parse_municipality

__all__ = ["ImportReport", "RowError", "export_residents", "import_residents"]

CHUNK = 5000
# Rows written per J-LIS transaction: its indexes are keyed by random values (blind index, codes),
# so each commit rewrites a page per row touched; fewer, larger commits rewrite each page once.
WRITE_CHUNK = 50_000
Row = Mapping[str, str | None] | MynumberError
"""A row's fields, or the error that made it unreadable (e.g. the wrong number of fields)."""


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    """Line number in the file (the header is line 1)."""
    field: str | None
    code: str
    en: str
    ja: str


@dataclass
class ImportReport:
    read: int = 0
    imported: int = 0
    committed: bool = False
    errors: list[RowError] = field(default_factory=list)
    municipalities_added: list[str] = field(default_factory=list)


def _error(row: int, code: str, fld: str, en: str, ja: str) -> RowError:
    return RowError(row, fld, code, en, ja)


class _Importer:
    def __init__(
        self,
        svc: MunicipalityService,
        conn: Connection,
        municipality: str | None,
        report: ImportReport,
        create_municipalities: bool = False,
    ) -> None:
        self.svc = svc
        self.conn = conn
        self.default = (
            parse_municipality(municipality, field="municipality") if municipality else None
        )
        self.report = report
        self.today = svc.clock.today()
        self.now = svc.clock.now()
        self.known = set(svc.municipality_codes())
        self.create_municipalities = create_municipalities
        self.locked: set[str] = set()
        self.seen_codes: set[str] = set()
        self.seen_numbers: set[str] = set()
        self.pending: list[tuple[int, ResidentItems, str]] = []

    def chunk(self, rows: list[tuple[int, Row]]) -> None:
        """First pass: check rows against each other and the register; nothing is written and
        J-LIS is not asked for anything yet."""
        good: list[tuple[int, ResidentItems, str]] = []
        for line, raw in rows:
            if isinstance(raw, MynumberError):
                self.report.errors.append(RowError(line, raw.field, raw.code, raw.en, raw.ja))
                continue
            try:
                items = validate_resident(raw, self.today)
            except MynumberError as exc:
                self.report.errors.append(RowError(line, exc.field, exc.code, exc.en, exc.ja))
                continue
            code = items.municipality_code or self.default
            if code is None:
                self.report.errors.append(
                    _error(
                        line,
                        "field.required",
                        "municipality_code",
                        "municipality_code is empty and no --municipality was given.",
                        "municipality_code が空で、--municipality も指定されていません。",
                    )
                )
                continue
            if code not in self.known and not self.create_municipalities:
                self.report.errors.append(
                    _error(
                        line,
                        "municipality.not_found",
                        "municipality_code",
                        f"Municipality {code} is not registered in this deployment "
                        "(add it first, or allow --create-municipalities).",
                        f"市区町村 {code} はこの環境に登録されていません"
                        "（先に登録するか --create-municipalities を指定してください）。",
                    )
                )
                continue
            if err := self._duplicate_in_file(line, items):
                self.report.errors.append(err)
                continue
            good.append((line, items, code))
        self.pending.extend(self._against_register(good))

    def write(self, skip_invalid: bool, progress: Callable[[int, int], None] | None = None) -> None:
        """Second pass, once every row is known to be good (or `skip_invalid`): reserve codes and
        numbers at J-LIS and insert. J-LIS commits on its own, so a file that is refused must not
        get this far: a number adopted for a code nobody holds would refuse the retry."""
        total = len(self.pending)
        for start in range(0, total, WRITE_CHUNK):
            if self.report.errors and not skip_invalid:
                return  # J-LIS refused a row: the file will be rolled back, stop asking it
            self._insert(self.pending[start : start + WRITE_CHUNK])
            if progress:
                progress(min(start + WRITE_CHUNK, total), total)

    def _duplicate_in_file(self, line: int, items: ResidentItems) -> RowError | None:
        if items.resident_code:
            if items.resident_code in self.seen_codes:
                return _error(
                    line,
                    "resident_code.duplicate_in_file",
                    "resident_code",
                    "This resident record code appears earlier in the file.",
                    "この住民票コードはファイル内で重複しています。",
                )
            self.seen_codes.add(items.resident_code)
        if items.individual_number:
            if items.individual_number in self.seen_numbers:
                return _error(
                    line,
                    "individual_number.duplicate_in_file",
                    "individual_number",
                    "This individual number appears earlier in the file.",
                    "この個人番号はファイル内で重複しています。",
                )
            self.seen_numbers.add(items.individual_number)
        return None

    def _against_register(
        self, good: list[tuple[int, ResidentItems, str]]
    ) -> list[tuple[int, ResidentItems, str]]:
        r = m.residents
        codes = [it.resident_code for _, it, _ in good if it.resident_code]
        # A resident code is national: taken if this municipality has any record under it
        # (even a 除票), or another municipality has it as an active resident.
        taken_codes: set[tuple[str, str]] = set()
        active_elsewhere: set[str] = set()
        if codes:
            for row in self.conn.execute(
                select(r.c.municipality_code, r.c.resident_code, r.c.status).where(
                    r.c.resident_code.in_(codes)
                )
            ):
                taken_codes.add((row.municipality_code, row.resident_code))
                if row.status == Status.ACTIVE:
                    active_elsewhere.add(row.resident_code)
        numbers = [it.individual_number for _, it, _ in good if it.individual_number]
        owners = self.svc.numbers.number_owners(numbers) if numbers else {}
        local_numbers: set[bytes] = set()
        if numbers:
            ixs = [self.svc.vault.index(n) for n in numbers]
            local_numbers = set(
                self.conn.execute(
                    select(r.c.number_index).where(r.c.number_index.in_(ixs))
                ).scalars()
            )
        kept = []
        for line, it, code in good:
            if it.resident_code and (
                (code, it.resident_code) in taken_codes or it.resident_code in active_elsewhere
            ):
                self.report.errors.append(
                    _error(
                        line,
                        "resident_code.duplicate_register",
                        "resident_code",
                        "This resident record code is already in the register.",
                        "この住民票コードはすでに住民基本台帳に登録されています。",
                    )
                )
                continue
            if it.individual_number:
                owner = owners.get(it.individual_number)
                if self.svc.vault.index(it.individual_number) in local_numbers:
                    self.report.errors.append(
                        _error(
                            line,
                            "individual_number.duplicate_register",
                            "individual_number",
                            "This individual number is already in the register.",
                            "この個人番号はすでに住民基本台帳に登録されています。",
                        )
                    )
                    continue
                if owner is not None and owner != it.resident_code:
                    self.report.errors.append(
                        _error(
                            line,
                            "individual_number.belongs_to_other",
                            "individual_number",
                            "This individual number is registered to another person.",
                            "この個人番号は別の方に指定されています。",
                        )
                    )
                    continue
            kept.append((line, it, code))
        return kept

    def _ensure_municipality(self, code: str) -> None:
        if code in self.locked:
            return
        lock_event_stream(self.conn, code)
        self.locked.add(code)
        if code in self.known:
            return
        self.conn.execute(m.municipalities.insert().values(code=code, prefecture="", name=""))
        self.known.add(code)
        self.report.municipalities_added.append(code)

    def _insert(self, good: list[tuple[int, ResidentItems, str]]) -> None:
        if not good:
            return
        jlis = self.svc.numbers
        by_code: dict[str, list[tuple[int, ResidentItems]]] = {}
        for line, it, code in good:
            self._ensure_municipality(code)
            by_code.setdefault(code, []).append((line, it))
        residents: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        for code, items in by_code.items():
            missing = sum(1 for _, it in items if not it.resident_code)
            fresh = iter(jlis.allocate_resident_codes(code, missing) if missing else [])
            jlis.reserve_resident_codes(
                code, [it.resident_code for _, it in items if it.resident_code]
            )
            rcs = [(line, it, it.resident_code or next(fresh)) for line, it in items]
            refused = jlis.adopt_numbers(
                {rc: it.individual_number for _, it, rc in rcs if it.individual_number}
            )
            rcs_ok = []
            for line, it, rc in rcs:
                if rc in refused:
                    self.report.errors.append(
                        _error(
                            line,
                            refused[rc],
                            "individual_number",
                            "This individual number does not belong to this resident record code.",
                            "この個人番号はこの住民票コードの方のものではありません。",
                        )
                    )
                else:
                    rcs_ok.append((line, it, rc))
            numbers = jlis.assign_numbers([rc for _, _, rc in rcs_ok])
            for _, it, rc in rcs_ok:
                number = numbers[rc]
                row = {
                    "municipality_code": code,
                    "resident_code": rc,
                    "number_index": self.svc.vault.index(number),
                    "number_enc": self.svc.vault.seal(number),
                    "family_name": it.family_name,
                    "given_name": it.given_name,
                    "family_name_kana": it.family_name_kana,
                    "given_name_kana": it.given_name_kana,
                    "birth_date": it.birth_date,
                    "sex": it.sex,
                    "postal_code": it.postal_code,
                    "address": it.address,
                    "household_id": it.household_id or f"{code}-{secrets.token_hex(5)}",
                    "relationship": it.relationship if it.household_id else "世帯主",
                    "alphabet_name": it.alphabet_name,
                    "nationality": it.nationality,
                    "residence_status": it.residence_status,
                    "period_of_stay_end": it.period_of_stay_end,
                    "domicile": it.domicile,
                    "domicile_head": it.domicile_head,
                    "status": Status.ACTIVE,
                    "status_since": self.today,
                    "address_since": self.today,
                    "updated_seq": 0,
                }
                residents.append(row)
                events.append(
                    {
                        "municipality_code": code,
                        "resident_code": rc,
                        "kind": EventKind.IMPORT,
                        "occurred_on": self.today,
                        "notified_on": self.today,
                        "late": False,
                        "snapshot": snapshot_of(row),
                        "detail": "{}",
                        "recorded_at": self.now,
                    }
                )
        if not residents:
            return
        seqs = _next_seqs(self.conn, len(events))
        for row, ev, seq in zip(residents, events, seqs, strict=True):
            row["updated_seq"] = seq
            ev["seq"] = seq
        bulk_insert(self.conn, m.residents, residents)
        bulk_insert(self.conn, m.events, events)
        self.report.imported += len(residents)


def _next_seqs(conn: Connection, n: int) -> list[int]:
    """`n` new event sequence numbers, reserved inside the current transaction."""
    if is_postgres(conn.engine):
        return list(
            conn.execute(
                text(
                    "SELECT nextval(pg_get_serial_sequence('events', 'seq')) FROM generate_series(1, :n)"
                ),
                {"n": n},
            ).scalars()
        )
    # SQLite: the transaction holds the write lock (BEGIN IMMEDIATE), so max+1.. is ours alone.
    top = conn.execute(text("SELECT COALESCE(MAX(seq), 0) FROM events")).scalar_one()
    return list(range(int(top) + 1, int(top) + 1 + n))


def import_residents(
    svc: MunicipalityService,
    rows: Iterable[tuple[int, Row]],
    *,
    municipality: str | None = None,
    skip_invalid: bool = False,
    create_municipalities: bool = False,
    progress: Callable[[int], None] | None = None,
    written: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Import `rows` (line number, fields); all or nothing unless `skip_invalid`.

    `progress(n)` is called as rows are read and checked; `written(done, total)` as the good
    rows are written (J-LIS numbers, register rows and events)."""
    report = ImportReport()
    with svc.engine.connect() as conn:
        conn.execution_options(writing=True)
        trans = conn.begin()
        try:
            imp = _Importer(svc, conn, municipality, report, create_municipalities)
            batch: list[tuple[int, Row]] = []
            for item in rows:
                batch.append(item)
                report.read += 1
                if len(batch) >= CHUNK:
                    imp.chunk(batch)
                    if progress:
                        progress(len(batch))
                    batch = []
            if batch:
                imp.chunk(batch)
                if progress:
                    progress(len(batch))
            if skip_invalid or not report.errors:
                imp.write(skip_invalid, written)
            report.errors.sort(key=lambda e: e.row)
            if report.errors and not skip_invalid:
                trans.rollback()
                report.imported = 0
            else:
                trans.commit()
                report.committed = True
        except BaseException:
            trans.rollback()
            raise
    if report.committed and report.imported:
        svc.notify()
    return report


def export_residents(
    svc: MunicipalityService, municipality: str | None = None, *, include_closed: bool = False
) -> Iterator[dict[str, str]]:
    """Every resident (of one municipality, or all) as CSV fields, whole numbers included:
    the file is for migrating a register and must be handled as specific personal information."""
    r = m.residents
    q = select(r).order_by(r.c.municipality_code, r.c.id)
    if municipality:
        q = q.where(r.c.municipality_code == parse_municipality(municipality, field="municipality"))
    if not include_closed:
        q = q.where(r.c.status == Status.ACTIVE)
    with svc.engine.connect() as conn:
        for row in conn.execution_options(yield_per=5000).execute(q):
            v = svc.view(row._mapping, whole_number=True)
            out = {col: "" if v.get(col) is None else str(v[col]) for col in RESIDENT_COLUMNS}
            yield out
