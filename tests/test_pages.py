"""The /verify page in a real browser (Debian's Chromium driven by Playwright), against the real
server: what a person does with a certificate in hand — scan its QR code, or upload the PDF —
and what they see, in Japanese by default and in English."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cardkit import register
from conftest import MUNI
from mynumber.documents.content import DocumentKind, qr_payload
from mynumber.documents.issue import IssueRequest
from mynumber.platform import Platform
from relykit import serve

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Playwright's sync API runs an event loop in this thread: start it only after anything
    that runs its own (pyHanko signs with asyncio.run)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def test_the_verify_page(platform: Platform, tmp_path: Path) -> None:
    rc = register(platform)
    issued = platform.issuance.issue(
        IssueRequest(DocumentKind.residence, MUNI, rc, "窓口1", relationship=True)
    )
    good = tmp_path / "juminhyo.pdf"
    good.write_bytes(issued.pdf)
    bad = tmp_path / "altered.pdf"
    bad.write_bytes(issued.pdf.replace(b"/Reason", b"/Reasox", 1))
    with serve(platform) as base, chromium() as browser:
        page = browser.new_page(locale="ja-JP")  # the browser asks for Japanese
        # Japanese first
        page.goto(f"{base}/verify")
        assert page.locator("h1").inner_text() == "証明書の検証"
        # upload the genuine PDF
        page.set_input_files("input[name=document]", str(good))
        page.click("button[type=submit]")
        page.wait_for_selector("#verdict")
        assert page.locator("#verdict").inner_text().strip() == "有効な証明書です"
        assert page.locator("#signature").inner_text().startswith("valid")
        assert page.locator("#record").inner_text() == "matches"
        assert issued.document_id in page.content()
        page.screenshot(path=str(tmp_path / "verify.png"), full_page=True)
        assert (tmp_path / "verify.png").stat().st_size > 10_000
        # an altered one, in English
        page.goto(f"{base}/verify?lang=en")
        page.set_input_files("input[name=document]", str(bad))
        page.click("button[type=submit]")
        page.wait_for_selector("#verdict")
        assert "could not be confirmed" in page.locator("#verdict").inner_text()
        assert page.locator("#signature").inner_text().startswith("broken")
        # what the QR code opens: the record check, and a digest that is not this document's
        page.goto(qr_payload(base, issued.document_id, issued.content_digest) + "&lang=en")
        assert "on record" in page.locator("#verdict").inner_text()
        page.goto(qr_payload(base, issued.document_id, "0" * 64) + "&lang=en")
        assert "different content" in page.locator("#verdict").inner_text()
        page.close()
