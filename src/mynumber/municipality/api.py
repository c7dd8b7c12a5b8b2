"""HTTP routes of the municipality role under /api/municipality (a thin adapter)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from mynumber.api.deps import PLAIN_TEXT, IdempotencyKey, PlatformDep, require
from mynumber.api.problems import PROBLEM_RESPONSES
from mynumber.municipality.domain import EventKind
from mynumber.numbers import parse_municipality

__all__ = ["router"]

router = APIRouter(prefix="/api/municipality", tags=["municipality"], responses=PROBLEM_RESPONSES)

Reader = Depends(require("municipality:read"))
Writer = Depends(require("municipality:write"))
Code = Annotated[str, Path(description="6-digit municipality code", max_length=20)]
ResidentCode = Annotated[
    str, Path(description="11-digit resident record code", max_length=20, pattern=PLAIN_TEXT)
]

Text = Annotated[str, Field(max_length=300, pattern=PLAIN_TEXT)]
OptText = Annotated[Text | None, Field(default=None)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MunicipalityIn(Body):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"code": "131016", "prefecture": "東京都", "name": "千代田区"}]
        },
    )

    code: Annotated[str, Field(max_length=20, pattern=PLAIN_TEXT)]
    prefecture: Text
    name: Text


class MunicipalityOut(BaseModel):
    code: str
    prefecture: str
    name: str
    residents: int


class PersonIn(Body):
    """A person's items, as strings; the same validation as a CSV row."""

    family_name: Text
    given_name: OptText = None
    family_name_kana: Text
    given_name_kana: OptText = None
    birth_date: Text = Field(description="ISO 8601 or 和暦 (令和5年4月1日, R5.4.1)")
    sex: Text = Field(description="1 (male) or 2 (female); 男/女 accepted")
    postal_code: OptText = None
    address: Text
    household_id: OptText = None
    relationship: OptText = None
    alphabet_name: OptText = None
    nationality: OptText = None
    residence_status: OptText = None
    period_of_stay_end: OptText = None
    domicile: OptText = Field(default=None, description="本籍 (Japanese nationals only)")
    domicile_head: OptText = Field(default=None, description="筆頭者, with 本籍")
    notified_on: OptText = None


class BirthIn(PersonIn):
    pass


class MoveInIn(PersonIn):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "family_name": "山田",
                    "given_name": "太郎",
                    "family_name_kana": "ヤマダ",
                    "given_name_kana": "タロウ",
                    "birth_date": "昭和55年1月2日",
                    "sex": "1",
                    "postal_code": "160-0022",
                    "address": "東京都新宿区新宿三丁目1番1号",
                }
            ]
        },
    )

    resident_code: OptText = Field(default=None, description="kept from the previous municipality")
    moved_on: OptText = None


class Dated(Body):
    occurred_on: OptText = Field(default=None, description="the day it happened; default today")
    notified_on: OptText = None


class MoveWithinIn(Dated):
    address: Text
    postal_code: OptText = None


class MoveOutIn(Dated):
    destination: Text
    abroad: bool = Field(
        default=False,
        description="国外転出: moving abroad (both JPKI certificates are revoked, not only the "
        "signature certificate)",
    )


class DeathIn(Dated):
    pass


class NameChangeIn(Dated):
    family_name: Text
    given_name: OptText = None
    family_name_kana: Text
    given_name_kana: OptText = None


class HouseholdChangeIn(Dated):
    household_id: Text
    relationship: Text


class ResidentOut(BaseModel):
    resident_code: str
    individual_number: str | None = Field(description="masked: last four digits only")
    municipality_code: str
    family_name: str
    given_name: str
    family_name_kana: str
    given_name_kana: str
    birth_date: str
    sex: int
    postal_code: str
    address: str
    household_id: str
    relationship: str
    alphabet_name: str
    nationality: str
    residence_status: str
    period_of_stay_end: str | None
    domicile: str = ""
    domicile_head: str = ""
    status: str
    status_since: str
    address_since: str
    updated_seq: int


class EventResult(BaseModel):
    resident_code: str
    seq: int
    late: bool = Field(description="notified after the legal deadline (recorded all the same)")
    deadline: str
    resident: ResidentOut


class ResidentPage(BaseModel):
    total: int
    items: list[ResidentOut]


class EventOut(BaseModel):
    seq: int
    resident_code: str
    kind: str
    occurred_on: str
    notified_on: str
    late: bool
    detail: dict[str, Any]


@router.get("/municipalities", response_model=list[MunicipalityOut], dependencies=[Reader])
def list_municipalities(p: PlatformDep) -> list[dict[str, Any]]:
    return p.municipality.list_municipalities()


