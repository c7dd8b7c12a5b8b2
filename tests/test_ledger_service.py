"""The ledger's log on SQLite and PostgreSQL: signed heads, proofs, erasure that keeps proofs,
tampering found at start-up, and concurrent appends from two processes' services at once."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from mynumber.cli import app
from mynumber.clock import FixedClock
from mynumber.db import make_engine, writing
from mynumber.ledger import models as m
from mynumber.ledger.bundle import check_bundle
from mynumber.ledger.heads import verify_extends, verify_head
from mynumber.ledger.merkle import MerkleTree, leaf_hash, verify_inclusion
from mynumber.ledger.service import LedgerIntegrityError, LedgerService
from mynumber.platform import Platform


def records(start: int, n: int) -> list[bytes]:
    return [b'{"record": %d}' % i for i in range(start, start + n)]


def test_appends_give_signed_heads_and_proofs_that_verify(platform: Platform) -> None:
    log = platform.ledger
    heads = []
    for batch in range(5):
        indices, head = log.append(records(batch * 7, 7))
        assert indices == list(range(batch * 7, batch * 7 + 7))
        assert head.tree_size == (batch + 1) * 7 and verify_head(head, log.public_key)
        assert log.head() == head == log.head(head.tree_size)
        heads.append(head)
    for i, data in enumerate(records(0, 35)):
        proof = log.inclusion_proof(i, 35)
        assert verify_inclusion(leaf_hash(data), i, 35, proof, heads[-1].root_hash)
        assert log.payload(i) == data
    for a, b in itertools.pairwise(heads):
        proof = log.consistency_proof(a.tree_size, b.tree_size)
        assert verify_extends(a, b, proof, log.public_key)
    with pytest.raises(ValueError):
        log.append([])


def test_erasure_keeps_the_leaf_and_the_proof(platform: Platform, clock: FixedClock) -> None:
    log = platform.ledger
    log.append(records(0, 3))
    clock.advance(dt.timedelta(days=7 * 366))
    _, head = log.append(records(3, 2))
    assert log.erase_before(clock.now() - dt.timedelta(days=7 * 365)) == 3
    assert [log.payload(i) for i in range(5)] == [None, None, None, *records(3, 2)]
    data = records(0, 1)[0]
    proof = log.inclusion_proof(0, head.tree_size)
    assert verify_inclusion(leaf_hash(data), 0, head.tree_size, proof, head.root_hash)
    later = clock.now() + dt.timedelta(seconds=1)
    assert log.erase_before(clock.now()) == 0  # appended at this very moment: not before it
    assert log.erase_before(later) == 2 and log.erase_before(later) == 0


def test_a_rewritten_leaf_is_found_when_the_log_starts(platform: Platform) -> None:
    platform.ledger.append(records(0, 10))
    with writing(platform.ledger.engine) as conn:
        conn.execute(
            update(m.leaves).where(m.leaves.c.idx == 4).values(leaf_hash=leaf_hash(b"forged"))
        )
    with pytest.raises(LedgerIntegrityError):
        LedgerService(platform.ledger.engine, platform.keystore, platform.clock)


def test_concurrent_appends_from_two_services_lose_and_duplicate_nothing(
    platform: Platform,
) -> None:
    """Two services on one database (as two server workers), eight threads each, appending at
    once: indices dense and unique, every record where its index says, every head true."""
    url = platform.settings.role_database_url("ledger")
    services = [
        platform.ledger,
        LedgerService(make_engine(url, "ledger"), platform.keystore, platform.clock),
    ]
    results: list[tuple[int, bytes]] = []
    failures: list[BaseException] = []
    guard = threading.Lock()
    start = threading.Barrier(16)

    def worker(n: int) -> None:
        log = services[n % 2]
        start.wait(30)
        for k in range(5):
            data = b'{"worker": %d, "k": %d}' % (n, k)
            try:
                indices, head = log.append([data])
            except BaseException as exc:  # reported below
                with guard:
                    failures.append(exc)
                continue
            assert verify_head(head, log.public_key) and head.tree_size > indices[0]
            with guard:
                results.append((indices[0], data))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures[:3]
    assert sorted(i for i, _ in results) == list(range(80))
    for idx, data in results:
        assert platform.ledger.payload(idx) == data
    # Every head ever signed is the root of the stored leaves at its size.
    rebuilt = MerkleTree([platform.ledger.leaf_hash(i) for i in range(80)])
    with platform.ledger.engine.connect() as conn:
        stored = conn.execute(m.heads.select()).all()
    assert len(stored) == 80
    for row in stored:
        assert bytes(row.root_hash) == rebuilt.root(row.tree_size)
    # Each service now agrees on proofs, whoever appended.
    for log in services:
        head = log.head()
        assert head is not None and head.tree_size == 80
        proof = log.inclusion_proof(13, 80)
        assert verify_inclusion(rebuilt.leaf(13), 13, 80, proof, head.root_hash)
    services[1].engine.dispose()


def test_the_log_hands_out_bundles_that_verify_offline(
    platform: Platform, clock: FixedClock, tmp_path: Path
) -> None:
    """From the service to `mynumber verify-proof`: the record, its path, the signed head and
    the consistency with an earlier head — and still after the payload is erased."""
    log = platform.ledger
    log.append(records(0, 6))
    clock.advance(dt.timedelta(days=7 * 366))
    log.append(records(6, 9))
    bundle = log.proof_bundle(4, earlier_size=6)
    assert bytes.fromhex(bundle["leaf_data"]) == records(4, 1)[0]
    assert check_bundle(json.dumps(bundle)).ok
    log.erase_before(clock.now() - dt.timedelta(days=365))
    erased = log.proof_bundle(4, earlier_size=6)
    assert "leaf_data" not in erased and erased["leaf_hash"] == leaf_hash(records(4, 1)[0]).hex()
    f = tmp_path / "proof.json"
    f.write_text(json.dumps(erased))
    result = CliRunner().invoke(app, ["verify-proof", str(f)])
    assert result.exit_code == 0, result.output
    erased["leaf_index"] = 5  # the proof names one record only
    assert check_bundle(json.dumps(erased)).findings == ["inclusion.failed"]
    with pytest.raises(ValueError):
        log.proof_bundle(15)
    with pytest.raises(ValueError):
        log.proof_bundle(0, earlier_size=5)  # no head of that size was signed


def test_starting_while_another_writer_appends(platform: Platform, clock: FixedClock) -> None:
    """A worker or CLI command that opens the log while another process appends must not take
    the appends for tampering (the newest head is read before the leaves, never after)."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def appends() -> None:
        i = 0
        while not stop.is_set():
            platform.ledger.append([b"concurrent %d" % i])
            i += 1

    writer = threading.Thread(target=appends)
    writer.start()
    try:
        for _ in range(40):
            try:
                LedgerService(platform.ledger.engine, platform.keystore, clock)
            except LedgerIntegrityError as e:
                errors.append(e)
    finally:
        stop.set()
        writer.join()
    assert errors == []
    assert platform.ledger.audit() == []
