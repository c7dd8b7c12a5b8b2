"""Five-item queries over HTTP against the real server (`mynumber serve --workers 2`).

The client is one asyncio httpx.AsyncClient in this process with ~32 requests in flight over
keep-alive connections, only to 127.0.0.1, each phase bounded in time. Floors: GET /healthz
through the same client at the same concurrency (the bare HTTP cost of this stack), and the
in-process bare lookup. The server is always terminated (its whole process group), also on
errors, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from .backends import Backend
from .bench_query import BareRun, Tally
from .common import Result, err, progress
from .data import Claim

__all__ = ["HttpRun", "http_results", "run_http", "server_cpu_seconds"]

TARGET_QPS = 1000.0
_T = TypeVar("_T")
HOST = "127.0.0.1"
_LIVE: set[subprocess.Popen[bytes]] = set()
_GROUPS: dict[str, int] = {}  # base URL → the server's process group (its session)


def server_cpu_seconds(base: str) -> float:
    """CPU time (user + system) so far of every live process of the server at `base` — the
    supervisor and its workers (they share its session) — from /proc."""
    group = _GROUPS[base]
    ticks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[3]) == group:  # session id (field 6 of stat; 4 after the name)
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the server we started and its workers: SIGTERM to its own process group (it
    was started as a session leader, so the group is exactly the server), SIGKILL if needed."""
    pgid = proc.pid
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        if not _group_alive(pgid):
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.1)
            if proc.poll() is not None and not _group_alive(pgid):
                break
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=1)
    _LIVE.discard(proc)


@atexit.register
def _stop_all() -> None:
    for proc in list(_LIVE):
        _stop(proc)


@contextlib.contextmanager
def running_server(
    data_dir: Path,
    database_url: str | None,
    workers: int,
    log_path: Path,
    ready_timeout: float = 120.0,
    extra_args: Sequence[str] = (),
    env_extra: dict[str, str] | None = None,
) -> Iterator[tuple[str, str]]:
    """Start `python -m mynumber.cli serve` on a free port of 127.0.0.1 over `data_dir` (and
    `database_url`); yield (base URL, staff token) once /healthz answers; always stop it."""
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "mynumber.cli",
        "serve",
        "--workers",
        str(workers),
        "--host",
        HOST,
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        *extra_args,
    ]
    if database_url:
        cmd += ["--database-url", database_url]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYNUMBER_")}
    env.update(env_extra or {})
    base = f"http://{HOST}:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        _LIVE.add(proc)
        try:
            _wait_ready(proc, base, log_path, ready_timeout)
            token = (data_dir / "demo-token").read_text().strip()
            _GROUPS[base] = proc.pid
            yield base, token
        finally:
            _GROUPS.pop(base, None)
            _stop(proc)


def _wait_ready(proc: subprocess.Popen[bytes], base: str, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base, trust_env=False, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the server exited with {proc.returncode}:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get("/healthz").status_code == 200:
                    return
            time.sleep(0.1)
    tail = log_path.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"the server did not answer /healthz within {timeout:.0f} s:\n{tail}")


Request = tuple[str, str, bytes | None]


@dataclass
class Phase:
    """One timed burst of requests."""

    name: str
    sent: int
    seconds: float
    statuses: list[int]
    bodies: list[bytes]
    latencies: list[float]
    timed_out: bool
    client_cpu: float = 0.0
    """CPU seconds this (client) process spent during the phase."""

    @property
    def ok(self) -> int:
        return sum(1 for s in self.statuses if s == 200)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def client_cpu_per_request(self) -> float:
        done = sum(1 for s in self.statuses if s != 0)
        return self.client_cpu / done if done else float("nan")

    def percentile(self, q: float) -> float:
        lat = sorted(x for x in self.latencies if x == x)
        if not lat:
            return float("nan")
        return lat[min(len(lat) - 1, int(q * len(lat)))]

    def as_json(self) -> dict[str, Any]:
        done = [x for x in self.latencies if x == x]
        return {
            "name": self.name,
            "sent": self.sent,
            "ok": self.ok,
            "seconds": self.seconds,
            "per_second": self.rate,
            "timed_out": self.timed_out,
            "client_cpu_seconds": self.client_cpu,
            "client_cpu_ms_per_request": self.client_cpu_per_request * 1000,
            "latency_ms": {
                "p50": self.percentile(0.50) * 1000,
                "p90": self.percentile(0.90) * 1000,
                "p99": self.percentile(0.99) * 1000,
                "mean": statistics.fmean(done) * 1000 if done else None,
            },
            "statuses": {str(s): self.statuses.count(s) for s in sorted(set(self.statuses))},
        }


