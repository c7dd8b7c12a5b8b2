"""Kiosk issuance end to end: N kiosks at once against `mynumber serve --workers 2`.

Each kiosk is a thread with its own card (a seeded demo card of the deployment) running the
whole flow of :class:`mynumber.kiosk.client.KioskClient` — session, PIN, the card's signature,
the order, J-LIS's checks and routing, the municipality rendering and signing in its
transaction, the kiosk's own check of the PDF (signature, CRL, nonce, card), the print (a
file) and the report. Kinds alternate: 住民票の写し and 印鑑登録証明書.

The figure is printed documents per second over the timed phase, with each flow's latency
(insertion to printed) at p50 and p99. The floor is the best in-process way to make the same
documents: render and sign exactly the contents that were printed, in one process, one after
another, with the font already parsed and no HTTP or database — measured in the same run.

The kiosks run on the same 2-core machine as the server (their PIN checks, signatures and
pyHanko checks of each PDF take CPU from it): the figure is a lower bound of what a node
serving remote kiosks would do."""

from __future__ import annotations

import csv
import io
import statistics
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from .bench_http import running_server, server_cpu_seconds
from .common import Result, err, progress

__all__ = ["KioskRun", "kiosk_results", "run_kiosk"]

TARGET_DOCS = 50.0
MUNI = "131041"


@dataclass
class KioskRun:
    backend: str
    kiosks: int
    documents: int
    seconds: float
    latencies: list[float]
    refused: Counter[str]
    floor_documents: int
    floor_seconds: float
    wrong: list[str] = field(default_factory=list)
    server_cpu: float = float("nan")  # CPU seconds the server's processes spent in the timed phase

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")

    @property
    def p99(self) -> float:
        if len(self.latencies) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[98]

    def as_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "kiosks": self.kiosks,
            "documents": self.documents,
            "seconds": self.seconds,
            "documents_per_second": self.documents / self.seconds if self.seconds else None,
            "p50_seconds": self.p50,
            "p99_seconds": self.p99,
            "refused": dict(self.refused),
            "floor_documents": self.floor_documents,
            "floor_seconds": self.floor_seconds,
            "wrong": self.wrong[:20],
            "server_cpu_seconds": self.server_cpu,
        }


def _holders(data_dir: Path) -> list[tuple[Any, str]]:
    from mynumber.card import ChipStore
    from mynumber.clock import SystemClock
    from mynumber.keystore import FileKeystore

    chips = ChipStore(data_dir / "cards", FileKeystore(data_dir / "keys", None))
    with (data_dir / "cards" / "DEMO-PINS.csv").open(newline="") as fh:
        return [
            (chips.load(r["chip_id"], SystemClock()), r["auth_pin"]) for r in csv.DictReader(fh)
        ]


