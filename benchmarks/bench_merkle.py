"""Transparency log: appends and proofs of `mynumber.ledger.merkle` at `--merkle-leaves` leaves.

Needs no register: the leaves are synthetic 64-byte access records, generated before any clock
starts, and the same list is hashed by the floor and appended to the tree.

- **Floor: bare SHA-256 leaf hashing** — ``sha256(0x00 ‖ record)`` over the same records in a
  bare loop (best of three), the least any RFC 9162 log must do per leaf.
- **Appends.** ``MerkleTree.append(record)``: the leaf hash plus, amortised, one node hash, and
  the packed per-level storage.
- **Rebuild from leaf hashes.** ``MerkleTree.append_hash`` over the stored leaf hashes: what the
  ledger pays at start-up to rebuild the tree from its store.
- **Inclusion proofs.** `PROOFS` random leaves of trees of random published sizes: the proof
  generated, then verified with :func:`verify_inclusion` against the tree head.
- **Consistency proofs.** `PROOFS` random pairs of published sizes: the proof generated, then
  verified with :func:`verify_consistency` against both tree heads.

Tree heads are computed before the clock starts (a log publishes them once). Every proof is
verified, one tampered proof of each kind must fail, and the rebuilt tree must have the same
head: anything wrong is listed and makes the run exit 1. Proof rates are compared with the same
floor: the ratio says how many bare leaf hashes one proof (generated and verified) costs.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass, field
from typing import Any

from mynumber.ledger.merkle import MerkleTree, verify_consistency, verify_inclusion

from .common import Result, err, peak_rss_mib

__all__ = ["MerkleRun", "merkle_results", "run_merkle"]

PROOFS = 10_000
BARE_RUNS = 3


def record(i: int) -> bytes:
    """The synthetic access record of leaf `i` (64 bytes)."""
    return b"%064d" % i


@dataclass
class MerkleRun:
    leaves: int
    proofs: int
    bare_seconds: list[float] = field(default_factory=list)
    append_seconds: float = 0.0
    rebuild_seconds: float = 0.0
    inclusion_prove_seconds: float = 0.0
    inclusion_verify_seconds: float = 0.0
    consistency_prove_seconds: float = 0.0
    consistency_verify_seconds: float = 0.0
    inclusion_path_max: int = 0
    consistency_path_max: int = 0
    rss_records_mib: float = 0.0
    rss_tree_mib: float = 0.0
    wrong: list[str] = field(default_factory=list)

    @property
    def bare_best(self) -> float:
        return min(self.bare_seconds)

    @property
    def inclusion_seconds(self) -> float:
        return self.inclusion_prove_seconds + self.inclusion_verify_seconds

    @property
    def consistency_seconds(self) -> float:
        return self.consistency_prove_seconds + self.consistency_verify_seconds

    def as_json(self) -> dict[str, Any]:
        return {
            "leaves": self.leaves,
            "proofs": self.proofs,
            "bare_seconds": self.bare_seconds,
            "append_seconds": self.append_seconds,
            "rebuild_seconds": self.rebuild_seconds,
            "inclusion_prove_seconds": self.inclusion_prove_seconds,
            "inclusion_verify_seconds": self.inclusion_verify_seconds,
            "consistency_prove_seconds": self.consistency_prove_seconds,
            "consistency_verify_seconds": self.consistency_verify_seconds,
            "inclusion_path_max": self.inclusion_path_max,
            "consistency_path_max": self.consistency_path_max,
            "peak_rss_mib_after_records": self.rss_records_mib,
            "peak_rss_mib_after_trees": self.rss_tree_mib,
            "wrong": self.wrong,
        }


def _bare(records: list[bytes]) -> float:
    sha256 = hashlib.sha256
    t0 = time.perf_counter()
    for r in records:
        sha256(b"\x00" + r).digest()
    return time.perf_counter() - t0


def run_merkle(leaves: int, seed: int, proofs: int = PROOFS) -> MerkleRun:
    if leaves < 2:
        raise ValueError("the Merkle benchmark needs at least 2 leaves")
    run = MerkleRun(leaves=leaves, proofs=proofs)
    err.print(f"[bold]merkle:[/] generating {leaves:,} synthetic 64-byte records")
    records = [record(i) for i in range(leaves)]
    run.rss_records_mib = peak_rss_mib()

    for k in range(BARE_RUNS):
        err.print(f"[bold]merkle:[/] bare SHA-256 leaf hashing, run {k + 1}/{BARE_RUNS}")
        run.bare_seconds.append(_bare(records))

    err.print(f"[bold]merkle:[/] appending {leaves:,} records")
    tree = MerkleTree()
    append = tree.append
    t0 = time.perf_counter()
    for r in records:
        append(r)
    run.append_seconds = time.perf_counter() - t0
    if tree.size != leaves:
        run.wrong.append(f"tree size {tree.size:,} after {leaves:,} appends")

    err.print("[bold]merkle:[/] rebuilding a second tree from the stored leaf hashes")
    hashes = [tree.leaf(i) for i in range(leaves)]  # the ledger's store, read before the clock
    del records
    rebuilt = MerkleTree()
    append_hash = rebuilt.append_hash
    t0 = time.perf_counter()
    for h in hashes:
        append_hash(h)
    run.rebuild_seconds = time.perf_counter() - t0
    del hashes
    if rebuilt.root() != tree.root():
        run.wrong.append("the tree rebuilt from leaf hashes has another head")
    del rebuilt
    run.rss_tree_mib = peak_rss_mib()

    rnd = random.Random(seed)
    err.print(f"[bold]merkle:[/] {proofs:,} inclusion proofs, generated then verified")
    cases = []
    for _ in range(proofs):
        size = rnd.randint(1, leaves)
        cases.append((rnd.randrange(size), size))
    heads = {size: tree.root(size) for _, size in cases}
    leaf_of = {i: tree.leaf(i) for i, _ in cases}
    t0 = time.perf_counter()
    paths = [tree.inclusion_proof(i, size) for i, size in cases]
    run.inclusion_prove_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    ok = [
        verify_inclusion(leaf_of[i], i, size, p, heads[size])
        for (i, size), p in zip(cases, paths, strict=True)
    ]
    run.inclusion_verify_seconds = time.perf_counter() - t0
    run.inclusion_path_max = max(len(p) for p in paths)
    for (i, size), good in zip(cases, ok, strict=True):
        if not good:
            run.wrong.append(f"inclusion proof of leaf {i:,} in tree {size:,} does not verify")
    nonempty = [j for j, p in enumerate(paths) if p]
    if nonempty:
        (j0, n0), bad = cases[nonempty[0]], list(paths[nonempty[0]])
        bad[0] = bytes(b ^ 1 for b in bad[0])
        if verify_inclusion(leaf_of[j0], j0, n0, bad, heads[n0]):
            run.wrong.append("a tampered inclusion proof verified")

    err.print(f"[bold]merkle:[/] {proofs:,} consistency proofs, generated then verified")
    pairs = []
    for _ in range(proofs):
        second = rnd.randint(2, leaves)
        pairs.append((rnd.randint(1, second - 1), second))
    heads = {n: tree.root(n) for pair in pairs for n in pair}
    t0 = time.perf_counter()
    cproofs = [tree.consistency_proof(m, n) for m, n in pairs]
    run.consistency_prove_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    ok = [
        verify_consistency(m, n, heads[m], heads[n], c)
        for (m, n), c in zip(pairs, cproofs, strict=True)
    ]
    run.consistency_verify_seconds = time.perf_counter() - t0
    run.consistency_path_max = max(len(c) for c in cproofs)
    for (m, n), good in zip(pairs, ok, strict=True):
        if not good:
            run.wrong.append(f"consistency proof {m:,} → {n:,} does not verify")
    (m, n), c = pairs[0], list(cproofs[0])
    c[-1] = bytes(b ^ 1 for b in c[-1])
    if verify_consistency(m, n, heads[m], heads[n], c):
        run.wrong.append("a tampered consistency proof verified")
    return run


def merkle_results(run: MerkleRun) -> list[Result]:
    bare_rate = run.leaves / run.bare_best

    def result(benchmark: str, count: int, seconds: float, notes: list[str]) -> Result:
        return Result(
            benchmark=benchmark,
            backend="memory",
            value=count / seconds if seconds else 0.0,
            unit="/s",
            count=count,
            seconds=seconds,
            baseline="bare SHA-256 leaf hashes",
            baseline_value=bare_rate,
            baseline_seconds=run.bare_best,
            notes=notes,
        )

    us = 1e6 / run.proofs
    return [
        result(
            f"Merkle appends ({run.leaves:,} leaves)",
            run.leaves,
            run.append_seconds,
            [
                f"peak RSS {run.rss_records_mib:,.0f} MiB with the records, "
                f"{run.rss_tree_mib:,.0f} MiB with the tree, its leaf hashes and a rebuilt copy"
            ],
        ),
        result("Merkle rebuild from leaf hashes", run.leaves, run.rebuild_seconds, []),
        result(
            "Merkle inclusion proofs + verify",
            run.proofs,
            run.inclusion_seconds,
            [
                f"prove {run.inclusion_prove_seconds * us:,.1f} µs, verify "
                f"{run.inclusion_verify_seconds * us:,.1f} µs each; longest path "
                f"{run.inclusion_path_max} hashes"
            ],
        ),
        result(
            "Merkle consistency proofs + verify",
            run.proofs,
            run.consistency_seconds,
            [
                f"prove {run.consistency_prove_seconds * us:,.1f} µs, verify "
                f"{run.consistency_verify_seconds * us:,.1f} µs each; longest proof "
                f"{run.consistency_path_max} hashes"
            ],
        ),
    ]
