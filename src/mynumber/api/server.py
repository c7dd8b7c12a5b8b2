"""ASGI entry point for uvicorn workers: builds the platform from the environment.

``kill -USR1 PID`` makes a worker (or the ``serve`` supervisor) write every thread's stack to
its stderr, the server's log: what a stuck process is waiting on, without stopping it."""

from __future__ import annotations

import faulthandler
import signal

faulthandler.register(signal.SIGUSR1, all_threads=True)  # before anything that could hang

from mynumber.api.app import create_app  # noqa: E402
from mynumber.config import Settings  # noqa: E402
from mynumber.platform import Platform  # noqa: E402

app = create_app(Platform(Settings()))