async def _wait_all(tasks: list[asyncio.Task[None]], time_limit: float) -> set[Any]:
    """Wait for the workers up to `time_limit`; cancel whatever is left (also when we are
    cancelled ourselves) and collect every outcome, so no task outlives its phase. Returns the
    tasks that were still running at the limit."""
    pending: set[Any] = set()
    try:
        _, pending = await asyncio.wait(tasks, timeout=time_limit)
    finally:
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            raise outcome
    return pending


async def _burst(
    client: httpx.AsyncClient,
    name: str,
    requests: Sequence[Request],
    concurrency: int,
    time_limit: float,
    advance: Callable[[int], None],
) -> Phase:
    n = len(requests)
    statuses = [0] * n
    bodies = [b""] * n
    latencies = [float("nan")] * n
    todo = iter(range(n))
    step = 100
    done = 0

    async def worker() -> None:
        nonlocal done
        for i in todo:  # one shared iterator: each request is sent once
            method, path, content = requests[i]
            t = time.perf_counter()
            try:
                r = await client.request(method, path, content=content)
                statuses[i] = r.status_code
                bodies[i] = r.content
            except httpx.HTTPError as exc:
                statuses[i] = -1
                bodies[i] = repr(exc).encode()
            latencies[i] = time.perf_counter() - t
            done += 1
            if done % step == 0:
                advance(step)

    c0 = time.process_time()
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    pending = await _wait_all(tasks, time_limit)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0
    advance(done % step)
    return Phase(name, n, seconds, statuses, bodies, latencies, bool(pending), cpu)


def _post(claim: Claim) -> Request:
    body = json.dumps(claim.body(), ensure_ascii=False).encode()
    return ("POST", "/api/jlis/five-item-queries", body)


# -- the lean client: raw asyncio streams, HTTP/1.1 keep-alive, nothing else --------------------


def _raw_request(req: Request, host: str, token: str) -> bytes:
    """The request as bytes on the wire (built before anything is timed)."""
    method, path, content = req
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Authorization: Bearer {token}"]
    if content is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(content)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + (content or b"")


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, server closes) of one HTTP/1.1 response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length: int | None = None
    chunked = close = False
    for line in lines[1:]:
        key, _, value = line.partition(b":")
        key = key.strip().lower()
        if key == b"content-length":
            length = int(value)
        elif key == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif key == b"connection":
            close = value.strip().lower() == b"close"
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            parts.append(chunk[:-2])
        return status, b"".join(parts), close
    if length is None:
        raise ValueError("response without Content-Length")
    return status, await reader.readexactly(length), close


async def _lean_burst(
    host: str,
    port: int,
    name: str,
    requests: Sequence[bytes],
    concurrency: int,
    time_limit: float,
    advance: Callable[[int], None],
) -> Phase:
    n = len(requests)
    statuses = [0] * n
    bodies = [b""] * n
    latencies = [float("nan")] * n
    todo = iter(range(n))
    step = 100
    done = 0
    conns = [await asyncio.open_connection(host, port) for _ in range(concurrency)]

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal done
        try:
            for i in todo:
                t = time.perf_counter()
                try:
                    writer.write(requests[i])
                    status, body, close = await _read_response(reader)
                    statuses[i], bodies[i] = status, body
                except (OSError, EOFError, ValueError, asyncio.IncompleteReadError) as exc:
                    statuses[i], bodies[i], close = -1, repr(exc).encode(), True
                latencies[i] = time.perf_counter() - t
                done += 1
                if done % step == 0:
                    advance(step)
                if close:
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
        finally:
            writer.close()

    c0 = time.process_time()
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(worker(r, w)) for r, w in conns]
    pending = await _wait_all(tasks, time_limit)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0
    advance(done % step)
    return Phase(name, n, seconds, statuses, bodies, latencies, bool(pending), cpu)