def _floor(data_dir: Path, database_url: str | None, pdfs: list[bytes]) -> tuple[int, float]:
    """Render and sign the printed documents' contents again, in this process, no I/O."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    from mynumber.cli import platform_for
    from mynumber.documents.content import parse_content
    from mynumber.documents.render import render
    from mynumber.documents.verify import attached_content

    contents = []
    for pdf in pdfs:
        raw = attached_content(PdfFileReader(io.BytesIO(pdf), strict=False))
        assert raw is not None
        contents.append(parse_content(raw))
    with platform_for(data_dir, database_url) as p:
        signer, _ = p.signers(MUNI)
        base = p.settings.base_url
    signer.sign(render(contents[0], base))  # the font parsed, the signer warm
    start = time.perf_counter()
    for content in contents:
        signer.sign(render(content, base))
    return len(contents), time.perf_counter() - start


def run_kiosk(
    *,
    kiosks: int,
    per_kiosk: int,
    database_url: str | None,
    workers: int,
    log_dir: Path,
) -> KioskRun:
    from mynumber.documents.content import DocumentKind
    from mynumber.errors import MynumberError
    from mynumber.kiosk.client import KioskClient
    from mynumber.kiosk.protocol import KioskOrder

    backend = "postgresql" if database_url else "sqlite"
    data_dir = Path(tempfile.mkdtemp(prefix="kiosk-", dir=log_dir))
    args = ["--seed-residents", str(max(2000, 4 * kiosks)), "--seed-cards", str(kiosks)]
    args += ["--no-seed-agencies"]
    err.print(f"kiosk ({backend}): seeding {kiosks} card holders and starting the server …")
    with running_server(
        data_dir, database_url, workers, log_dir / f"kiosk-{backend}.log", 600, args
    ) as (base, token):
        holders = _holders(data_dir)[:kiosks]
        root = x509.load_pem_x509_certificate(
            (data_dir / "lgpki" / "jpki-root-ca.pem").read_bytes()
        )
        kinds = (DocumentKind.residence, DocumentKind.seal)
        out = data_dir / "printed"
        lock = threading.Lock()
        latencies: list[float] = []
        refused: Counter[str] = Counter()
        printed: list[bytes] = []
        wrong: list[str] = []

        def kiosk(i: int, rounds: int, timed: bool, bar: Any) -> None:
            chip, pin = holders[i]
            with KioskClient(base, token, f"bench-{i:03d}", root, timeout=120) as k:
                for n in range(rounds):
                    began = time.perf_counter()
                    try:
                        done = k.run(
                            chip, pin, KioskOrder(kinds[(i + n) % 2]), out / f"{i}-{n}-{timed}.pdf"
                        )
                    except MynumberError as exc:
                        with lock:
                            refused[exc.code] += 1
                        continue
                    took = time.perf_counter() - began
                    if done is None:
                        continue
                    if not timed:
                        continue
                    with lock:
                        latencies.append(took)
                        printed.append(done.path.read_bytes())
                        if done.content.channel != "kiosk":
                            wrong.append(f"{done.document_id}: not a kiosk document")
                    if bar is not None:
                        bar.advance(0)

        # warm-up: every kiosk once (fonts parsed, signers loaded, connections open in each worker)
        with ThreadPoolExecutor(kiosks) as pool:
            list(pool.map(lambda i: kiosk(i, 1, False, None), range(kiosks)))
        refused.clear()
        with progress() as bar:
            task = bar.add_task(f"kiosk: {kiosks} kiosks × {per_kiosk}", total=None)
            cpu_before = server_cpu_seconds(base)
            start = time.perf_counter()
            with ThreadPoolExecutor(kiosks) as pool:
                list(pool.map(lambda i: kiosk(i, per_kiosk, True, None), range(kiosks)))
            seconds = time.perf_counter() - start
            server_cpu = server_cpu_seconds(base) - cpu_before
            bar.update(task, completed=1, total=1)
    floor_docs, floor_seconds = _floor(data_dir, database_url, printed)
    return KioskRun(
        backend,
        kiosks,
        len(printed),
        seconds,
        latencies,
        refused,
        floor_docs,
        floor_seconds,
        wrong,
        server_cpu,
    )


def kiosk_results(run: KioskRun) -> list[Result]:
    rate = run.documents / run.seconds if run.seconds else 0.0
    floor = run.floor_documents / run.floor_seconds if run.floor_seconds else float("nan")
    notes = [
        f"{run.kiosks} kiosks at once: {run.documents:,} documents printed, latency p50 "
        f"{run.p50 * 1000:,.0f} ms, p99 {run.p99 * 1000:,.0f} ms (insertion to printed, "
        "kiosk's own check included)"
    ]
    if run.documents and run.server_cpu == run.server_cpu:
        per_doc = run.server_cpu / run.documents
        notes.append(
            f"server CPU {per_doc * 1000:,.1f} ms a document (supervisor and workers, not "
            "PostgreSQL's; the kiosks' own PIN, signature and PDF checks excluded): "
            f"{2 / per_doc:,.0f} docs/s "
            "on 2 cores with the kiosks elsewhere"
        )
    if run.refused:
        notes.append("not printed: " + ", ".join(f"{k} {v}" for k, v in run.refused.most_common()))
    return [
        Result(
            benchmark="kiosk issuance (signed PDFs end to end)",
            backend=run.backend,
            value=rate,
            unit="docs/s",
            count=run.documents,
            seconds=run.seconds,
            baseline="render + sign in one process, no HTTP/DB",
            baseline_value=floor,
            baseline_seconds=run.floor_seconds,
            target=TARGET_DOCS,
            target_text=f"≥ {TARGET_DOCS:.0f} docs/s",
            notes=notes,
        )
    ]
