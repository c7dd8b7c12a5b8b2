"""Schemathesis against the app's own OpenAPI document, in process (ASGI), on SQLite.

Every operation is called with generated input (valid and invalid), a token with every scope and
a fresh Idempotency-Key, and every answer is checked against the document: no 5xx, only
documented status codes, content types, headers and bodies.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import MUNI, TODAY
from mynumber.api.app import create_app
from mynumber.api.auth import SCOPES, TokenStore
from mynumber.clock import FixedClock
from mynumber.config import Settings
from mynumber.municipality.domain import EventKind
from mynumber.platform import Platform

pytestmark = pytest.mark.slow

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


# The schema is loaded from the app when this module is imported (schemathesis' lazy
# `from_fixture` loader does not work with pytest 9), so the deployment is made here too, in a
# directory of its own that the module fixture below removes.
_DIR = Path(tempfile.mkdtemp(prefix="mynumber-schemathesis-"))
atexit.register(shutil.rmtree, _DIR, True)  # also when the tests are collected but not run
_PLATFORM = Platform(Settings(data_dir=_DIR / "data", database_url=None), FixedClock(TODAY))
_TOKEN = TokenStore(_DIR / "data" / "tokens.json").create("schemathesis", sorted(SCOPES))

schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_PLATFORM))
# Every operation under the one municipality of this deployment, so that generated bodies reach
# the register's own validation (hostile path segments are tested in test_api.py).
schema.config.update(headers={"Authorization": f"Bearer {_TOKEN}"}, parameters={"code": MUNI})


@pytest.fixture(scope="module", autouse=True)
def deployment() -> Iterator[Platform]:
    """The deployment under test: one municipality with one household."""
    _PLATFORM.municipality.create_municipality(MUNI, "東京都", "新宿区")
    _PLATFORM.municipality.record(
        MUNI,
        EventKind.MOVE_IN,
        {
            "family_name": "山田",
            "given_name": "太郎",
            "family_name_kana": "ヤマダ",
            "given_name_kana": "タロウ",
            "birth_date": "1980-01-02",
            "sex": "1",
            "address": "東京都新宿区新宿三丁目1番1号",
        },
        idempotency_key="seed",
    )
    try:
        yield _PLATFORM
    finally:
        _PLATFORM.close()
        shutil.rmtree(_DIR, ignore_errors=True)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case) -> None:
    # A fresh key per call: a write is never answered as the replay of another.
    case.headers = {**(case.headers or {}), "Idempotency-Key": uuid.uuid4().hex}
    case.call_and_validate(checks=CHECKS)
