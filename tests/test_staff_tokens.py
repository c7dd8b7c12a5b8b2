"""Staff tokens bound to one agency: an ``agency:link`` token names its agency when minted (the
CLI refuses one without, or for an agency the network does not know), the binding is stored
with the digest, and a token minted by the CLI acts over HTTP for its own agency only."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mynumber.api.app import create_app
from mynumber.api.auth import SCOPES, Staff, TokenStore
from mynumber.config import Settings
from mynumber.platform import Platform
from test_api import assert_problem
from test_cli import cli

MINE = "kenpo-mine"
THEIRS = "kenpo-theirs"


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    return TokenStore(tmp_path / "tokens.json")


# -- the store ----------------------------------------------------------------------------------


def test_an_agency_link_token_is_bound_to_its_agency(store: TokenStore) -> None:
    token = store.create("clerk", ["agency:link"], agency=MINE)
    staff = store.check(token)
    assert staff == Staff("clerk", frozenset({"agency:link"}), None, MINE)
    assert staff.acts_for(MINE) and not staff.acts_for(THEIRS)
    entry = json.loads(store._path.read_text())["tokens"][0]
    assert entry["agency"] == MINE and token not in store._path.read_text()


def test_the_platform_wide_scope_acts_for_every_agency(store: TokenStore) -> None:
    admin = store.check(store.create("operator", ["agency:admin"]))
    assert admin is not None and admin.agency is None
    assert admin.acts_for(MINE) and admin.acts_for(THEIRS)
    # every scope (the demo token) includes agency:admin, so needs no agency
    everything = store.check(store.create("demo", sorted(SCOPES)))
    assert everything is not None and everything.acts_for(THEIRS)


def test_other_tokens_act_for_no_agency(store: TokenStore) -> None:
    staff = store.check(store.create("jlis", ["jlis:query"]))
    assert staff is not None and staff.agency is None
    assert not staff.acts_for(MINE)
    # a token stored before bindings existed acts for none either
    assert not Staff("legacy", frozenset({"agency:link"})).acts_for(MINE)


@pytest.mark.parametrize(
    ("scopes", "agency", "message"),
    [
        (["agency:link"], None, "acts for one agency"),
        (["agency:link", "jlis:query"], None, "acts for one agency"),
        (["agency:admin"], MINE, "names no agency"),
        (["agency:link", "agency:admin"], MINE, "names no agency"),
        (["jlis:query"], MINE, "binds only"),
        ([], MINE, "binds only"),
        (["agency:link"], "Kenpo", "not an agency id"),
        (["agency:link"], "", "not an agency id"),
        (["agency:link"], "kenpo\n", "not an agency id"),
        (["agency:link"], "a" * 65, "not an agency id"),
        (["agency:link", "root"], MINE, "unknown scope"),
    ],
)
def test_minting_refuses_a_token_without_a_sound_binding(
    store: TokenStore, scopes: list[str], agency: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        store.create("x", scopes, agency=agency)
    assert not store._path.exists()


# -- the command line ---------------------------------------------------------------------------


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Platform]:
    """A deployment on SQLite with two agencies registered with the network."""
    p = Platform(Settings(data_dir=tmp_path / "d", database_url=None))
    for agency in (MINE, THEIRS):
        p.network.register_agency(
            agency, "health_insurer", agency, agency, p.agencies.public_key(agency)
        )
    try:
        yield p
    finally:
        p.close()


def mint(p: Platform, *args: str) -> tuple[int, str, str]:
    r = cli("token", "create", "--name", "clerk", *args, "--data-dir", p.settings.data_dir,
            cwd=p.settings.data_dir.parent)  # fmt: skip
    return r.returncode, r.stdout, r.stderr


def test_cli_mints_a_bound_token_that_acts_for_its_agency_only(deployment: Platform) -> None:
    code, out, errors = mint(deployment, "--scope", "agency:link", "--agency", MINE)
    assert code == 0, errors
    token = out.strip()
    assert re.fullmatch(r"mnt_[A-Za-z0-9_-]{40,}", token)
    path = deployment.settings.data_dir / "tokens.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert token not in path.read_text()
    with TestClient(create_app(deployment), raise_server_exceptions=False) as client:
        auth = {"Authorization": f"Bearer {token}"}
        r = client.get(f"/api/agency/{MINE}/reviews", headers=auth)
        assert r.status_code == 200 and r.json() == [], r.text
        r = client.get(f"/api/agency/{THEIRS}/reviews", headers=auth)
        assert_problem(r, 403, "auth.wrong_agency")


def test_cli_refuses_an_agency_link_token_without_an_agency(deployment: Platform) -> None:
    code, out, errors = mint(deployment, "--scope", "agency:link")
    assert code == 2 and not out
    assert "agency:link" in errors and "--agency" in errors and "agency:admin" in errors
    assert not (deployment.settings.data_dir / "tokens.json").exists()
    # the platform-wide scope is named as such, and needs no agency
    code, out, errors = mint(deployment, "--scope", "agency:admin")
    assert code == 0 and out.startswith("mnt_"), errors


def test_cli_mints_a_kiosk_token_only_for_one_operator(deployment: Platform) -> None:
    code, out, errors = mint(deployment, "--scope", "kiosk:issue")
    assert code == 2 and not out and "--kiosk-operator" in errors, errors
    code, out, errors = mint(deployment, "--scope", "jlis:query", "--kiosk-operator", "seven")
    assert code == 2 and "binds only" in errors, errors
    code, out, errors = mint(deployment, "--scope", "kiosk:issue", "--kiosk-operator", "seven")
    assert code == 0, errors
    token = out.strip()
    with TestClient(create_app(deployment), raise_server_exceptions=False) as client:
        auth = {"Authorization": f"Bearer {token}"}
        r = client.post("/api/kiosk/sessions", json={"kiosk_id": "seven-0001"}, headers=auth)
        assert r.status_code == 201, r.text
        r = client.post("/api/kiosk/sessions", json={"kiosk_id": "lawson-0001"}, headers=auth)
        assert_problem(r, 403, "kiosk.not_yours")


def test_cli_refuses_an_unknown_agency(deployment: Platform) -> None:
    code, out, errors = mint(deployment, "--scope", "agency:link", "--agency", "kenpo-unknown")
    assert code == 1 and not out
    assert "network.unknown_agency" in errors and "[agency]" in errors
    assert "ネットワーク" in errors and "network" in errors  # Japanese and English
    # not even an agency id
    code, out, errors = mint(deployment, "--scope", "agency:link", "--agency", "KENPO")
    assert code == 2 and not out and "not an agency id" in errors
    assert not (deployment.settings.data_dir / "tokens.json").exists()


def test_cli_refuses_an_agency_for_a_token_that_acts_for_none(deployment: Platform) -> None:
    code, out, errors = mint(deployment, "--scope", "jlis:query", "--agency", MINE)
    assert code == 2 and not out and "binds only" in errors
    assert not (deployment.settings.data_dir / "tokens.json").exists()
