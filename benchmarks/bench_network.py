"""Information-provision network: brokered exchanges in process and over HTTP, and the
transparency log in its database at `--ledger-leaves` leaves.

The phase seeds its own small deployment (``--network-residents`` synthetic residents imported,
then :func:`mynumber.agency.seed.seed_agencies`: five demo agencies registered with their keys,
records, codes and intermediate servers' copies, and the demo's few hundred exchanges), so it runs
alone in a few minutes and its figures do not depend on ``--rows``.

**Exchanges.** Each job is one agency asking another for one item about one of its own records,
along :data:`ROUTES` (six the legal-basis table allows, one it does not). What every exchange
must answer — provided with which value, not held, or refused for want of a legal basis — is
derived from :func:`mynumber.agency.seed.demo_records`, not from the network, and every answer
is checked. One timed exchange is what an agency and the network do for it:
``AgencyService.sign_request`` (the requester's code read, the request signed) then
``NetworkService.exchange`` (signature verified, code translated, legal basis looked up, the
provider's copy read, the network's row, the ledger append with its signed tree head, the row's
leaf index).

- **Floor: the irreducible cryptography of one exchange**, in a bare loop over prepared bytes of
  the same shape (best of three): Ed25519 sign and verify of the request, SHA-256 of the access
  record (its leaf hash), Ed25519 sign of the tree head.
- **In process**: one thread on the backend's platform; then two threads, each with its own
  platform; then two processes (``spawn``), each with its own platform — what two server workers
  are — all on the same databases. Appends from several platforms serialise in the ledger's
  write transaction; the run checks that the leaves they got are distinct and dense, that every
  network row has its leaf, and (at the end) that the ledger's audit finds nothing.
- **Over HTTP**: the real server (``mynumber serve --workers W``) and C requests in flight,
  ``POST /api/network/exchanges`` with requests signed beforehand (on the wall clock: the
  network refuses a request issued more than five minutes from its own clock, so a burst is cut
  at four minutes); floor ``GET /healthz`` through the same client.

**The log in its database** (:func:`run_ledger`): a ledger store of its own, filled to N leaves
quickly (the first :data:`LEDGER_APPENDS` through ``LedgerService.append`` — timed: appends on an
almost empty store — the rest bulk-inserted into ``leaves`` and ``payloads`` with the leaf-hash
index built afterwards, and one head of size N signed with the ledger's key), then, each beside
**bare SHA-256 of the same N leaves** (``sha256(0x00 ‖ record)``, best of three): the service's
start-up (the tree rebuilt from the stored leaf hashes and checked against the newest head),
single-record appends at N leaves, inclusion proofs through ``proof_bundles`` (each bundle then
checked offline with :func:`mynumber.ledger.bundle.check_bundle`), and the full audit.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import hashlib
import json
import multiprocessing
import os
import queue
import random
import secrets
import signal
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from mynumber.agency.seed import demo_records, seed_agencies
from mynumber.agency.service import AgencyService
from mynumber.clock import FixedClock, SystemClock
from mynumber.db import bulk_insert, make_engine, writing
from mynumber.ledger import models as lm
from mynumber.ledger.bundle import check_bundle
from mynumber.ledger.heads import SignedTreeHead, sign_head
from mynumber.ledger.merkle import MerkleTree, leaf_hash
from mynumber.ledger.service import LedgerService
from mynumber.municipality.bulk import export_residents
from mynumber.network import models as nm
from mynumber.network.records import AccessRecord, ExchangeRequest
from mynumber.network.service import SIGNING_CONTEXT
from mynumber.platform import Platform
from mynumber.synth import REFERENCE_DATE

from .backends import Backend, open_platform
from .bench_http import (
    HOST,
    Phase,
    Request,
    _burst,
    _lean_burst,
    _raw_request,
    _run_async,
    running_server,
)
from .bench_import import run_import
from .common import Result, err, peak_rss_mib, progress
from .data import generate_rows

__all__ = [
    "ROUTES",
    "LedgerRun",
    "NetworkRun",
    "ledger_results",
    "network_results",
    "run_ledger",
    "run_network",
]

BARE_RUNS = 3
WARM = 200
"""Exchanges before each timed run (per worker in the concurrent runs): statement caches."""
WORKERS = 2
HTTP_WINDOW = 240.0
"""Upper bound of the timed HTTP exchange burst: requests are signed just before it, and the
network refuses those issued more than five minutes from its clock."""
LEDGER_APPENDS = 2_000
LEDGER_PROOFS = 2_000
LEDGER_CHUNK = 100_000
EXCHANGE_PATH = "/api/network/exchanges"


@dataclass(frozen=True, slots=True)
class Route:
    """One kind of request of the benchmark's traffic."""

    requester: str
    task: str
    provider: str
    item: str
    weight: int
    basis: str | None
    """The legal-basis row that allows it (legal_basis.toml); None: no row does (refused)."""


ROUTES = (
    Route(
        "shinjuku-kodomo", "child_allowance", "shinjuku-tax", "income", 25, "child_allowance.income"
    ),
    Route(
        "shinjuku-kodomo",
        "child_rearing_allowance",
        "nenkin",
        "pension_receipt",
        10,
        "child_rearing_allowance.pension",
    ),
    Route(
        "kenpo-mirai",
        "high_cost_medical",
        "shinjuku-tax",
        "income_bracket",
        20,
        "high_cost_medical.income_bracket",
    ),
    Route("nenkin", "pension_benefit", "jlis", "current_address", 20, "pension_benefit.address"),
    Route(
        "shinjuku-tax", "tax_assessment", "nenkin", "pension_receipt", 10, "tax_assessment.pension"
    ),
    Route(
        "kenpo-mirai",
        "qualification_check",
        "jlis",
        "current_address",
        10,
        "qualification_check.address",
    ),
    # An insurer may ask for the income bracket, not the income itself: refused, and recorded.
    Route("kenpo-mirai", "high_cost_medical", "shinjuku-tax", "income", 5, None),
)


