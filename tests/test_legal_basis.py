"""The table of allowed exchanges: the packaged rows, what they allow and refuse, malformed tables
refused with the row and field named, and `find` against an independent reading of `rows()`."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mynumber.network.legal_basis import (
    ITEMS,
    KINDS,
    Basis,
    LegalBasisError,
    LegalBasisTable,
)

TABLE = LegalBasisTable.load()

# (requester_kind, task, provider_kind, item) the brief requires the packaged table to allow.
REQUIRED = [
    ("municipal_welfare", "child_allowance", "municipal_tax", "income"),
    ("municipal_welfare", "child_allowance", "municipal_tax", "income_bracket"),
    ("municipal_welfare", "child_rearing_allowance", "pension", "pension_receipt"),
    ("municipal_welfare", "child_rearing_allowance", "municipal_tax", "income"),
    ("health_insurer", "high_cost_medical", "municipal_tax", "income_bracket"),
    ("pension", "pension_benefit", "jlis", "current_address"),
    ("municipal_tax", "tax_assessment", "pension", "pension_receipt"),
    ("health_insurer", "qualification_check", "jlis", "current_address"),
    ("municipal_welfare", "national_health_insurance", "health_insurer", "insurance_qualification"),
]

NOT_ALLOWED = [
    # a health insurer gets the income bracket for 高額療養費, never the income itself
    ("health_insurer", "high_cost_medical", "municipal_tax", "income"),
    ("pension", "pension_benefit", "municipal_tax", "resident_tax"),
    ("pension", "pension_support_benefit", "municipal_tax", "resident_tax"),
    # a task of one kind of agency is not a task of another
    ("health_insurer", "child_allowance", "municipal_tax", "income"),
    # right requester and provider, wrong task
    ("municipal_welfare", "child_rearing_allowance", "municipal_tax", "income_bracket"),
    ("municipal_tax", "tax_assessment", "jlis", "current_address"),
    ("jlis", "pension_benefit", "pension", "pension_receipt"),
    ("municipal_welfare", "unknown_task", "municipal_tax", "income"),
]

GOOD_ROW = """
[[basis]]
id = "child_allowance.income"
requester_kind = "municipal_welfare"
task = "child_allowance"
task_ja = "児童手当の支給に関する事務"
task_en = "Payment of child allowance"
provider_kind = "municipal_tax"
items = ["income", "income_bracket"]
law = "児童手当法"
note_en = "Income test."
"""

OTHER_ROW = """
[[basis]]
id = "high_cost_medical.income_bracket"
requester_kind = "health_insurer"
task = "high_cost_medical"
task_ja = "高額療養費の支給に関する事務"
task_en = "Payment of high-cost medical expense benefit"
provider_kind = "municipal_tax"
items = ["income_bracket"]
law = "健康保険法"
note_en = "Ceiling on the member's share."
"""


def test_packaged_table_loads_and_uses_the_vocabularies() -> None:
    rows = TABLE.rows()
    assert len(rows) >= len({(r, t, p) for r, t, p, _ in REQUIRED})
    assert len({b.id for b in rows}) == len(rows)
    for basis in rows:
        assert basis.id.isascii() and basis.task.isascii()
        assert basis.requester_kind in KINDS and basis.provider_kind in KINDS
        assert basis.items and all(item in ITEMS[basis.provider_kind] for item in basis.items)
        assert basis.task_ja and basis.task_en and basis.law and basis.note_en
        assert TABLE.get(basis.id) == basis
    assert TABLE.get("no.such.row") is None
    # every agency kind and every item is used somewhere
    assert {b.requester_kind for b in rows} | {b.provider_kind for b in rows} == set(KINDS)
    offered = {(b.provider_kind, item) for b in rows for item in b.items}
    assert offered == {(kind, item) for kind, items in ITEMS.items() for item in items}


def test_the_packaged_file_ships_in_the_package() -> None:
    from importlib import resources

    text = resources.files("mynumber.network").joinpath("legal_basis.toml").read_text("utf-8")
    assert "NOT A LEGAL REFERENCE" in text
    assert LegalBasisTable.load(text).rows() == TABLE.rows()


@pytest.mark.parametrize("exchange", REQUIRED, ids="/".join)
def test_required_exchange_is_allowed(exchange: tuple[str, str, str, str]) -> None:
    requester_kind, task, provider_kind, item = exchange
    basis = TABLE.find(*exchange)
    assert basis is not None
    assert (basis.requester_kind, basis.task, basis.provider_kind) == (
        requester_kind,
        task,
        provider_kind,
    )
    assert item in basis.items
    assert basis in TABLE.tasks_of(requester_kind)


@pytest.mark.parametrize("exchange", NOT_ALLOWED, ids="/".join)
def test_unlisted_exchange_is_not_allowed(exchange: tuple[str, str, str, str]) -> None:
    assert TABLE.find(*exchange) is None


def test_tasks_of() -> None:
    welfare = TABLE.tasks_of("municipal_welfare")
    assert {b.task for b in welfare} >= {
        "child_allowance",
        "child_rearing_allowance",
        "national_health_insurance",
    }
    assert all(b.requester_kind == "municipal_welfare" for b in welfare)
    assert [b for b in TABLE.rows() if b.requester_kind == "municipal_welfare"] == welfare
    assert TABLE.tasks_of("nobody") == []


def test_rows_is_a_copy() -> None:
    rows = TABLE.rows()
    rows.clear()
    assert TABLE.rows()


def test_a_minimal_table() -> None:
    table = LegalBasisTable.load(GOOD_ROW + OTHER_ROW)
    assert [b.id for b in table.rows()] == [
        "child_allowance.income",
        "high_cost_medical.income_bracket",
    ]
    assert table.find("municipal_welfare", "child_allowance", "municipal_tax", "income") == Basis(
        id="child_allowance.income",
        requester_kind="municipal_welfare",
        task="child_allowance",
        task_ja="児童手当の支給に関する事務",
        task_en="Payment of child allowance",
        provider_kind="municipal_tax",
        items=("income", "income_bracket"),
        law="児童手当法",
        note_en="Income test.",
    )


def _second(replace: str, by: str) -> str:
    """A table whose second row is OTHER_ROW with one line changed."""
    assert replace in OTHER_ROW
    return GOOD_ROW + OTHER_ROW.replace(replace, by)


MALFORMED = [
    pytest.param(
        _second('requester_kind = "health_insurer"', 'requester_kind = "hospital"'),
        2,
        "requester_kind",
        "unknown agency kind",
        id="unknown-requester-kind",
    ),
    pytest.param(
        _second('provider_kind = "municipal_tax"', 'provider_kind = "tax_office"'),
        2,
        "provider_kind",
        "unknown agency kind",
        id="unknown-provider-kind",
    ),
    pytest.param(
        _second('items = ["income_bracket"]', 'items = ["pension_receipt"]'),
        2,
        "items",
        "offers no item 'pension_receipt'",
        id="item-of-another-provider",
    ),
    pytest.param(
        _second('items = ["income_bracket"]', 'items = ["salary"]'),
        2,
        "items",
        "offers no item 'salary'",
        id="unknown-item",
    ),
    pytest.param(
        _second('id = "high_cost_medical.income_bracket"', 'id = "child_allowance.income"'),
        2,
        "id",
        "duplicate id",
        id="duplicate-id",
    ),
    pytest.param(
        GOOD_ROW
        + GOOD_ROW.replace('id = "child_allowance.income"', 'id = "child_allowance.again"').replace(
            'items = ["income", "income_bracket"]', 'items = ["resident_tax", "income_bracket"]'
        ),
        2,
        "items",
        "already allowed by row 1",
        id="duplicate-exchange",
    ),
    pytest.param(
        _second('items = ["income_bracket"]', 'items = ["income_bracket", "income_bracket"]'),
        2,
        "items",
        "listed twice",
        id="item-twice-in-a-row",
    ),
    pytest.param(
        _second('items = ["income_bracket"]', "items = []"),
        2,
        "items",
        "non-empty list",
        id="no-items",
    ),
    pytest.param(
        _second('items = ["income_bracket"]', 'items = "income_bracket"'),
        2,
        "items",
        "non-empty list",
        id="items-not-a-list",
    ),
    pytest.param(
        _second('law = "健康保険法"\n', ""),
        2,
        "law",
        "missing",
        id="missing-law",
    ),
    pytest.param(
        _second('items = ["income_bracket"]\n', ""),
        2,
        "items",
        "missing",
        id="missing-items",
    ),
    pytest.param(
        _second('note_en = "Ceiling on the member\'s share."', "note_en = 3"),
        2,
        "note_en",
        "expected a string",
        id="note-not-a-string",
    ),
    pytest.param(
        _second('task_en = "Payment of high-cost medical expense benefit"', 'task_en = "  "'),
        2,
        "task_en",
        "empty",
        id="empty-task-name",
    ),
    pytest.param(
        _second('law = "健康保険法"', 'law = "健康保険法"\narticle = "63"'),
        2,
        "article",
        "unknown field",
        id="unknown-field",
    ),
    pytest.param(
        _second('id = "high_cost_medical.income_bracket"', 'id = "高額療養費"'),
        2,
        "id",
        "ASCII id",
        id="non-ascii-id",
    ),
    pytest.param(
        _second('task = "high_cost_medical"', 'task = "High Cost"'),
        2,
        "task",
        "ASCII task id",
        id="bad-task-id",
    ),
    pytest.param(
        GOOD_ROW
        + GOOD_ROW.replace('id = "child_allowance.income"', 'id = "child_allowance.status"')
        .replace('provider_kind = "municipal_tax"', 'provider_kind = "municipal_welfare"')
        .replace('items = ["income", "income_bracket"]', 'items = ["child_allowance_status"]')
        .replace("児童手当の支給に関する事務", "児童手当"),
        2,
        "task_ja",
        "named differently in row 1",
        id="task-named-two-ways",
    ),
]


@pytest.mark.parametrize(("text", "row", "field", "message"), MALFORMED)
def test_malformed_table_is_refused_with_row_and_field(
    text: str, row: int, field: str, message: str
) -> None:
    with pytest.raises(LegalBasisError) as caught:
        LegalBasisTable.load(text)
    err = caught.value
    assert isinstance(err, ValueError)
    assert (err.row, err.field) == (row, field)
    assert f"row {row}, field '{field}'" in str(err)
    assert message in str(err)


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        pytest.param("", "basis", "one or more", id="empty"),
        pytest.param("basis = 3\n", "basis", "one or more", id="basis-not-a-list"),
        pytest.param('version = "1"\n' + GOOD_ROW, "version", "unknown top-level", id="extra-key"),
        pytest.param("[[basis]\nid = 1\n", None, "not valid TOML", id="not-toml"),
    ],
)
def test_malformed_document_is_refused(text: str, field: str | None, message: str) -> None:
    with pytest.raises(LegalBasisError) as caught:
        LegalBasisTable.load(text)
    assert caught.value.row is None
    assert caught.value.field == field
    assert message in str(caught.value)


def test_a_row_that_is_not_a_table_is_refused() -> None:
    with pytest.raises(LegalBasisError) as caught:
        LegalBasisTable.load('basis = ["child_allowance.income"]\n')
    assert caught.value.row == 1


ALL_ITEMS = sorted({item for items in ITEMS.values() for item in items})
ALL_TASKS = sorted({b.task for b in TABLE.rows()} | {"unknown_task"})


@given(
    requester_kind=st.sampled_from(sorted(KINDS)),
    task=st.sampled_from(ALL_TASKS),
    provider_kind=st.sampled_from(sorted(KINDS)),
    item=st.sampled_from(ALL_ITEMS),
)
def test_find_allows_exactly_what_some_row_allows(
    requester_kind: str, task: str, provider_kind: str, item: str
) -> None:
    allowing = [
        b
        for b in TABLE.rows()
        if b.requester_kind == requester_kind
        and b.task == task
        and b.provider_kind == provider_kind
        and item in b.items
    ]
    assert len(allowing) <= 1
    found = TABLE.find(requester_kind, task, provider_kind, item)
    assert found == (allowing[0] if allowing else None)