# -- the run ---------------------------------------------------------------------------------


@dataclass
class ClientRun:
    """GET /healthz and the claims through one client, same concurrency, same server."""

    client: str
    """httpx | lean"""
    healthz: Phase
    queries: Phase
    tally: Tally

    def as_json(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "healthz": self.healthz.as_json(),
            "five_item_queries": self.queries.as_json(),
            "correctness": self.tally.as_json(),
        }


@dataclass
class HttpRun:
    backend: str
    workers: int
    concurrency: int
    time_limit: float
    clients: list[ClientRun] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "server_workers": self.workers,
            "concurrency": self.concurrency,
            "time_limit": self.time_limit,
            "clients": [c.as_json() for c in self.clients],
        }


async def _httpx_phases(
    base: str,
    token: str,
    backend: str,
    claims: Sequence[Claim],
    warm: Sequence[Claim],
    concurrency: int,
    time_limit: float,
) -> tuple[Phase, Phase]:
    limits = httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=120
    )
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    health: list[Request] = [("GET", "/healthz", None)] * len(claims)
    posts = [_post(c) for c in claims]  # bodies encoded before anything is timed
    async with httpx.AsyncClient(
        base_url=base,
        headers=headers,
        limits=limits,
        timeout=httpx.Timeout(30.0),
        trust_env=False,  # never a proxy: 127.0.0.1 only
    ) as client:
        with progress() as bar:
            warmup = [("GET", "/healthz", None)] * (2 * concurrency) + [_post(c) for c in warm]
            task = bar.add_task(f"{backend}: httpx warm-up", total=len(warmup))
            w = await _burst(
                client, "warm-up", warmup, concurrency, time_limit, lambda k: bar.advance(task, k)
            )
            _check_warm(w)
            h_task = bar.add_task(f"{backend}: httpx GET /healthz (HTTP floor)", total=len(health))
            healthz = await _burst(
                client, "healthz", health, concurrency, time_limit, lambda k: bar.advance(h_task, k)
            )
            q_task = bar.add_task(f"{backend}: httpx POST five-item-queries", total=len(posts))
            queries = await _burst(
                client, "queries", posts, concurrency, time_limit, lambda k: bar.advance(q_task, k)
            )
    return healthz, queries


async def _lean_phases(
    base: str,
    token: str,
    backend: str,
    claims: Sequence[Claim],
    warm: Sequence[Claim],
    concurrency: int,
    time_limit: float,
) -> tuple[Phase, Phase]:
    hostport = base.removeprefix("http://")
    port = int(hostport.rsplit(":", 1)[1])
    health = _raw_request(("GET", "/healthz", None), hostport, token)
    healths = [health] * len(claims)
    posts = [_raw_request(_post(c), hostport, token) for c in claims]
    warmup = [health] * (2 * concurrency) + [_raw_request(_post(c), hostport, token) for c in warm]
    with progress() as bar:
        task = bar.add_task(f"{backend}: lean warm-up", total=len(warmup))
        w = await _lean_burst(
            HOST, port, "warm-up", warmup, concurrency, time_limit, lambda k: bar.advance(task, k)
        )
        _check_warm(w)
        h_task = bar.add_task(f"{backend}: lean GET /healthz (HTTP floor)", total=len(healths))
        healthz = await _lean_burst(
            HOST,
            port,
            "healthz",
            healths,
            concurrency,
            time_limit,
            lambda k: bar.advance(h_task, k),
        )
        q_task = bar.add_task(f"{backend}: lean POST five-item-queries", total=len(posts))
        queries = await _lean_burst(
            HOST, port, "queries", posts, concurrency, time_limit, lambda k: bar.advance(q_task, k)
        )
    return healthz, queries