@dataclass(frozen=True, slots=True)
class Job:
    """One exchange to run, and what it must answer."""

    requester: str
    internal_id: str
    task: str
    provider: str
    item: str
    expect: str
    """provided | not_held | refused"""
    basis: str | None
    value: Any

    def args(self) -> tuple[str, str, str, str, str]:
        return (self.requester, self.internal_id, self.task, self.provider, self.item)


@dataclass(frozen=True, slots=True)
class Answer:
    outcome: str
    reason: str | None
    basis: str | None
    value: Any
    leaf_index: int | None


def _wrong(job: Job, a: Answer) -> str | None:
    """What is wrong with `a` as the answer to `job` (None: right)."""
    what = f"{job.requester} → {job.provider} {job.item} ({job.internal_id})"
    if a.outcome != job.expect:
        return f"{what}: {a.outcome} ({a.reason}), expected {job.expect}"
    if job.expect == "refused":
        if a.reason != "network.no_legal_basis":
            return f"{what}: refused for {a.reason}, expected network.no_legal_basis"
    elif a.basis != job.basis:
        return f"{what}: basis {a.basis}, expected {job.basis}"
    if job.expect == "provided" and a.value != job.value:
        return f"{what}: another value than the provider's record"
    if a.leaf_index is None:
        return f"{what}: no leaf index"
    return None


class Traffic:
    """The seeded agencies' records as the benchmark derives them (demo_records, the same seed),
    independently of what the network stores."""

    def __init__(self, p: Platform, seed: int) -> None:
        records = demo_records(export_residents(p.municipality), p.clock.today(), seed)
        self.numbers = {a: {iid: num for iid, (num, _) in r.items()} for a, r in records.items()}
        self.held = {a: {num: data for num, data in r.values()} for a, r in records.items()}
        self.ids = {a: sorted(r) for a, r in records.items()}
        self.counts = {a: len(r) for a, r in records.items()}

    def jobs(self, n: int, rng: random.Random) -> list[Job]:
        routes = rng.choices(ROUTES, weights=[r.weight for r in ROUTES], k=n)
        out = []
        for r in routes:
            iid = rng.choice(self.ids[r.requester])
            if r.basis is None:
                expect, value = "refused", None
            else:
                data = self.held.get(r.provider, {}).get(self.numbers[r.requester][iid], {})
                expect = "provided" if r.item in data else "not_held"
                value = data.get(r.item)
            out.append(Job(r.requester, iid, r.task, r.provider, r.item, expect, r.basis, value))
        return out


# -- in process ---------------------------------------------------------------------------------


@dataclass
class Driven:
    """What one worker did: its answers, when it started and ended (time.monotonic, which is
    system-wide on Linux, so processes compare), and how long it spent signing."""

    warm: list[Answer]
    answers: list[Answer]
    start: float
    end: float
    signing: float


def _drive(
    p: Platform, jobs: Sequence[Job], tick: Callable[[int], None]
) -> tuple[list[Answer], float, float, float]:
    sign = p.agencies.sign_request
    exchange = p.network.exchange
    answers: list[Answer] = []
    signing = 0.0
    step = 50
    clock = time.perf_counter
    start = time.monotonic()
    for i, job in enumerate(jobs):
        t0 = clock()
        message, signature = sign(*job.args())
        t1 = clock()
        r = exchange(message, signature)
        signing += t1 - t0
        answers.append(Answer(r.outcome, r.reason, r.basis, r.value, r.leaf_index))
        if i % step == step - 1:
            tick(step)
    end = time.monotonic()
    tick(len(jobs) % step)
    return answers, start, end, signing


def _one_worker(
    p: Platform,
    warm: Sequence[Job],
    jobs: Sequence[Job],
    wait: Callable[[], Any],
    tick: Callable[[int], None],
) -> Driven:
    warm_answers = _drive(p, warm, lambda _k: None)[0]
    wait()
    answers, start, end, signing = _drive(p, jobs, tick)
    return Driven(warm_answers, answers, start, end, signing)


def _process_worker(
    data_dir: str,
    database_url: str | None,
    warm: list[Job],
    jobs: list[Job],
    barrier: Any,
    counter: Any,
    out: Any,
    k: int,
) -> None:
    """A spawned process: its own platform over the same deployment (as a server worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us; no second traceback

    def tick(n: int) -> None:
        with counter.get_lock():
            counter.value += n

    try:
        p = open_platform(Path(data_dir), database_url)
        try:
            # Every worker opens its platform before any of them appends: on PostgreSQL the
            # LedgerService start-up reads the leaves, then the newest head, in two statements,
            # and an append in between makes its head check fail.
            barrier.wait(timeout=600)
            driven = _one_worker(p, warm, jobs, lambda: barrier.wait(timeout=600), tick)
        finally:
            p.close()
        out.put((k, driven, None))
    except BaseException as exc:
        with contextlib.suppress(Exception):
            barrier.abort()
        out.put((k, None, f"{type(exc).__name__}: {exc}"))


@dataclass
class ExchangeRun:
    """One timed run of exchanges in process."""

    mode: str
    """serial | threads | processes"""
    workers: int
    count: int
    seconds: float
    signing_seconds: float
    outcomes: dict[str, int]
    leaves: int
    """Leaves the log gained during the run (warm-ups included)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "workers": self.workers,
            "exchanges": self.count,
            "seconds": self.seconds,
            "per_second": self.count / self.seconds if self.seconds else 0.0,
            "signing_seconds_summed_over_workers": self.signing_seconds,
            "outcomes": self.outcomes,
            "log_leaves_added": self.leaves,
        }


@dataclass
class HttpExchangeRun:
    client: str
    healthz: Phase
    exchanges: Phase
    outcomes: dict[str, int]

    def as_json(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "healthz": self.healthz.as_json(),
            "exchanges": self.exchanges.as_json(),
            "outcomes": self.outcomes,
        }


