"""A real server: `mynumber serve --workers 2` in a subprocess, on SQLite and on PostgreSQL.

Concurrent clients, concurrent replays of one idempotency key, and a worker killed with SIGKILL
in the middle of a burst (I8: nothing lost, nothing half-done, a retry gives the same result).
All traffic goes to 127.0.0.1 only; the server is always stopped, and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

HOST = "127.0.0.1"
MUNI = "131041"  # the municipality `serve --seed-residents` creates (東京都新宿区)
M = f"/api/municipality/municipalities/{MUNI}"
STARTUP_SECONDS = 600  # a loaded CI machine seeding 100 cards takes its time
REQUEST_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base_url: str
    data_dir: Path
    token: str
    log: Path
    database_url: str | None = None  # None: SQLite files under data_dir

    def client(self) -> httpx.Client:
        # trust_env=False: no proxy from the environment; only 127.0.0.1 is ever contacted.
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=REQUEST_TIMEOUT,
            trust_env=False,
        )

    def workers(self) -> list[int]:
        """The uvicorn worker processes: the supervisor's children started by multiprocessing."""
        pids: list[int] = []
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            try:
                pids.extend(int(p) for p in (task / "children").read_text().split())
            except FileNotFoundError:
                continue
        out = []
        for pid in pids:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"spawn_main" in cmdline:
                out.append(pid)
        return sorted(out)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the supervisor (it stops its workers); SIGKILL its process group if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
    # The server was started in its own session, so its process group (id = its pid) holds its
    # workers; a group id is not reused while any member lives.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 0)  # anyone left?
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


