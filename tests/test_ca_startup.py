"""Several server processes starting together on an empty data dir end up with one CA."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from cryptography.hazmat.primitives import hashes

from mynumber.clock import SystemClock
from mynumber.jlis.pki import PkiService
from mynumber.keystore import FileKeystore


def _open_ca(data_dir: str, start: mp.synchronize.Event, out: mp.Queue[str]) -> None:  # type: ignore[name-defined]
    keystore = FileKeystore(Path(data_dir) / "keys")
    start.wait(30)
    from sqlalchemy import create_engine

    engine = create_engine("sqlite://")  # the CA files are what is raced for, not the tables
    pki = PkiService.open(
        engine, Path(data_dir) / "jpki", keystore, SystemClock(), base_url="http://x"
    )
    out.put(pki.ca.root_cert.fingerprint(hashes.SHA256()).hex())


def test_workers_starting_together_share_one_ca(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    out: mp.Queue[str] = ctx.Queue()
    # The master key file is created first, as Platform does before any worker opens the CA.
    FileKeystore(tmp_path / "keys")
    procs = [ctx.Process(target=_open_ca, args=(str(tmp_path), start, out)) for _ in range(4)]
    for p in procs:
        p.start()
    start.set()
    prints = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert len(set(prints)) == 1
    loaded = sorted(f.name for f in (tmp_path / "jpki").glob("jpki-*.pem"))
    assert loaded  # the CA that everyone loaded is the one on disk