@dataclass
class NetworkRun:
    backend: str
    residents: int
    exchanges: int
    agency_records: dict[str, int] = field(default_factory=dict)
    seed_seconds: float = 0.0
    floor_seconds: list[float] = field(default_factory=list)
    runs: list[ExchangeRun] = field(default_factory=list)
    http: list[HttpExchangeRun] = field(default_factory=list)
    http_workers: int = 0
    concurrency: int = 0
    log_size: int = 0
    bundles_checked: int = 0
    wrong: list[str] = field(default_factory=list)
    wrong_count: int = 0

    @property
    def floor_best(self) -> float:
        return min(self.floor_seconds)

    def fail(self, why: str) -> None:
        self.wrong_count += 1
        if len(self.wrong) < 50:
            self.wrong.append(why)

    def as_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "residents": self.residents,
            "exchanges_per_run": self.exchanges,
            "agency_records": self.agency_records,
            "seed_seconds": self.seed_seconds,
            "crypto_floor_seconds_runs": self.floor_seconds,
            "in_process": [r.as_json() for r in self.runs],
            "http": {
                "server_workers": self.http_workers,
                "concurrency": self.concurrency,
                "clients": [h.as_json() for h in self.http],
            },
            "log_size_at_end": self.log_size,
            "proof_bundles_checked": self.bundles_checked,
            "wrong_count": self.wrong_count,
            "wrong": self.wrong,
        }


def _crypto_floor(jobs: Sequence[Job]) -> list[float]:
    """Seconds of the bare cryptography of len(jobs) exchanges, one run per entry: Ed25519
    sign + verify of a request of the same shape, SHA-256 of an access record (the leaf hash),
    Ed25519 sign of a tree head. Everything is prepared before the clock starts."""
    agency = Ed25519PrivateKey.generate()
    public = agency.public_key()
    log = Ed25519PrivateKey.generate()
    now = dt.datetime.combine(REFERENCE_DATE, dt.time(0, 0), tzinfo=dt.UTC)
    work: list[tuple[bytes, bytes, bytes]] = []
    for i, j in enumerate(jobs):
        code = f"{i:026d}"
        req = ExchangeRequest.new(j.requester, j.task, j.provider, j.item, code, now)
        rec = AccessRecord(
            req.request_id,
            now,
            j.requester,
            j.task,
            j.provider,
            j.item,
            j.basis,
            j.expect,
            None,
            secrets.token_bytes(32),
        )
        head = SignedTreeHead(b"", 1, i + 1, secrets.token_bytes(32), b"").signed_data()
        work.append((SIGNING_CONTEXT + req.to_bytes(), b"\x00" + rec.to_bytes(), head))
    sha256 = hashlib.sha256
    runs = []
    for _ in range(BARE_RUNS):
        t0 = time.perf_counter()
        for signed, record, head in work:
            public.verify(agency.sign(signed), signed)
            sha256(record).digest()
            log.sign(head)
        runs.append(time.perf_counter() - t0)
    return runs


def _log_size(p: Platform) -> int:
    head = p.ledger.head()
    return 0 if head is None else head.tree_size


def _check_leaves(
    run: NetworkRun, label: str, indices: Sequence[int | None], before: int, after: int
) -> None:
    """The leaves a run got: distinct, and exactly the ones the log gained (dense)."""
    got = [i for i in indices if i is not None]
    if len(set(got)) != len(got):
        run.fail(f"{label}: {len(got) - len(set(got))} leaf indices handed out twice")
    if sorted(got) != list(range(before, after)):
        run.fail(
            f"{label}: the log grew from {before:,} to {after:,} leaves, "
            f"the exchanges got {len(got):,} (min {min(got, default=-1)}, max {max(got, default=-1)})"
        )


def _tally(run: NetworkRun, jobs: Sequence[Job], answers: Sequence[Answer]) -> dict[str, int]:
    outcomes: Counter[str] = Counter()
    for job, a in zip(jobs, answers, strict=True):
        outcomes[a.outcome] += 1
        why = _wrong(job, a)
        if why:
            run.fail(why)
    return dict(outcomes)


def _serial(
    run: NetworkRun, backend: Backend, traffic: Traffic, n: int, rng: random.Random
) -> None:
    p = backend.platform
    warm, jobs = traffic.jobs(WARM, rng), traffic.jobs(n, rng)
    before = _log_size(p)
    with progress() as bar:
        task = bar.add_task(f"{backend.name}: exchanges in process, 1 thread", total=n)
        d = _one_worker(p, warm, jobs, lambda: None, lambda k: bar.advance(task, k))
    after = _log_size(p)
    _tally(run, warm, d.warm)
    outcomes = _tally(run, jobs, d.answers)
    _check_leaves(run, "1 thread", [a.leaf_index for a in d.warm + d.answers], before, after)
    run.runs.append(
        ExchangeRun("serial", 1, n, d.end - d.start, d.signing, outcomes, after - before)
    )


