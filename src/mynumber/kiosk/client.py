"""The kiosk (マルチコピー機): what runs in the shop, talking to J-LIS's kiosk centre over HTTP.

It keeps nothing durable and shares nothing between customers: each insertion is a new
session with its own nonce. The flow of :meth:`KioskClient.run`:

1. the card is inserted → a session (J-LIS's nonce);
2. the person enters the 4-digit PIN and chooses a document → the card signs the statement
   naming session, kiosk, nonce and order;
3. the order goes to J-LIS, which routes it; a network error or a dead worker is retried
   (a few times, waiting longer each time) with the very same order, which J-LIS answers with
   the very same document;
4. the kiosk checks the document (:func:`~mynumber.kiosk.protocol.check_for_print`): the
   municipal signature against the pinned LGPKI root and the current CRL, the nonce, the card,
   the kind. Anything wrong, or the session's time up, and nothing is printed;
5. preview; on confirmation it prints (writes the PDF) and reports ``printed`` (the fee);
   otherwise it reports ``aborted``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mynumber.card.kinds import KeyKind
from mynumber.clock import Clock, SystemClock
from mynumber.documents.content import DocumentContent
from mynumber.errors import MynumberError
from mynumber.kiosk.protocol import KioskOrder, check_for_print, statement_digest

__all__ = ["Card", "KioskClient", "KioskError", "Printed"]


class Card(Protocol):
    def certificate(self, kind: KeyKind | str) -> x509.Certificate: ...

    def authenticate(self, nonce: bytes, pin: str) -> bytes: ...


class KioskError(MynumberError):
    """The kiosk stopped: nothing was printed (the code says why)."""

    status = 502


@dataclass(frozen=True, slots=True)
class Printed:
    path: Path
    document_id: str
    fee: int
    content: DocumentContent
    reported: bool = True  # False: printed, but the centre never acknowledged the report


def _stopped(code: str, en: str, ja: str, **extra: Any) -> KioskError:
    return KioskError(code, en, ja, extra=extra or None)


class KioskClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        kiosk_id: str,
        lgpki_root: x509.Certificate,
        *,
        timeout: float = 30.0,
        retries: int = 4,
        clock: Clock | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.kiosk_id = kiosk_id
        self._root = lgpki_root
        self._retries = retries
        self._clock = clock or SystemClock()
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KioskClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- HTTP ---------------------------------------------------------------------------------

    # Waits before each retry. A worker that dies takes every connection it held with it, and
    # the supervisor needs a moment to replace it; the same request again is always safe (a
    # session opened twice leaves one unused, which expires; an order or a report again is
    # answered as the first was).
    BACKOFF = (0.2, 0.5, 1.0, 2.0, 4.0)

    def _send(self, method: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
        attempts = 1 + self._retries
        for attempt in range(attempts):
            last = attempt + 1 == attempts
            if attempt:
                time.sleep(self.BACKOFF[min(attempt, len(self.BACKOFF)) - 1])
            try:
                response = self._http.request(method, path, json=body)
            except httpx.TransportError as exc:  # a timeout, a dropped connection
                if not last:
                    continue
                raise _stopped(
                    "kiosk.unreachable",
                    "The kiosk centre did not answer; nothing was printed.",
                    "センターから応答がないため、印刷していません。",
                    error=type(exc).__name__,
                ) from None
            ours = "problem+json" in response.headers.get("content-type", "")
            transient = response.status_code == 503 or (response.status_code >= 500 and not ours)
            if transient and not last:
                continue  # a worker died mid-request, a proxy said 502, the centre is busy
            if response.status_code >= 400:
                raise self._refusal(response)
            return response
        raise AssertionError("unreachable")

    @staticmethod
    def _refusal(response: httpx.Response) -> MynumberError:
        try:
            problem = response.json()
            return MynumberError(
                str(problem["code"]),
                str(problem["messages"]["en"]),
                str(problem["messages"]["ja"]),
                status=response.status_code,
            )
        except (ValueError, KeyError, TypeError):
            return _stopped(
                "kiosk.unreachable",
                f"The kiosk centre answered {response.status_code}; nothing was printed.",
                f"センターが {response.status_code} を返したため、印刷していません。",
            )

    def _crl(self) -> bytes:
        try:
            return self._send("GET", "/api/jlis/lgpki/crl", None).content
        except MynumberError:
            raise _stopped(
                "kiosk.unreachable",
                "The revocation list could not be fetched; nothing was printed.",
                "失効情報を取得できないため、印刷していません。",
            ) from None

    # -- the flow -----------------------------------------------------------------------------

    def open_session(self) -> dict[str, Any]:
        data: dict[str, Any] = self._send(
            "POST", "/api/kiosk/sessions", {"kiosk_id": self.kiosk_id}
        ).json()
        data["nonce_bytes"] = base64.b64decode(data["nonce"])
        data["deadline"] = dt.datetime.fromisoformat(data["expires_at"])
        return data

    def run(
        self,
        card: Card,
        pin: str,
        order: KioskOrder,
        out: Path,
        *,
        confirm: Callable[[DocumentContent], bool] = lambda _c: True,
        session: dict[str, Any] | None = None,
    ) -> Printed | None:
        """One customer, from card insertion to the printed document (module docstring).
        Returns None when the person cancelled at the preview; raises when nothing could be
        printed (``kiosk.*``, or J-LIS's and the municipality's own refusal codes)."""
        session = session or self.open_session()
        sid, nonce = session["session_id"], session["nonce_bytes"]
        cert = card.certificate(KeyKind.AUTHENTICATION)
        signature = card.authenticate(statement_digest(sid, self.kiosk_id, nonce, order), pin)
        body = {
            "kiosk_id": self.kiosk_id,
            "order": order.to_json(),
            "certificate": base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode(),
            "signature": base64.b64encode(signature).decode(),
        }
        response = self._send("POST", f"/api/kiosk/sessions/{sid}/document", body)
        document_id = response.headers.get("X-Document-Id", "")
        pdf = response.content
        try:
            content = check_for_print(
                pdf,
                nonce=nonce,
                card=cert,
                order=order,
                trust_roots=[self._root],
                crls=[self._crl()],
                at=self._clock.now(),
            )
            if content.document_id != document_id:
                raise _stopped(
                    "kiosk.not_printed",
                    "The document is not the one announced; nothing was printed.",
                    "通知と異なる証明書のため、印刷していません。",
                )
            if self._clock.now() >= session["deadline"]:
                raise _stopped(
                    "kiosk.timeout",
                    "The session's time ran out before printing; nothing was printed.",
                    "時間切れのため、印刷していません。",
                )
            if not confirm(content):
                self._report(sid, document_id, printed=False)
                return None
            _write(out, pdf)
        except BaseException:
            self._report_quietly(sid, document_id)
            raise
        # The paper is out: from here the kiosk never says "nothing printed". The report (the
        # fee) is idempotent and retried as every request is; if the centre stays silent the
        # document stays "pending" there and the print is still the customer's.
        try:
            fee = self._report(sid, document_id, printed=True)
        except MynumberError:
            return Printed(out, document_id, 0, content, reported=False)
        return Printed(out, document_id, fee, content)

    def _report(self, session_id: str, document_id: str, *, printed: bool) -> int:
        body = {"kiosk_id": self.kiosk_id, "document_id": document_id, "printed": printed}
        r = self._send("POST", f"/api/kiosk/sessions/{session_id}/report", body)
        return int(r.json()["fee"])

    def _report_quietly(self, session_id: str, document_id: str) -> None:
        if not document_id:
            return
        # If even this fails, the document stays "pending": never printed, never charged.
        with contextlib.suppress(MynumberError):
            self._report(session_id, document_id, printed=False)


def _write(path: Path, data: bytes) -> None:
    """The print: all or nothing (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".print-", suffix=".pdf")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
