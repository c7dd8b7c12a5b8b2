"""`mynumber ledger audit|scan` and `mynumber network stats|anomalies|erase-expired`, run as people
run them (a process per command), against a deployment seeded with the demo agencies."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from mynumber.agency.seed import seed_agencies
from mynumber.cli import _import
from mynumber.config import Settings
from mynumber.ledger.heads import SignedTreeHead
from mynumber.municipality.bulk import export_residents
from mynumber.network.scan import scan
from mynumber.platform import Platform
from mynumber.synth import DEFAULT_MUNICIPALITIES, generate_residents
from relykit import serve

RESIDENTS = 120


@pytest.fixture
def world(platform: Platform) -> Platform:
    m = DEFAULT_MUNICIPALITIES[0]
    rows = generate_residents(RESIDENTS, 3, m)
    _import(platform, ((i + 2, r) for i, r in enumerate(rows)), RESIDENTS, None, False)
    assert seed_agencies(platform) > 100
    return platform


def cli(p: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYNUMBER_")}
    cmd = [sys.executable, "-m", "mynumber.cli", *args]
    if args[0] in ("ledger", "network") and args[1] != "scan":
        cmd += ["--data-dir", str(p.settings.data_dir)]
        if p.settings.database_url:
            cmd += ["--database-url", p.settings.database_url]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def person_with_records(p: Platform) -> tuple[str, int]:
    best = ("", 0)
    for r in export_residents(p.municipality):
        n = len(p.network.records_of(r["resident_code"])["records"])
        if n > best[1]:
            best = (r["resident_code"], n)
    assert best[1] > 0
    return best


@pytest.fixture
def url(world: Platform) -> Iterator[str]:
    with serve(world) as base:
        yield base


def test_audit_passes_then_names_the_altered_record(world: Platform) -> None:
    r = cli(world, "ledger", "audit")
    assert r.returncode == 0, r.stderr
    size = world.ledger.head()
    assert size is not None and f"{size.tree_size:,} records" in r.stdout
    with world.ledger.engine.begin() as conn:
        conn.execute(text("UPDATE payloads SET body = :b WHERE idx = 7"), {"b": b'{"v":1}'})
    r = cli(world, "ledger", "audit")
    assert r.returncode == 1
    assert "record 7 does not hash to its leaf" in r.stderr
    assert "Traceback" not in r.stderr


def test_stats_and_the_auditors_report(world: Platform) -> None:
    r = cli(world, "network", "stats")
    assert r.returncode == 0, r.stderr
    total = world.network.counts()["total"]
    assert f"{total:,} exchanges" in r.stdout
    r = cli(world, "network", "anomalies", "--days", "3")
    assert r.returncode == 0, r.stderr
    # the demo's health insurer asks a dozen times for what no law allows it: a burst
    assert "findings in the last 3 days" in r.stdout
    kinds = {f.kind for f in world.network.anomalies() if f.requester == "kenpo-mirai"}
    assert "anomaly.refusal_burst" in kinds


def test_erase_expired_keeps_recent_records(world: Platform) -> None:
    before = world.network.counts()["total"]
    r = cli(world, "network", "erase-expired")
    assert r.returncode == 0, r.stderr
    assert "0 network records deleted, 0 log payloads erased" in r.stdout
    assert world.network.counts()["total"] == before


def test_scan_finds_exactly_the_persons_records(world: Platform, url: str, tmp_path: Path) -> None:
    rc, n = person_with_records(world)
    key = world.network.person_key(rc).hex()
    pem = tmp_path / "log.pem"
    pem.write_text(_pem(world))
    r = cli(world, "ledger", "scan", url, "--subject-key", key, "--log-key", str(pem))
    assert r.returncode == 0, r.stderr
    assert f"{n} records about you" in r.stdout
    other = next(
        x["resident_code"] for x in export_residents(world.municipality) if x["resident_code"] != rc
    )
    expected_other = len(world.network.records_of(other)["records"])
    r = cli(world, "ledger", "scan", url, "--subject-key", world.network.person_key(other).hex())
    assert r.returncode == 0, r.stderr
    assert f"{expected_other} records about you" in r.stdout
    assert "trust on first use" in r.stderr


def test_scan_refuses_a_log_that_serves_other_records(world: Platform, url: str) -> None:
    rc, _n = person_with_records(world)
    with world.ledger.engine.begin() as conn:
        conn.execute(text("UPDATE payloads SET body = :b WHERE idx = 3"), {"b": b'{"v":2}'})
    r = cli(world, "ledger", "scan", url, "--subject-key", world.network.person_key(rc).hex())
    assert r.returncode == 1
    assert "inclusion.failed" in r.stderr and "Traceback" not in r.stderr


def test_scan_refuses_a_bad_subject_key(world: Platform, url: str) -> None:
    r = cli(world, "ledger", "scan", url, "--subject-key", "zz")
    assert r.returncode == 1
    assert "request.invalid" in r.stderr and "本人鍵" in r.stderr


def test_scan_is_pure_and_sees_gaps(world: Platform) -> None:
    head = world.ledger.head()
    assert head is not None
    entries = world.ledger.entries(0, head.tree_size)
    rc, n = person_with_records(world)
    result = scan(entries, head, world.network.person_key(rc))
    assert result.root_matches and len(result.mine) == n and not result.bad_entries
    with pytest.raises(ValueError, match="missing"):
        scan(entries[:2] + entries[3:], head, world.network.person_key(rc))
    # a head the entries do not reach
    later = SignedTreeHead(head.log_id, head.timestamp_ms, head.tree_size + 1, head.root_hash, b"")
    assert not scan(entries, later, world.network.person_key(rc)).root_matches


def _pem(p: Platform) -> str:
    from cryptography.hazmat.primitives import serialization

    return p.ledger.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def test_settings_round_trip(tmp_path: Path) -> None:
    """The roles of this issue have their own database URL settings."""
    s = Settings(data_dir=tmp_path, network_database_url="sqlite:///x.db")
    assert s.role_database_url("network") == "sqlite:///x.db"
    assert s.role_database_url("agency").endswith("agency.sqlite3")