def _check_warm(w: Phase) -> None:
    for status, body in zip(w.statuses, w.bodies, strict=True):
        if status != 200:
            raise RuntimeError(f"a warm-up request failed with {status}: {body[:500]!r}")


def _tally(backend: str, client: str, claims: Sequence[Claim], queries: Phase) -> Tally:
    tally = Tally(backend, f"HTTP ({client})")
    for claim, status, body in zip(claims, queries.statuses, queries.bodies, strict=True):
        if status != 200:
            why = "not sent (time limit)" if status == 0 else f"HTTP {status} {body[:200]!r}"
            tally.fail(claim, why)
            continue
        r = json.loads(body)
        tally.add(
            claim,
            r["outcome"],
            r.get("resident_code"),
            r.get("individual_number"),
            int(r.get("candidates") or 0),
        )
    return tally


def _run_async(coro: Coroutine[Any, Any, _T]) -> _T:
    """asyncio.run, with SIGTERM cancelling the run (so the tasks unwind quietly) and then
    exiting through every finally, like the rest of the benchmark."""

    async def main() -> _T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await coro
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_http(
    backend: Backend,
    claims: Sequence[Claim],
    warm: Sequence[Claim],
    *,
    clients: Sequence[str],
    workers: int,
    concurrency: int,
    time_limit: float,
    log_dir: Path,
) -> HttpRun:
    run = HttpRun(backend.name, workers, concurrency, time_limit)
    log = log_dir / f"server-{backend.name}.log"
    with running_server(backend.data_dir, backend.database_url, workers, log) as (base, token):
        err.print(f"[dim]{backend.name}: server ready at {base} ({workers} workers)")
        for client in clients:
            phases = _httpx_phases if client == "httpx" else _lean_phases
            healthz, queries = _run_async(
                phases(base, token, backend.name, claims, warm, concurrency, time_limit)
            )
            tally = _tally(backend.name, client, claims, queries)
            run.clients.append(ClientRun(client, healthz, queries, tally))
    return run


_CLIENT_LABEL = {"httpx": "httpx", "lean": "lean client"}


def http_results(run: HttpRun, bare: BareRun) -> list[Result]:
    results: list[Result] = []
    for c in run.clients:
        q, h = c.queries, c.healthz
        notes = [
            f"latency p50 {q.percentile(0.5) * 1000:.1f} ms, p99 {q.percentile(0.99) * 1000:.1f} ms;"
            f" client CPU {q.client_cpu_per_request * 1000:.2f} ms/query,"
            f" {h.client_cpu_per_request * 1000:.2f} ms/healthz"
            f" ({q.client_cpu / q.seconds:.0%} of one core during the queries)"
        ]
        for phase in (h, q):
            if phase.timed_out:
                notes.append(
                    f"{phase.name}: stopped at the {run.time_limit:.0f} s limit "
                    f"after {phase.ok:,} answers"
                )
        common: dict[str, Any] = {
            "backend": run.backend,
            "value": q.rate,
            "unit": "queries/s",
            "count": q.ok,
            "seconds": q.seconds,
            "target": TARGET_QPS,
            "target_text": f"≥ {TARGET_QPS:,.0f}/s",
        }
        label = _CLIENT_LABEL[c.client]
        results.append(
            Result(
                benchmark=f"HTTP five-item, {label} (c={run.concurrency})",
                baseline=f"GET /healthz ({c.client})",
                baseline_value=h.rate,
                baseline_seconds=h.seconds,
                notes=notes,
                **common,
            )
        )
        results.append(
            Result(
                benchmark="  ″ vs the in-process floor",
                baseline="bare lookup (raw driver)",
                baseline_value=bare.rate,
                baseline_seconds=bare.best_seconds,
                **common,
            )
        )
    return results