@contextlib.contextmanager
def start(
    data_dir: Path,
    log: Path,
    database_url: str | None,
    *,
    workers: int = 2,
    seed_residents: int = 200,
    seed_cards: int = 2,  # a card is 0.3 s of CPU (RSA keys, scrypt): a few show seeding works
    env_extra: dict[str, str] | None = None,
) -> Iterator[Server]:
    """`mynumber serve --workers N` on a free port, healthy and with all its workers up; stopped
    (its whole process group) on exit. Several may share one data directory and database:
    several servers behind one address."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYNUMBER_")}
    env["MYNUMBER_DATA_DIR"] = str(data_dir)
    if database_url:
        env["MYNUMBER_DATABASE_URL"] = database_url
    env.update(env_extra or {})
    cmd = [
        sys.executable, "-m", "mynumber.cli", "serve", "--workers", str(workers),
        "--host", HOST, "--port", str(port), "--data-dir", str(data_dir),
        "--seed-residents", str(seed_residents), "--seed-cards", str(seed_cards),
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        base_url = f"http://{HOST}:{port}"
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                # what each process is waiting on: every thread's stack, into the log
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGUSR1)
                time.sleep(2)
                pytest.fail(f"server not healthy after {STARTUP_SECONDS} s:\n{log.read_text()}")
            try:
                r = httpx.get(f"{base_url}/healthz", timeout=2, trust_env=False)
                if r.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        token = (data_dir / "demo-token").read_text().strip()
        srv = Server(proc, base_url, data_dir, token, log, database_url)
        _wait_for(lambda: len(srv.workers()) == workers, 30, f"{workers} workers")
        yield srv
    finally:
        _stop(proc)


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    database_url: str | None = None
    if request.param == "postgres":
        # Requested here so that its database is dropped only after the server has stopped.
        database_url = request.getfixturevalue("postgres_url")
    with start(tmp_path / "data", tmp_path / "server.log", database_url) as srv:
        yield srv


def _wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.1)


def person(kana: str, i: int) -> dict[str, str]:
    """A distinct person per `i`: the same name, a different birth date and address."""
    born = dt.date(1950, 1, 1) + dt.timedelta(days=97 * i)
    return {
        "family_name": "並行",
        "given_name": "一郎",
        "family_name_kana": kana,
        "given_name_kana": "イチロウ",
        "birth_date": born.isoformat(),
        "sex": "1",
        "address": f"東京都新宿区西新宿二丁目{i + 1}番1号",
    }


def five_items(p: dict[str, str]) -> dict[str, str]:
    return {
        "name": f"{p['family_name']} {p['given_name']}",
        "name_kana": f"{p['family_name_kana']} {p['given_name_kana']}",
        "birth_date": p["birth_date"],
        "sex": p["sex"],
        "address": p["address"],
    }


@dataclass
class Outcome:
    status: int | None = None
    body: Any = None
    replayed: bool = False
    error: str | None = None


def send_move_in(srv: Server, body: dict[str, str], key: str) -> Outcome:
    try:
        with srv.client() as c:
            r = c.post(f"{M}/move-ins", json=body, headers={"Idempotency-Key": key})
    except httpx.TransportError as e:  # connection reset, refused, or closed mid-response
        return Outcome(error=f"{type(e).__name__}: {e}")
    try:
        parsed = r.json()
    except ValueError:
        parsed = r.text
    return Outcome(r.status_code, parsed, r.headers.get("Idempotent-Replayed") == "true")


def burst(srv: Server, jobs: list[tuple[dict[str, str], str]], threads: int) -> list[Outcome]:
    """Send `jobs` (body, key) from `threads` threads that start together."""
    gate = threading.Barrier(min(threads, len(jobs)))

    def run(job: tuple[dict[str, str], str]) -> Outcome:
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait(timeout=30)
        return send_move_in(srv, *job)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(run, job) for job in jobs]
        return [f.result(timeout=REQUEST_TIMEOUT * 3) for f in futures]


def count(srv: Server, kana: str) -> int:
    with srv.client() as c:
        r = c.get(f"{M}/residents", params={"kana_prefix": kana, "limit": 500})
    assert r.status_code == 200, r.text
    total: int = r.json()["total"]
    return total


def check_residents(srv: Server, kana: str, people: list[dict[str, str]]) -> dict[str, str]:
    """Every person is registered exactly once, active, with a number; returns code → number."""
    numbers: dict[str, str] = {}
    with srv.client() as c:
        r = c.get(f"{M}/residents", params={"kana_prefix": kana, "limit": 500})
        assert r.status_code == 200
        listed = r.json()
        assert listed["total"] == len(people), listed["total"]
        for item in listed["items"]:
            assert item["status"] == "active"
            shown = item["individual_number"]
            assert shown is not None and shown.startswith("********") and len(shown) == 12, item
        for p in people:
            r = c.post("/api/jlis/five-item-queries", json=five_items(p))
            assert r.status_code == 200, r.text
            found = r.json()
            assert found["outcome"] == "found", (p, found)
            r = c.get(f"{M}/residents/{found['resident_code']}")
            assert r.status_code == 200
            assert r.json()["individual_number"] == "*" * 8 + found["individual_number"][-4:]
            numbers[found["resident_code"]] = found["individual_number"]
    assert len(numbers) == len(people)
    assert len(set(numbers.values())) == len(people), "two people share a number"
    return numbers


def assert_clean_log(srv: Server, secrets_used: Iterable[str]) -> None:
    """No error was logged, and none of `secrets_used` — whole individual numbers (I5), PINs
    (I7) — appears in the server log. A string of digits counts only as a whole token, so a
    4-digit PIN is not "found" inside a port or a longer number."""
    log = srv.output()
    assert "Traceback" not in log and "unexpected" not in log, log[-4000:]
    for secret in secrets_used:
        pattern = re.escape(secret)
        if secret.isdigit():
            pattern = rf"(?<![0-9]){pattern}(?![0-9])"
        assert re.search(pattern, log) is None, "a secret reached the server log"


def test_concurrent_move_ins(server: Server) -> None:
    kana = "ヘイコウ"
    assert count(server, kana) == 0
    people = [person(kana, i) for i in range(32)]
    outcomes = burst(server, [(p, f"concurrent-{i}") for i, p in enumerate(people)], 32)
    bad = [o for o in outcomes if o.status != 201]
    assert not bad, bad[:3]
    codes = {o.body["resident_code"] for o in outcomes}
    assert len(codes) == 32
    numbers = check_residents(server, kana, people)
    assert set(numbers) == codes
    assert_clean_log(server, numbers.values())
    with server.client() as c:
        stats = c.get("/api/jlis/stats").json()
        assert stats["numbers"] >= 232 and stats["identities"] >= 232
        everyone = c.get(f"{M}/residents", params={"limit": 500}).json()
    assert everyone["total"] == 232
    assert all(x["individual_number"] for x in everyone["items"])


def test_concurrent_replays_of_one_key(server: Server) -> None:
    kana = "ドウジ"
    body = person(kana, 1)
    key = f"same-{uuid.uuid4()}"
    outcomes = burst(server, [(body, key)] * 16, 16)
    assert all(o.status == 201 for o in outcomes), [(o.status, o.error) for o in outcomes]
    first = outcomes[0].body
    assert all(o.body == first for o in outcomes)
    assert sum(not o.replayed for o in outcomes) <= 1
    assert count(server, kana) == 1
    numbers = check_residents(server, kana, [body])
    assert_clean_log(server, numbers.values())
    # The same key with another body is refused, whoever answers.
    other = send_move_in(server, {**body, "given_name": "二郎"}, key)
    assert other.status == 409 and other.body["code"] == "idempotency.key_reused"
    assert count(server, kana) == 1


def test_a_worker_killed_mid_burst(server: Server) -> None:
    kana = "テイシ"
    people = [person(kana, i) for i in range(64)]
    keys = [f"kill-{i}-{uuid.uuid4()}" for i in range(64)]
    victim = server.workers()[0]
    done = 0
    lock = threading.Lock()

    def run(i: int) -> Outcome:
        nonlocal done
        outcome = send_move_in(server, people[i], keys[i])
        with lock:
            done += 1
        return outcome

    with ThreadPoolExecutor(max_workers=32) as pool:
        futures = [pool.submit(run, i) for i in range(64)]
        _wait_for(lambda: done >= 4, 60, "the burst to get going")
        os.kill(victim, signal.SIGKILL)
        outcomes = [f.result(timeout=REQUEST_TIMEOUT * 3) for f in futures]

    _wait_for(lambda: victim not in server.workers(), 10, "the killed worker to be gone")
    served = [o for o in outcomes if o.status is not None]
    failed = [i for i, o in enumerate(outcomes) if o.error is not None]
    assert all(o.status == 201 for o in served), [
        (o.status, o.body) for o in served if o.status != 201
    ]
    assert len(served) + len(failed) == 64
    print(f"{len(failed)} of 64 requests lost their connection when worker {victim} was killed")

    # Retry every request with its own key (the ones that succeeded too: they replay).
    results: dict[int, Outcome] = {}
    deadline = time.monotonic() + 90
    pending = list(range(64))
    while pending:
        assert time.monotonic() < deadline, f"{len(pending)} retries still failing"
        for i in list(pending):
            o = send_move_in(server, people[i], keys[i])
            if o.error is None:
                assert o.status == 201, (o.status, o.body)
                results[i] = o
                pending.remove(i)
        if pending:
            time.sleep(0.5)
    for i, o in enumerate(outcomes):
        if o.status == 201:
            assert results[i].replayed and results[i].body == o.body
        if i in failed:
            retried = results[i].body
            assert retried["resident"]["individual_number"], retried
    codes = {o.body["resident_code"] for o in results.values()}
    assert len(codes) == 64
    numbers = check_residents(server, kana, people)
    assert set(numbers) == codes
    with server.client() as c:
        everyone = c.get(f"{M}/residents", params={"limit": 500}).json()
    assert everyone["total"] == 264
    assert all(x["individual_number"] for x in everyone["items"]), "a resident without a number"
    assert_clean_log(server, numbers.values())


def test_usr1_dumps_every_stack_and_the_server_goes_on(server: Server) -> None:
    """`kill -USR1` (what a stuck start-up gets from `start`) writes each thread's stack of the
    supervisor and of every worker to the log; nothing stops."""

    def catches_usr1(pid: int) -> bool:  # SigCgt: the handler is in (a worker still importing
        # has the default action, which is to terminate)
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return False
        caught = int(next(x for x in status.splitlines() if x.startswith("SigCgt:")).split()[1], 16)
        return bool(caught & (1 << (signal.SIGUSR1 - 1)))

    def ready() -> bool:
        current = [server.proc.pid, *server.workers()]
        return len(current) == 3 and all(catches_usr1(p) for p in current)

    _wait_for(ready, 120, "SIGUSR1 handlers")
    pids = [server.proc.pid, *server.workers()]
    before = server.log.read_text(errors="replace").count("most recent call first")
    for pid in pids:
        os.kill(pid, signal.SIGUSR1)
    _wait_for(
        lambda: (
            server.log.read_text(errors="replace").count("most recent call first")
            >= before + len(pids)
        ),
        30,
        "a stack dump from each process",
    )
    with server.client() as c:
        assert c.get("/healthz").status_code == 200
    assert server.proc.poll() is None and len(server.workers()) == len(pids) - 1