def _threads(
    run: NetworkRun, backend: Backend, traffic: Traffic, n: int, rng: random.Random
) -> None:
    shares = [traffic.jobs(n // WORKERS + (k < n % WORKERS), rng) for k in range(WORKERS)]
    warms = [traffic.jobs(WARM, rng) for _ in range(WORKERS)]
    platforms = [open_platform(backend.data_dir, backend.database_url) for _ in range(WORKERS)]
    barrier = threading.Barrier(WORKERS + 1)
    done: list[Driven | None] = [None] * WORKERS
    errors: list[BaseException] = []
    before = _log_size(backend.platform)
    try:
        with progress() as bar:
            task = bar.add_task(
                f"{backend.name}: exchanges, {WORKERS} threads × {WORKERS} platforms", total=n
            )

            def target(k: int) -> None:
                try:
                    done[k] = _one_worker(
                        platforms[k],
                        warms[k],
                        shares[k],
                        barrier.wait,
                        lambda c: bar.advance(task, c),
                    )
                except BaseException as exc:
                    errors.append(exc)
                    barrier.abort()

            threads = [
                threading.Thread(target=target, args=(k,), daemon=True) for k in range(WORKERS)
            ]
            for t in threads:
                t.start()
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
            for t in threads:
                t.join()
    finally:
        for p in platforms:
            p.close()
    if errors:
        raise errors[0]
    _finish_concurrent(run, backend, "threads", shares, warms, [d for d in done if d], before)


def _processes(
    run: NetworkRun, backend: Backend, traffic: Traffic, n: int, rng: random.Random
) -> None:
    shares = [traffic.jobs(n // WORKERS + (k < n % WORKERS), rng) for k in range(WORKERS)]
    warms = [traffic.jobs(WARM, rng) for _ in range(WORKERS)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS + 1)
    counter = ctx.Value("l", 0)
    out = ctx.Queue()
    procs = [
        ctx.Process(
            target=_process_worker,
            args=(
                str(backend.data_dir),
                backend.database_url,
                warms[k],
                shares[k],
                barrier,
                counter,
                out,
                k,
            ),
            daemon=True,
            name=f"bench-network-{k}",
        )
        for k in range(WORKERS)
    ]
    done: dict[int, Driven] = {}
    before = _log_size(backend.platform)
    try:
        for proc in procs:
            proc.start()
        with progress() as bar:
            task = bar.add_task(
                f"{backend.name}: exchanges, {WORKERS} processes × {WORKERS} platforms", total=n
            )
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=600)  # platforms open
                barrier.wait(timeout=600)  # warm-ups done: the clock starts
            while len(done) < WORKERS:
                try:
                    k, driven, failure = out.get(timeout=0.2)
                except queue.Empty:
                    bar.update(task, completed=counter.value)
                    dead = [x for x in procs if x.exitcode is not None and x.exitcode != 0]
                    if dead:
                        raise RuntimeError(
                            f"{dead[0].name} exited with {dead[0].exitcode}"
                        ) from None
                    continue
                if failure is not None:
                    raise RuntimeError(f"exchange worker {k}: {failure}")
                done[k] = driven
            bar.update(task, completed=counter.value)
        for proc in procs:
            proc.join(timeout=30)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        out.close()
    _finish_concurrent(
        run, backend, "processes", shares, warms, [done[k] for k in range(WORKERS)], before
    )


def _finish_concurrent(
    run: NetworkRun,
    backend: Backend,
    mode: str,
    shares: Sequence[Sequence[Job]],
    warms: Sequence[Sequence[Job]],
    driven: Sequence[Driven],
    before: int,
) -> None:
    after = _log_size(backend.platform)
    outcomes: Counter[str] = Counter()
    indices: list[int | None] = []
    for jobs, warm, d in zip(shares, warms, driven, strict=True):
        _tally(run, warm, d.warm)
        outcomes.update(_tally(run, jobs, d.answers))
        indices += [a.leaf_index for a in d.warm + d.answers]
    _check_leaves(run, f"{WORKERS} {mode}", indices, before, after)
    seconds = max(d.end for d in driven) - min(d.start for d in driven)
    run.runs.append(
        ExchangeRun(
            mode,
            WORKERS,
            sum(len(s) for s in shares),
            seconds,
            sum(d.signing for d in driven),
            dict(outcomes),
            after - before,
        )
    )


# -- over HTTP ----------------------------------------------------------------------------------


def _exchange_body(message: bytes, signature: bytes) -> bytes:
    doc = {
        "request": base64.b64encode(message).decode(),
        "signature": base64.b64encode(signature).decode(),
    }
    return json.dumps(doc).encode()


def _http_answer(status: int, body: bytes) -> Answer | str:
    """The answer in an HTTP response, or why there is none."""
    if status not in (200, 403):
        return f"HTTP {status} {body[:200]!r}"
    try:
        doc = json.loads(body)
        leaf = int(doc["record"]["leaf_index"])
        if status == 200:
            return Answer(doc["outcome"], doc["reason"], doc["basis"], doc["value"], leaf)
        return Answer("refused", doc["code"], None, None, leaf)
    except (ValueError, KeyError, TypeError) as exc:
        return f"HTTP {status}: unreadable answer ({exc!r}) {body[:200]!r}"


Send = Callable[[str, Sequence[Request], Callable[[int], None]], Awaitable[Phase]]


async def _http_phases(
    send: Send,
    backend: str,
    client: str,
    warm: Callable[[], list[Request]],
    signed: Callable[[], list[Request]],
    n: int,
    concurrency: int,
) -> tuple[Phase, Phase, Phase]:
    with progress() as bar:
        health: list[Request] = [("GET", "/healthz", None)]
        w_reqs = health * (2 * concurrency) + warm()
        t = bar.add_task(f"{backend}: {client} warm-up", total=len(w_reqs))
        w = await send("warm-up", w_reqs, lambda k: bar.advance(t, k))
        t = bar.add_task(f"{backend}: {client} GET /healthz (HTTP floor)", total=n)
        h = await send("healthz", health * n, lambda k: bar.advance(t, k))
        reqs = signed()  # on the wall clock, just before they are sent
        t = bar.add_task(f"{backend}: {client} POST {EXCHANGE_PATH}", total=len(reqs))
        x = await send("exchanges", reqs, lambda k: bar.advance(t, k))
    return w, h, x


def _http_client(
    client: str,
    base: str,
    token: str,
    backend: str,
    warm: Callable[[], list[Request]],
    signed: Callable[[], list[Request]],
    n: int,
    concurrency: int,
    time_limit: float,
) -> tuple[Phase, Phase, Phase]:
    hostport = base.removeprefix("http://")

    async def go() -> tuple[Phase, Phase, Phase]:
        if client == "lean":
            port = int(hostport.rsplit(":", 1)[1])

            async def lean(
                name: str, reqs: Sequence[Request], advance: Callable[[int], None]
            ) -> Phase:
                raw = [_raw_request(r, hostport, token) for r in reqs]
                limit = min(time_limit, HTTP_WINDOW) if name == "exchanges" else time_limit
                return await _lean_burst(HOST, port, name, raw, concurrency, limit, advance)

            return await _http_phases(lean, backend, client, warm, signed, n, concurrency)
        limits = httpx.Limits(
            max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=120
        )
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        async with httpx.AsyncClient(
            base_url=base,
            headers=headers,
            limits=limits,
            timeout=httpx.Timeout(30.0),
            trust_env=False,  # never a proxy: 127.0.0.1 only
        ) as c:

            async def via_httpx(
                name: str, reqs: Sequence[Request], advance: Callable[[int], None]
            ) -> Phase:
                limit = min(time_limit, HTTP_WINDOW) if name == "exchanges" else time_limit
                return await _burst(c, name, reqs, concurrency, limit, advance)

            return await _http_phases(via_httpx, backend, client, warm, signed, n, concurrency)

    return _run_async(go())


def _http(
    run: NetworkRun,
    backend: Backend,
    traffic: Traffic,
    n: int,
    rng: random.Random,
    *,
    clients: Sequence[str],
    workers: int,
    concurrency: int,
    time_limit: float,
    log_dir: Path,
) -> None:
    p = backend.platform
    # The server runs on the wall clock, so its agencies sign on it too.
    signer = AgencyService(p.agencies.engine, p.keystore, SystemClock())
    run.http_workers, run.concurrency = workers, concurrency

    def sign(jobs: Sequence[Job]) -> list[Request]:
        return [
            ("POST", EXCHANGE_PATH, _exchange_body(*signer.sign_request(*j.args()))) for j in jobs
        ]

    log = log_dir / f"server-network-{backend.name}.log"
    with running_server(backend.data_dir, backend.database_url, workers, log) as (base, token):
        err.print(f"[dim]{backend.name}: server ready at {base} ({workers} workers)")
        for client in clients:
            warm, jobs = traffic.jobs(WARM, rng), traffic.jobs(n, rng)
            before = _log_size(p)
            w, h, x = _http_client(
                client,
                base,
                token,
                backend.name,
                functools.partial(sign, warm),
                functools.partial(sign, jobs),
                n,
                concurrency,
                time_limit,
            )
            after = _log_size(p)
            indices: list[int | None] = []
            outcomes: Counter[str] = Counter()
            for phase, js in ((w, warm), (x, jobs)):
                statuses = phase.statuses[-len(js) :]
                bodies = phase.bodies[-len(js) :]
                for job, status, body in zip(js, statuses, bodies, strict=True):
                    if status == 0:
                        continue  # not sent: the phase hit its time limit (reported)
                    a = _http_answer(status, body)
                    if isinstance(a, str):
                        run.fail(f"HTTP ({client}) {job.requester} → {job.provider}: {a}")
                        continue
                    indices.append(a.leaf_index)
                    if phase is x:
                        outcomes[a.outcome] += 1
                    why = _wrong(job, a)
                    if why:
                        run.fail(f"HTTP ({client}) {why}")
            bad_health = sum(1 for s in h.statuses if s not in (0, 200))
            if bad_health:
                run.fail(f"HTTP ({client}): {bad_health} GET /healthz answered other than 200")
            if not (w.timed_out or x.timed_out):
                _check_leaves(run, f"HTTP ({client})", indices, before, after)
            run.http.append(HttpExchangeRun(client, h, x, dict(outcomes)))


# -- the phase ----------------------------------------------------------------------------------


def seed_network(backend: Backend, residents: int, seed: int) -> tuple[Traffic, float]:
    """Import `residents` synthetic residents and seed the demo agencies (not timed as a figure;
    its seconds are reported)."""
    rows = generate_rows(residents, seed)
    t0 = time.perf_counter()
    run_import(backend, rows, None)
    with progress() as bar:
        task = bar.add_task(
            f"{backend.name}: demo agencies (records, codes, copies, exchanges)", total=None
        )
        seed_agencies(backend.platform, seed, progress=lambda msg: err.print(f"[dim]  {msg}"))
        bar.update(task, total=1, completed=1)
    seconds = time.perf_counter() - t0
    return Traffic(backend.platform, seed), seconds


def run_network(
    backend: Backend,
    *,
    residents: int,
    exchanges: int,
    seed: int,
    clients: Sequence[str],
    workers: int,
    concurrency: int,
    time_limit: float,
    log_dir: Path,
) -> NetworkRun:
    run = NetworkRun(backend.name, residents, exchanges)
    traffic, run.seed_seconds = seed_network(backend, residents, seed)
    run.agency_records = dict(traffic.counts)
    rng = random.Random(seed + 3)
    err.print(f"[bold]{backend.name}:[/] crypto floor (Ed25519 sign + verify, SHA-256, Ed25519)")
    run.floor_seconds = _crypto_floor(traffic.jobs(exchanges, rng))
    _serial(run, backend, traffic, exchanges, rng)
    _threads(run, backend, traffic, exchanges, rng)
    _processes(run, backend, traffic, exchanges, rng)
    if clients:
        _http(
            run,
            backend,
            traffic,
            exchanges,
            rng,
            clients=clients,
            workers=workers,
            concurrency=concurrency,
            time_limit=time_limit,
            log_dir=log_dir,
        )
    _check_store(run, backend.platform, rng)
    if run.wrong_count:
        err.print(f"[red]{backend.name}: {run.wrong_count} wrong network answers")
    return run


def _check_store(run: NetworkRun, p: Platform, rng: random.Random) -> None:
    """After every run: each network row has its leaf, no leaf twice; proof bundles of a sample
    of records verify offline; the ledger's audit finds nothing."""
    r = nm.requests.c
    with p.network.engine.connect() as conn:
        rows, missing, distinct = conn.execute(
            select(
                func.count(),
                func.count() - func.count(r.leaf_index),
                func.count(r.leaf_index.distinct()),
            )
        ).one()
    run.log_size = _log_size(p)
    if missing:
        run.fail(f"{missing} network rows without a leaf in the log")
    if distinct != rows - missing:
        run.fail(f"{rows - missing - distinct} network rows share a leaf")
    if rows != run.log_size:
        run.fail(f"{rows:,} network rows but {run.log_size:,} leaves in the log")
    sample = sorted(rng.sample(range(run.log_size), min(200, run.log_size)))
    for index, bundle in zip(sample, p.ledger.proof_bundles(sample), strict=True):
        report = check_bundle(json.dumps(bundle))
        if not report.ok:
            run.fail(f"proof bundle of leaf {index}: {', '.join(report.findings)}")
    run.bundles_checked = len(sample)
    with progress() as bar:
        task = bar.add_task(f"{run.backend}: ledger audit ({run.log_size:,} leaves)", total=None)
        findings = p.ledger.audit()
        bar.update(task, total=1, completed=1)
    for f in findings:
        run.fail(f"ledger audit: {f}")


_MODE_LABEL = {
    "serial": "exchanges in process, 1 thread",
    "threads": f"  ″ {WORKERS} threads × {WORKERS} platforms",
    "processes": f"  ″ {WORKERS} processes × {WORKERS} platforms",
}
_CLIENT_LABEL = {"httpx": "httpx", "lean": "lean client"}
FLOOR = "bare crypto (Ed25519 sign+verify, SHA-256, Ed25519 STH)"


def _mix(outcomes: dict[str, int]) -> str:
    return ", ".join(f"{outcomes.get(k, 0):,} {k}" for k in ("provided", "not_held", "refused"))


def network_results(run: NetworkRun) -> list[Result]:
    floor_rate = run.exchanges / run.floor_best
    out: list[Result] = []
    serial = next((r for r in run.runs if r.mode == "serial"), None)
    for r in run.runs:
        rate = r.count / r.seconds if r.seconds else 0.0
        notes: list[str] = []
        if r.mode == "serial":
            notes.append(
                f"{1e3 * r.seconds / r.count:.2f} ms each, of which signing by the agency "
                f"{1e3 * r.signing_seconds / r.count:.2f} ms; {_mix(r.outcomes)}; "
                f"{run.residents:,} residents, agencies' records: "
                + ", ".join(f"{a} {n:,}" for a, n in sorted(run.agency_records.items()))
            )
        elif serial is not None and serial.seconds:
            vs = rate / (serial.count / serial.seconds)
            notes.append(
                f"×{vs:.2f} the 1-thread rate; {r.leaves:,} leaves appended by {r.workers} "
                f"platforms (warm-ups included), distinct and dense"
            )
        out.append(
            Result(
                benchmark=_MODE_LABEL[r.mode],
                backend=run.backend,
                value=rate,
                unit="exchanges/s",
                count=r.count,
                seconds=r.seconds,
                baseline=FLOOR,
                baseline_value=floor_rate,
                baseline_seconds=run.floor_best,
                notes=notes,
            )
        )
    for h in run.http:
        x, hz = h.exchanges, h.healthz
        done = sum(1 for s in x.statuses if s in (200, 403))
        rate = done / x.seconds if x.seconds else 0.0
        notes = [
            f"latency p50 {x.percentile(0.5) * 1000:.1f} ms, p99 {x.percentile(0.99) * 1000:.1f} ms; "
            f"{run.http_workers} server workers; client CPU {x.client_cpu_per_request * 1000:.2f} "
            f"ms/exchange; {_mix(h.outcomes)}"
        ]
        for phase in (hz, x):
            if phase.timed_out:
                notes.append(f"{phase.name}: stopped at its time limit after {phase.ok:,} answers")
        label = _CLIENT_LABEL[h.client]
        common: dict[str, Any] = {
            "backend": run.backend,
            "value": rate,
            "unit": "exchanges/s",
            "count": done,
            "seconds": x.seconds,
        }
        out.append(
            Result(
                benchmark=f"HTTP exchanges, {label} (c={run.concurrency})",
                baseline=f"GET /healthz ({h.client})",
                baseline_value=hz.rate,
                baseline_seconds=hz.seconds,
                notes=notes,
                **common,
            )
        )
        out.append(
            Result(
                benchmark="  ″ vs the in-process crypto floor",
                baseline=FLOOR,
                baseline_value=floor_rate,
                baseline_seconds=run.floor_best,
                **common,
            )
        )
    return out


# -- the log in its database --------------------------------------------------------------------


class _Keys:
    """An in-memory keystore (the Keystore protocol): the ledger's key for this run only."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}

    def secret(self, name: str, size: int = 32) -> bytes:
        return self._keys.setdefault(name, secrets.token_bytes(size))


_RECORD = (
    AccessRecord(
        request_id="%s",
        at=dt.datetime(2026, 10, 1, tzinfo=dt.UTC),
        requester="kenpo-mirai",
        task="high_cost_medical",
        provider="shinjuku-tax",
        item="income_bracket",
        basis="high_cost_medical.income_bracket",
        outcome="provided",
        reason=None,
        subject=b"\xee" * 32,
    )
    .to_bytes()
    .replace(b"ee" * 32, b"%s")
)


def ledger_record(i: int) -> bytes:
    """The synthetic access record of leaf `i`: an exchange record of the real shape (≈ 330
    bytes), its request id and subject commitment unique to `i`."""
    rid = b"%08x-0000-4000-8000-%012x" % (i >> 48, i & 0xFFFF_FFFF_FFFF)
    return _RECORD % (rid, hashlib.sha256(rid).hexdigest().encode())


@dataclass
class LedgerRun:
    backend: str
    leaves: int
    appends: int
    proofs: int
    bare_seconds: list[float] = field(default_factory=list)
    empty_append_seconds: float = 0.0
    fill_seconds: float = 0.0
    index_seconds: float = 0.0
    disk_bytes: int = 0
    startup_seconds: float = 0.0
    append_seconds: float = 0.0
    unique_append_seconds: float = 0.0
    proof_seconds: float = 0.0
    audit_seconds: float = 0.0
    heads: int = 0
    rss_mib: float = 0.0
    wrong: list[str] = field(default_factory=list)

    @property
    def bare_best(self) -> float:
        return min(self.bare_seconds)

    def as_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "leaves": self.leaves,
            "appends": self.appends,
            "proofs": self.proofs,
            "bare_sha256_seconds_runs": self.bare_seconds,
            "appends_on_empty_store_seconds": self.empty_append_seconds,
            "fill_seconds": self.fill_seconds,
            "leaf_hash_index_seconds": self.index_seconds,
            "disk_bytes": self.disk_bytes,
            "startup_seconds": self.startup_seconds,
            "append_seconds": self.append_seconds,
            "unique_append_seconds": self.unique_append_seconds,
            "proof_bundle_seconds": self.proof_seconds,
            "audit_seconds": self.audit_seconds,
            "signed_heads": self.heads,
            "peak_rss_mib": self.rss_mib,
            "wrong": self.wrong,
        }


def _disk_bytes(engine: Engine) -> int:
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        assert path
        return sum(
            os.path.getsize(f"{path}{s}") for s in ("", "-wal") if os.path.exists(f"{path}{s}")
        )
    with engine.connect() as conn:
        size = conn.execute(
            text(
                "SELECT pg_total_relation_size('leaves') + pg_total_relation_size('payloads') "
                "+ pg_total_relation_size('heads')"
            )
        ).scalar_one()
    return int(size)


@contextlib.contextmanager
def _bar(label: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    with progress() as bar:
        task = bar.add_task(label, total=total)
        yield lambda k: bar.advance(task, k)
        bar.update(task, total=total or 1, completed=total or 1)


def run_ledger(backend: str, url: str, leaves: int, seed: int) -> LedgerRun:
    """The ledger role's store at `url` (fresh: a file or a database of its own) filled to
    `leaves` leaves, then start-up, appends, proof bundles and the audit, each timed."""
    appends, proofs = LEDGER_APPENDS, LEDGER_PROOFS
    if leaves <= appends:
        raise ValueError(f"--ledger-leaves must exceed {appends:,}")
    run = LedgerRun(backend, leaves, appends, proofs)
    keys = _Keys()
    clock = FixedClock(dt.datetime.combine(REFERENCE_DATE, dt.time(9, 0)))
    engine = make_engine(url, "ledger")
    try:
        _fill(run, engine, keys, clock)
        with _bar(f"{backend}: ledger start-up at {leaves:,} leaves (rebuild + head check)"):
            t0 = time.perf_counter()
            svc = LedgerService(engine, keys, clock)
            run.startup_seconds = time.perf_counter() - t0
        run.rss_mib = peak_rss_mib()

        extra = [ledger_record(leaves + i) for i in range(appends)]
        with _bar(
            f"{backend}: {appends:,} appends of one record at {leaves:,} leaves", appends
        ) as tick:
            got: list[int] = []
            t0 = time.perf_counter()
            for i, r in enumerate(extra):
                got += svc.append([r])[0]
                if i % 100 == 99:
                    tick(100)
            run.append_seconds = time.perf_counter() - t0
        if got != list(range(leaves, leaves + appends)):
            run.wrong.append(f"appends at {leaves:,} leaves got indices {got[0]}…{got[-1]}")
        # As the network appends: the record's leaf looked up under the log's lock first.
        more = [ledger_record(leaves + appends + i) for i in range(appends)]
        with _bar(f"{backend}: {appends:,} appends with unique=True", appends) as tick:
            got = []
            t0 = time.perf_counter()
            for i, r in enumerate(more):
                got += svc.append([r], unique=True)[0]
                if i % 100 == 99:
                    tick(100)
            run.unique_append_seconds = time.perf_counter() - t0
        if got != list(range(leaves + appends, leaves + 2 * appends)):
            run.wrong.append(f"unique appends at {leaves:,} leaves got {got[0]}…{got[-1]}")
        if svc.append([extra[0]], unique=True)[0] != [leaves]:
            run.wrong.append("a unique append of a logged record did not return its leaf")
        size = leaves + 2 * appends

        rng = random.Random(seed)
        picks = [rng.randrange(size) for _ in range(proofs)]
        bundles = []
        with _bar(f"{backend}: {proofs:,} proof bundles in a tree of {size:,}", proofs) as tick:
            t0 = time.perf_counter()
            for i, index in enumerate(picks):
                bundles += svc.proof_bundles([index])
                if i % 100 == 99:
                    tick(100)
            run.proof_seconds = time.perf_counter() - t0
        for index, bundle in zip(picks, bundles, strict=True):
            report = check_bundle(json.dumps(bundle))
            if not report.ok or report.tree_size != size:
                run.wrong.append(f"proof bundle of leaf {index}: {report.findings}")
            elif bytes.fromhex(bundle["leaf_data"]) != ledger_record(index):
                run.wrong.append(f"proof bundle of leaf {index}: another record")

        with _bar(f"{backend}: ledger audit of {size:,} leaves"):
            t0 = time.perf_counter()
            findings = svc.audit()
            run.audit_seconds = time.perf_counter() - t0
        run.wrong += [f"audit: {f}" for f in findings]
        with engine.connect() as conn:
            run.heads = int(conn.execute(select(func.count()).select_from(lm.heads)).scalar_one())
        run.rss_mib = max(run.rss_mib, peak_rss_mib())
        del svc
    finally:
        engine.dispose()
    if run.wrong:
        err.print(f"[red]{backend}: {len(run.wrong)} wrong ledger answers")
    return run


def _fill(run: LedgerRun, engine: Engine, keys: _Keys, clock: FixedClock) -> None:
    """Leaves 0 … appends-1 through LedgerService.append (timed: appends on an almost empty
    store), the rest in bulk, with the bare SHA-256 floor timed over every leaf on the way."""
    n, appends, backend = run.leaves, run.appends, run.backend
    first = LedgerService(engine, keys, clock)
    with _bar(f"{backend}: {appends:,} appends of one record on an empty ledger", appends) as tick:
        t0 = time.perf_counter()
        for i in range(appends):
            first.append([ledger_record(i)])
            if i % 100 == 99:
                tick(100)
        run.empty_append_seconds = time.perf_counter() - t0
    now = clock.now().astimezone(dt.UTC)
    tree = MerkleTree()
    bare = [0.0] * BARE_RUNS
    sha256 = hashlib.sha256
    t_fill = time.perf_counter()
    with writing(engine) as conn:
        conn.execute(text("DROP INDEX ix_leaves_leaf_hash"))
    with _bar(
        f"{backend}: ledger store filled to {n:,} leaves (bulk) + bare SHA-256 × {BARE_RUNS}", n
    ) as tick:
        for start in range(0, n, LEDGER_CHUNK):
            end = min(n, start + LEDGER_CHUNK)
            records = [ledger_record(i) for i in range(start, end)]
            for k in range(BARE_RUNS):  # the floor, three runs over every leaf
                t0 = time.perf_counter()
                for r in records:
                    sha256(b"\x00" + r).digest()
                bare[k] += time.perf_counter() - t0
            hashes = [leaf_hash(r) for r in records]
            for h in hashes:
                tree.append_hash(h)
            lo = max(start, appends)  # the first leaves were appended by the service
            if lo < end:
                with writing(engine) as conn:
                    bulk_insert(
                        conn,
                        lm.leaves,
                        [
                            {"idx": i, "leaf_hash": hashes[i - start], "appended_at": now}
                            for i in range(lo, end)
                        ],
                    )
                    bulk_insert(
                        conn,
                        lm.payloads,
                        [{"idx": i, "body": records[i - start]} for i in range(lo, end)],
                    )
            tick(end - start)
    run.bare_seconds = bare
    early = first.head()
    if early is None or early.tree_size != appends or early.root_hash != tree.root(appends):
        run.wrong.append("the bulk-filled tree does not extend the appended one")
    t0 = time.perf_counter()
    with writing(engine) as conn:
        conn.execute(text("CREATE INDEX ix_leaves_leaf_hash ON leaves (leaf_hash)"))
        key = Ed25519PrivateKey.from_private_bytes(keys.secret("ledger-sth"))
        head = sign_head(key, n, tree.root(), int(now.timestamp() * 1000))
        conn.execute(
            lm.heads.insert().values(
                tree_size=n,
                timestamp_ms=head.timestamp_ms,
                root_hash=head.root_hash,
                signature=head.signature,
            )
        )
    run.index_seconds = time.perf_counter() - t0
    del tree, first
    # What a store at rest looks like: statistics gathered (PostgreSQL), the WAL folded in (SQLite).
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE leaves"))
            conn.execute(text("VACUUM ANALYZE payloads"))
    else:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    run.fill_seconds = time.perf_counter() - t_fill
    run.disk_bytes = _disk_bytes(engine)


def ledger_results(run: LedgerRun) -> list[Result]:
    n = run.leaves
    bare_rate = n / run.bare_best
    size = n + 2 * run.appends

    def result(benchmark: str, count: int, seconds: float, notes: list[str]) -> Result:
        return Result(
            benchmark=benchmark,
            backend=run.backend,
            value=count / seconds if seconds else 0.0,
            unit="/s",
            count=count,
            seconds=seconds,
            baseline="bare SHA-256 leaf hashes",
            baseline_value=bare_rate,
            baseline_seconds=run.bare_best,
            notes=notes,
        )

    gib = run.disk_bytes / 2**30
    return [
        result(
            f"ledger start-up at {n:,} leaves",
            n,
            run.startup_seconds,
            [
                f"{run.startup_seconds:,.1f} s: leaf hashes read, tree rebuilt, newest head "
                f"checked; peak RSS of the process {run.rss_mib:,.0f} MiB (the fill's tree included); the store: {gib:,.2f} GiB on disk, "
                f"filled in {run.fill_seconds:,.0f} s (bulk, leaf-hash index built after: "
                f"{run.index_seconds:,.0f} s)"
            ],
        ),
        result(
            f"ledger appends, 1 record each, at {n:,}",
            run.appends,
            run.append_seconds,
            [
                f"{1e3 * run.append_seconds / run.appends:.2f} ms each; on an empty store: "
                f"{run.appends / run.empty_append_seconds:,.0f}/s "
                f"({1e3 * run.empty_append_seconds / run.appends:.2f} ms each); with "
                f"unique=True, as the network appends: {run.appends / run.unique_append_seconds:,.0f}/s "
                f"({1e3 * run.unique_append_seconds / run.appends:.2f} ms each)"
            ],
        ),
        result(
            f"ledger proof_bundles, 1 leaf each, in {size:,}",
            run.proofs,
            run.proof_seconds,
            [
                f"{1e6 * run.proof_seconds / run.proofs:,.0f} µs each (head read, record read, "
                f"inclusion path); every bundle checked offline"
            ],
        ),
        result(
            f"ledger audit of {size:,} leaves",
            size,
            run.audit_seconds,
            [
                f"{run.audit_seconds:,.1f} s: every record re-hashed, tree rebuilt, "
                f"{run.heads:,} signed heads verified"
            ],
        ),
    ]