@router.post(
    "/municipalities", status_code=201, response_model=MunicipalityOut, dependencies=[Writer]
)
def add_municipality(body: MunicipalityIn, p: PlatformDep, _key: IdempotencyKey) -> dict[str, Any]:
    p.municipality.create_municipality(body.code, body.prefecture, body.name)
    code = parse_municipality(body.code, field="code")  # as stored: "１３１０４１" is 131041
    return next(x for x in p.municipality.list_municipalities() if x["code"] == code)


@router.get("/municipalities/{code}/residents", response_model=ResidentPage, dependencies=[Reader])
def list_residents(
    code: Code,
    p: PlatformDep,
    kana_prefix: Annotated[str, Query(max_length=50)] = "",
    status: Annotated[str | None, Query(pattern="^(active|moved_out|deceased)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    return p.municipality.list_residents(
        code, kana_prefix=kana_prefix, status=status, limit=limit, offset=offset
    )


@router.get(
    "/municipalities/{code}/residents/{resident_code}",
    response_model=ResidentOut,
    dependencies=[Reader],
)
def get_resident(code: Code, resident_code: ResidentCode, p: PlatformDep) -> dict[str, Any]:
    return p.municipality.get_resident(code, resident_code)


@router.get(
    "/municipalities/{code}/households/{household_id}",
    response_model=list[ResidentOut],
    dependencies=[Reader],
)
def get_household(
    code: Code,
    household_id: Annotated[str, Path(max_length=40, pattern=PLAIN_TEXT)],
    p: PlatformDep,
) -> list[dict[str, Any]]:
    return p.municipality.household(code, household_id)


@router.get("/municipalities/{code}/events", response_model=list[EventOut], dependencies=[Reader])
def list_events(
    code: Code,
    p: PlatformDep,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    return p.municipality.events(code, after, limit)


def _record(
    p: PlatformDep,
    response: Response,
    code: str,
    kind: EventKind,
    body: BaseModel,
    key: str,
    resident_code: str | None = None,
) -> dict[str, Any]:
    # The service keys idempotency records by the code as given: normalise it first, so that
    # "１３１０４１" and "131041" share their keys and junk (a NUL) never reaches the database.
    code = parse_municipality(code, field="municipality_code")
    status, result, replayed = p.municipality.record(
        code,
        kind,
        body.model_dump(exclude_none=True),
        resident_code=resident_code,
        idempotency_key=key,
    )
    response.status_code = status
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return result


@router.post(
    "/municipalities/{code}/births",
    status_code=201,
    response_model=EventResult,
    dependencies=[Writer],
    summary="出生: register a newborn into an existing household",
)
def birth(
    code: Code, body: BirthIn, p: PlatformDep, response: Response, key: IdempotencyKey
) -> dict[str, Any]:
    return _record(p, response, code, EventKind.BIRTH, body, key)


@router.post(
    "/municipalities/{code}/move-ins",
    status_code=201,
    response_model=EventResult,
    dependencies=[Writer],
    summary="転入: a person moves in from another municipality or from abroad",
)
def move_in(
    code: Code, body: MoveInIn, p: PlatformDep, response: Response, key: IdempotencyKey
) -> dict[str, Any]:
    return _record(p, response, code, EventKind.MOVE_IN, body, key)


_CHANGES: list[tuple[str, EventKind, type[Dated], str]] = [
    ("moves", EventKind.MOVE_WITHIN, MoveWithinIn, "転居: a move within the municipality"),
    ("move-outs", EventKind.MOVE_OUT, MoveOutIn, "転出: moving out; the record becomes a 除票"),
    ("deaths", EventKind.DEATH, DeathIn, "死亡: the record becomes a 除票"),
    ("name-changes", EventKind.NAME_CHANGE, NameChangeIn, "氏名変更"),
    ("household-changes", EventKind.HOUSEHOLD_CHANGE, HouseholdChangeIn, "世帯変更"),
]


def _change_route(kind: EventKind, model: type[Dated]) -> Any:
    def route(
        code: Code,
        resident_code: ResidentCode,
        body: model,  # type: ignore[valid-type]
        p: PlatformDep,
        response: Response,
        key: IdempotencyKey,
    ) -> dict[str, Any]:
        return _record(p, response, code, kind, body, key, resident_code)

    route.__name__ = f"record_{kind}"
    # With postponed annotations `body: model` is the string "model", which FastAPI cannot
    # resolve (the OpenAPI document then fails to build): give it the class itself.
    route.__annotations__["body"] = model
    return route


for _path, _kind, _model, _summary in _CHANGES:
    router.add_api_route(
        f"/municipalities/{{code}}/residents/{{resident_code}}/{_path}",
        _change_route(_kind, _model),
        methods=["POST"],
        status_code=200,
        response_model=EventResult,
        dependencies=[Writer],
        summary=_summary,
    )
