"""Signed certificates (issue 6, deliverable 2) on SQLite and PostgreSQL: 住民票の写し, 記載事項
証明書 and 印鑑登録証明書 rendered from the register in the issuing transaction, signed with the
municipality's LGPKI key, and checked the way anyone would check them: signature (pyHanko),
revocation (CRL), the signed content, the issuance record. Every way of faking or altering a
document is tried and must fail."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlalchemy import delete, func, select

from cardkit import change, register
from clikit import run_cli
from conftest import MUNI
from mynumber.api.auth import TokenStore
from mynumber.clock import FixedClock
from mynumber.config import Settings
from mynumber.documents.content import DocumentKind, parse_content
from mynumber.documents.issue import IssueRequest
from mynumber.documents.signing import SignatureStatus
from mynumber.documents.verify import RecordStatus, attached_content
from mynumber.errors import MynumberError
from mynumber.municipality import models as m
from mynumber.municipality.domain import EventKind
from mynumber.platform import Platform
from relykit import serve
from sealkit import PNG


def request(rc: str, kind: DocumentKind = DocumentKind.residence, **kw: Any) -> IssueRequest:
    return IssueRequest(
        kind=kind, municipality_code=MUNI, resident_code=rc, requester="窓口1", **kw
    )


def content_of(pdf: bytes) -> Any:
    raw = attached_content(PdfFileReader(io.BytesIO(pdf), strict=False))
    assert raw is not None
    return parse_content(raw)


def code_of(call: Any) -> str:
    with pytest.raises(MynumberError) as e:
        call()
    return e.value.code


def issuances(p: Platform) -> int:
    with p.issuance.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(m.issuances)).scalar_one())


def residents(p: Platform) -> int:
    with p.municipality.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(m.residents)).scalar_one())


def household(p: Platform) -> tuple[str, str, str]:
    head = register(p)
    hid = p.municipality.get_resident(MUNI, head)["household_id"]
    wife = p.municipality.record(
        MUNI,
        EventKind.MOVE_IN,
        {
            "family_name": "髙橋",
            "given_name": "美加子",
            "family_name_kana": "タカハシ",
            "given_name_kana": "ミカコ",
            "birth_date": "1982-01-01",
            "sex": "2",
            "address": "東京都新宿区西新宿二丁目8番1号",
            "household_id": hid,
            "relationship": "妻",
        },
    )[1]["resident_code"]
    other = register(p, family="鈴木", given="花子")
    return head, wife, other


def test_a_residence_record_verifies_and_says_only_what_was_asked(platform: Platform) -> None:
    head, wife, _ = household(platform)
    issued = platform.issuance.issue(request(head))
    assert issued.pdf.startswith(b"%PDF-") and issued.fee == 300
    content = content_of(issued.pdf)
    assert content.kind is DocumentKind.residence and content.document_id == issued.document_id
    assert [p.name for p in content.people] == ["髙橋 一郎"]
    person = content.people[0]
    assert person.relationship is None and person.individual_number is None
    assert content.digest() == issued.content_digest
    check = platform.verify_document(issued.pdf)
    assert check.ok, check
    assert check.signature.status is SignatureStatus.valid
    assert "mynumber LGPKI" in (check.signature.signer or "")
    assert check.record is RecordStatus.matches and check.kind == "juminhyo"
    # the number appears only when asked for, then whole; relationship likewise
    full = platform.issuance.issue(
        request(head, members=(wife,), relationship=True, individual_number=True)
    )
    people = content_of(full.pdf).people
    assert [(p.name, p.relationship) for p in people] == [
        ("髙橋 一郎", "世帯主"),
        ("髙橋 美加子", "妻"),
    ]
    numbers = {r: platform.municipality.get_resident(MUNI, r) for r in (head, wife)}
    assert all(p.individual_number and len(p.individual_number) == 12 for p in people)
    assert all("*" in n["individual_number"] for n in numbers.values())  # the view stays masked
    assert platform.verify_document(full.pdf).ok


def test_domicile_only_when_asked_and_only_for_japanese_nationals(platform: Platform) -> None:
    """本籍・筆頭者 (住基法7条5号): recorded for Japanese nationals, printed on a 住民票の写し
    only when asked for; a foreign resident's record has none to print."""
    base = {
        "family_name": "佐藤",
        "given_name": "健",
        "family_name_kana": "サトウ",
        "given_name_kana": "ケン",
        "birth_date": "1980-04-01",
        "sex": "1",
        "address": "東京都千代田区一番町1番地",
    }
    rc = platform.municipality.record(
        MUNI,
        EventKind.MOVE_IN,
        {**base, "domicile": "北海道札幌市中央区北一条西二丁目1番地", "domicile_head": "佐藤　健"},
    )[1]["resident_code"]
    assert platform.municipality.get_resident(MUNI, rc)["domicile_head"] == "佐藤 健"
    plain = content_of(platform.issuance.issue(request(rc)).pdf).people[0]
    assert plain.domicile is None and plain.domicile_head is None
    issued = platform.issuance.issue(request(rc, domicile=True))
    person = content_of(issued.pdf).people[0]
    assert person.domicile == "北海道札幌市中央区北一条西二丁目1番地"
    assert person.domicile_head == "佐藤 健"
    assert platform.verify_document(issued.pdf).ok
    # not on a seal certificate or a 記載事項証明書
    platform.seals.register(MUNI, rc, PNG, "KD0001", "clerk")
    for kind in (DocumentKind.seal, DocumentKind.residence_items):
        assert code_of(
            lambda kind=kind: platform.issuance.issue(request(rc, kind, domicile=True))
        ) == ("issuance.options")
    # a foreign resident has no 本籍: refused on entry; asked for, nothing is printed
    foreign = {**base, "alphabet_name": "NGUYEN VAN AN", "nationality": "VN"}
    before = residents(platform)
    for bad, field in (
        ({**foreign, "domicile": "東京都千代田区", "domicile_head": "NGUYEN"}, "domicile"),
        ({**base, "domicile": "東京都千代田区"}, "domicile_head"),
        ({**base, "domicile_head": "佐藤 健"}, "domicile"),
    ):
        with pytest.raises(MynumberError) as e:
            platform.municipality.record(MUNI, EventKind.MOVE_IN, bad)
        assert e.value.code.startswith("domicile.") and e.value.field == field, e.value
    assert residents(platform) == before  # nothing half-written
    vn = platform.municipality.record(MUNI, EventKind.MOVE_IN, foreign)[1]["resident_code"]
    person = content_of(platform.issuance.issue(request(vn, domicile=True)).pdf).people[0]
    assert person.domicile is None and person.domicile_head is None


def test_a_household_member_from_elsewhere_is_refused_and_nothing_is_written(
    platform: Platform,
) -> None:
    head, _, other = household(platform)
    before = issuances(platform)
    assert code_of(lambda: platform.issuance.issue(request(head, members=(other,)))) == (
        "issuance.not_household"
    )
    assert code_of(
        lambda: platform.issuance.issue(request(head, DocumentKind.seal, relationship=True))
    ) == ("issuance.options")
    assert issuances(platform) == before


def test_seal_certificate_only_while_the_seal_is_active(platform: Platform) -> None:
    rc = register(platform)
    assert code_of(lambda: platform.issuance.issue(request(rc, DocumentKind.seal))) == (
        "issuance.no_seal"
    )
    platform.seals.register(MUNI, rc, PNG, "S0001", "clerk")
    issued = platform.issuance.issue(request(rc, DocumentKind.seal))
    seal = content_of(issued.pdf).seal
    assert seal is not None and seal.image_digest == hashlib.sha256(PNG).hexdigest()
    assert platform.verify_document(issued.pdf).ok
    platform.seals.end(MUNI, rc, "abolished", "clerk")
    with pytest.raises(MynumberError) as e:
        platform.issuance.issue(request(rc, DocumentKind.seal))
    assert e.value.code == "issuance.no_seal" and e.value.extra["seal_state"] == "abolished"
    # what was issued before the abolition stays a true record of that day
    assert platform.verify_document(issued.pdf).ok


def test_refusals(platform: Platform, clock: FixedClock) -> None:
    gone, dead, hidden, fresh = (register(platform, given=g) for g in ("一", "二", "三", "四"))
    change(platform, gone, EventKind.MOVE_OUT, {"destination": "大阪府大阪市北区"})
    change(platform, dead, EventKind.DEATH)
    platform.issuance.set_support_measure(MUNI, hidden, "窓口1")
    before = issuances(platform)
    assert code_of(lambda: platform.issuance.issue(request(gone))) == "issuance.moved_out"
    assert code_of(lambda: platform.issuance.issue(request(dead))) == "issuance.deceased"
    kiosk = {"channel": "kiosk", "nonce": "n" * 22}
    assert code_of(lambda: platform.issuance.issue(request(hidden, **kiosk))) == (
        "issuance.support_measure"
    )
    assert code_of(lambda: platform.issuance.issue(request(fresh, **kiosk))) == (
        "issuance.same_day"
    )
    assert issuances(platform) == before
    # the counter may issue to a person under a support measure (the clerk checks who asks);
    # the day after a move-in, the kiosk may issue
    assert platform.issuance.issue(request(hidden)).fee == 300
    clock.advance(dt.timedelta(days=1))
    assert platform.issuance.issue(request(fresh, **kiosk)).kind is DocumentKind.residence


def test_a_household_with_someone_leaving_is_issued_only_at_the_counter(
    platform: Platform, clock: FixedClock
) -> None:
    """転出予定者 (facts §7: and households containing one): a move-out notified in advance
    closes that record at once; until the move, the household's 住民票 is not issued at a
    kiosk — to anyone in it."""
    head, wife, other = household(platform)
    clock.advance(dt.timedelta(days=1))
    moving = (clock.now().date() + dt.timedelta(days=7)).isoformat()
    change(
        platform,
        wife,
        EventKind.MOVE_OUT,
        {"destination": "大阪府大阪市北区", "occurred_on": moving},
    )
    clock.advance(dt.timedelta(days=1))  # not a same-day change any more
    kiosk = {"channel": "kiosk", "nonce": "n" * 22}
    before = issuances(platform)
    for kind in (DocumentKind.residence, DocumentKind.residence_items):
        assert code_of(lambda kind=kind: platform.issuance.issue(request(head, kind, **kiosk))) == (
            "issuance.household_leaving"
        )
    assert issuances(platform) == before
    # another household, and the counter, are not affected
    assert platform.issuance.issue(request(other, **kiosk)).fee == 300
    assert platform.issuance.issue(request(head)).fee == 300
    # once the move has happened, the household is the head alone again
    clock.advance(dt.timedelta(days=7))
    issued = platform.issuance.issue(request(head, whole_household=True, **kiosk))
    assert [p.name for p in content_of(issued.pdf).people] == ["髙橋 一郎"]


def test_a_retry_returns_the_same_document(platform: Platform) -> None:
    rc = register(platform)
    first = platform.issuance.issue(request(rc, request_key="k-1"))
    again = platform.issuance.issue(request(rc, request_key="k-1"))
    assert again.replay and (again.document_id, again.pdf) == (first.document_id, first.pdf)
    assert code_of(
        lambda: platform.issuance.issue(request(rc, relationship=True, request_key="k-1"))
    ) == ("idempotency.key_reused")
    assert issuances(platform) == 1


def _other_platform(tmp_path: Path, clock: FixedClock) -> Platform:
    p = Platform(Settings(data_dir=tmp_path / "elsewhere"), clock)
    p.municipality.create_municipality(MUNI, "東京都", "新宿区")
    return p


def test_every_forgery_fails(platform: Platform, tmp_path: Path, clock: FixedClock) -> None:
    rc = register(platform)
    pdf = platform.issuance.issue(request(rc)).pdf
    assert platform.verify_document(pdf).ok

    # one byte of the signed content changed
    at = pdf.index("髙橋".encode()) if "髙橋".encode() in pdf else len(pdf) // 3
    flipped = pdf[:at] + bytes([pdf[at] ^ 1]) + pdf[at + 1 :]
    assert platform.verify_document(flipped).signature.status is SignatureStatus.broken

    # an incremental update appended after signing (a changed page, say)
    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    w.root["/Lang"] = w.root.get("/Lang")
    w.update_root()
    out = io.BytesIO()
    w.write(out)
    appended = platform.verify_document(out.getvalue())
    assert not appended.ok and appended.signature.status is SignatureStatus.broken

    # the same document signed by a municipality of another deployment (another LGPKI root)
    other = _other_platform(tmp_path, clock)
    try:
        orc = register(other)
        foreign = other.issuance.issue(request(orc)).pdf
    finally:
        other.close()
    check = platform.verify_document(foreign)
    assert check.signature.status is SignatureStatus.untrusted and not check.ok

    # the unsigned rendering of a real document, and a file that is not a PDF
    assert platform.verify_document(pdf[: pdf.rindex(b"%%EOF")]).ok is False
    assert platform.verify_document(b"not a pdf").signature.status is SignatureStatus.unreadable

    # a genuine file whose issuance record is gone: signature valid, record missing
    with platform.issuance.engine.begin() as conn:
        conn.execute(delete(m.issuances))
    gone = platform.verify_document(pdf)
    assert gone.signature.status is SignatureStatus.valid and gone.record is RecordStatus.missing
    assert not gone.ok


def test_a_revoked_signer_fails_every_document_it_signed(
    platform: Platform, clock: FixedClock
) -> None:
    rc = register(platform)
    pdf = platform.issuance.issue(request(rc)).pdf
    signer, _ = platform.signers(MUNI)
    platform.lgpki.revoke(signer.certificate.serial_number)
    clock.advance(dt.timedelta(seconds=2))
    check = platform.verify_document(pdf)
    assert check.signature.status is SignatureStatus.revoked and not check.ok
    assert code_of(lambda: platform.lgpki.revoke(signer.certificate.serial_number)) == (
        "lgpki.certificate_unknown"
    )


def test_content_is_canonical_and_tamper_evident() -> None:
    from mynumber.documents.content import DocumentContent, PersonEntry, new_document_id

    c = DocumentContent(
        document_id=new_document_id(),
        kind=DocumentKind.residence,
        municipality_code=MUNI,
        municipality_name="東京都新宿区",
        issued_at="2026-12-06T10:00:00+09:00",
        postal_code="1600023",
        address="東京都新宿区西新宿二丁目8番1号",
        head_of_household=None,
        people=(PersonEntry("髙橋 一郎", "タカハシ イチロウ", "1980-01-01", 1, "2000-01-01"),),
        seal=None,
        subject="a" * 64,
        channel="counter",
    )
    raw = c.to_json()
    assert parse_content(raw) == c
    spaced = json.dumps(json.loads(raw), ensure_ascii=False, indent=1).encode()
    assert code_of(lambda: parse_content(spaced)) == "document.content"
    assert code_of(lambda: parse_content(raw.replace(b'"juminhyo"', b'"koseki"'))) == (
        "document.content"
    )
    other = dataclasses.replace(c, address="東京都新宿区西新宿二丁目8番2号")
    assert other.digest() != c.digest()


def test_over_http_issue_check_and_the_page(platform: Platform, settings: Settings) -> None:
    rc = register(platform)
    platform.seals.register(MUNI, rc, PNG, "H0001", "clerk")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    token = TokenStore(settings.data_dir / "tokens.json").create("窓口2", ["municipality:write"])
    auth = {"Authorization": f"Bearer {token}"}
    with serve(platform) as base, httpx.Client(base_url=base, timeout=30) as http:
        path = f"/api/municipality/municipalities/{MUNI}/residents/{rc}/certificates"
        r = http.post(path, json={"kind": "inkan"}, headers={**auth, "Idempotency-Key": "i-1"})
        assert r.status_code == 201 and r.headers["content-type"] == "application/pdf"
        doc_id, digest = r.headers["X-Document-Id"], r.headers["X-Document-Digest"]
        again = http.post(path, json={"kind": "inkan"}, headers={**auth, "Idempotency-Key": "i-1"})
        assert again.content == r.content and again.headers["Idempotent-Replayed"] == "true"
        # no token, a bad body: problem+json, nothing issued
        assert http.post(path, json={"kind": "inkan"}).status_code == 401
        bad = http.post(path, json={"kind": "koseki"}, headers=auth)
        assert bad.status_code == 422 and "problem+json" in bad.headers["content-type"]

        checked = http.post(
            "/api/documents/verify", content=r.content, headers={"Content-Type": "application/pdf"}
        ).json()
        assert checked["ok"] and checked["document_id"] == doc_id and checked["kind"] == "inkan"
        junk = http.post("/api/documents/verify", content=b"%PDF-1.7\n" + bytes(500)).json()
        assert junk["ok"] is False and junk["signature"]["status"] == "unreadable"

        rec = http.get(f"/api/documents/{doc_id}", params={"digest": digest}).json()
        assert rec["record"] == "matches" and rec["kind"] == "inkan"
        other = http.get(f"/api/documents/{doc_id}", params={"digest": "0" * 64}).json()
        assert other["record"] == "differs" and other["kind"] is None

        # the page: what the QR code opens, then an upload
        page = http.get("/verify", params={"id": doc_id, "digest": digest, "lang": "en"})
        assert page.status_code == 200 and "An issuance with this id and digest" in page.text
        upload = http.post(
            "/verify", files={"document": ("seal.pdf", r.content, "application/pdf")}
        )
        assert upload.status_code == 200 and "有効な証明書です" in upload.text
        tampered = r.content.replace(b"/Reason", b"/Reasox", 1)
        upload = http.post("/verify", files={"document": ("x.pdf", tampered, "application/pdf")})
        assert "この証明書は確認できません" in upload.text
        assert 'href="/verify' in http.get("/").text  # the landing page leads there
        crl = http.get("/api/jlis/lgpki/crl")
        assert crl.headers["content-type"] == "application/pkix-crl" and len(crl.content) > 100


def test_the_cli_issues_and_verifies(platform: Platform, tmp_path: Path) -> None:
    rc = register(platform)
    pdf = tmp_path / "out" / "juminhyo.pdf"
    r = run_cli(
        platform, "certificate", "issue", "--resident-code", rc, "--operator", "窓口3",
        "--out", str(pdf), "--relationship",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert pdf.read_bytes().startswith(b"%PDF-") and "¥300" in r.stdout
    ok = run_cli(platform, "verify-document", str(pdf), "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["ok"] is True
    broken = tmp_path / "broken.pdf"
    data = pdf.read_bytes()
    broken.write_bytes(data.replace(b"/Reason", b"/Reasox", 1))
    bad = run_cli(platform, "verify-document", str(broken))
    assert bad.returncode == 1 and "NOT VALID" in bad.stdout and "Traceback" not in bad.stderr
    gone = run_cli(platform, "certificate", "issue", "--resident-code", "00000000000",
                   "--operator", "窓口3", "--out", str(tmp_path / "x.pdf"))  # fmt: skip
    assert gone.returncode == 1 and "resident.not_found" in gone.stderr
    assert not (tmp_path / "x.pdf").exists()
    missing = run_cli(platform, "verify-document", str(tmp_path / "none.pdf"))
    assert missing.returncode == 1 and "file.missing" in missing.stderr


def test_a_deadline_passed_rolls_everything_back(platform: Platform, clock: FixedClock) -> None:
    rc = register(platform)
    late = request(rc, deadline=clock.now())  # the requester has given up by commit time
    assert code_of(lambda: platform.issuance.issue(late)) == "issuance.timeout"
    assert issuances(platform) == 0
    on_time = request(rc, deadline=clock.now() + dt.timedelta(seconds=30))
    assert platform.issuance.issue(on_time).kind is DocumentKind.residence


def test_rendering_shares_no_state_between_documents() -> None:
    """The parsed font is shared by every document of a process; rendering many different
    documents at once in threads gives each exactly the bytes it gets alone (I1)."""
    from concurrent.futures import ThreadPoolExecutor

    from mynumber.documents.content import DocumentContent, PersonEntry, new_document_id
    from mynumber.documents.render import render

    names = ["髙橋 一郎", "渡邉 美加子", "齋藤 健", "佐々木 﨑子", "山田 花子", "鈴木 一"]
    contents = [
        DocumentContent(
            document_id=new_document_id(),
            kind=DocumentKind.residence,
            municipality_code=MUNI,
            municipality_name="東京都新宿区",
            issued_at="2026-12-06T10:00:00+09:00",
            postal_code="1600023",
            address=f"東京都新宿区西新宿二丁目{i + 1}番1号",
            head_of_household=None,
            people=(PersonEntry(name, "テスト", "1980-01-01", 1, "2000-01-01"),),
            seal=None,
            subject=f"{i:064x}",
            channel="counter",
        )
        for i, name in enumerate(names)
    ]
    alone = [render(c, "http://x") for c in contents]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch all the time: any shared state shows
    try:
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(lambda c: render(c, "http://x"), contents * 8))
    finally:
        sys.setswitchinterval(interval)
    assert together == alone * 8
    # White-box, because a race needs luck to show: the font parsed once per process is never
    # written by a document (fpdf2 writes object ids into the descriptor it outputs; shared,
    # two documents in flight swapped them — seen as a 500 under 200 kiosks).
    from mynumber.documents import render as rendering

    for template in rendering._templates.values():
        assert template.desc._id is None and not hasattr(template.desc, "font_file3")
    assert len(set(alone)) == len(alone)


class _Meddling:
    """A signer that lets something happen to the register while the document is being
    rendered and signed (between the read and the recording)."""

    def __init__(self, real: Any, meddle: Any, times: int = 1) -> None:
        self.real, self.meddle, self.times = real, meddle, times
        self.certificate = real.certificate

    def sign(self, pdf: bytes) -> bytes:
        if self.times:
            self.times -= 1
            self.meddle()
        return bytes(self.real.sign(pdf))


def _meddle(p: Platform, monkeypatch: pytest.MonkeyPatch, meddle: Any, times: int = 1) -> None:
    signer, key = p.signers(MUNI)
    wrapped = _Meddling(signer, meddle, times)
    monkeypatch.setattr(p.issuance, "_signers", lambda _code: (wrapped, key))


def test_what_changes_while_rendering_is_what_the_document_says(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    rc = register(platform)
    new_address = "東京都新宿区歌舞伎町一丁目4番1号"
    _meddle(
        platform,
        monkeypatch,
        lambda: change(platform, rc, EventKind.MOVE_WITHIN, {"address": new_address}),
    )
    issued = platform.issuance.issue(request(rc))
    assert content_of(issued.pdf).address == new_address  # rendered again, recorded once
    assert issuances(platform) == 1 and platform.verify_document(issued.pdf).ok


def test_a_seal_abolished_while_rendering_is_not_certified(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    rc = register(platform)
    platform.seals.register(MUNI, rc, PNG, "R0001", "clerk")
    _meddle(platform, monkeypatch, lambda: platform.seals.end(MUNI, rc, "abolished", "clerk"))
    assert code_of(lambda: platform.issuance.issue(request(rc, DocumentKind.seal))) == (
        "issuance.no_seal"
    )
    assert issuances(platform) == 0


def test_a_register_that_keeps_changing_gives_up(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    rc = register(platform)
    moves = iter(range(1, 10))
    _meddle(
        platform,
        monkeypatch,
        lambda: change(
            platform,
            rc,
            EventKind.MOVE_WITHIN,
            {"address": f"東京都新宿区四谷{next(moves)}丁目1番1号"},
        ),
        times=5,
    )
    assert code_of(lambda: platform.issuance.issue(request(rc))) == "issuance.changed"
    assert issuances(platform) == 0


def test_hostile_content_and_places(platform: Platform, tmp_path: Path) -> None:
    """Found in review: an unsigned PDF whose attached JSON has the wrong types is a finding,
    never an error; a municipality that does not exist gets no signing key; the recorded time
    is the document's own on SQLite too."""
    from fpdf import FPDF

    from mynumber.documents.content import canonical_json
    from mynumber.documents.render import ATTACHMENT

    for bad in ({"document_id": 123}, {"issued_at": 5}, {"people": [{"sex": True}]}):
        raw: dict[str, Any] = {
            "format": "mynumber-document/1",
            "document_id": "0" * 26,
            "kind": "juminhyo",
            "municipality_code": MUNI,
            "municipality_name": "x",
            "issued_at": "2026-12-06T10:00:00+09:00",
            "postal_code": "1600023",
            "address": "x",
            "head_of_household": None,
            "people": [],
            "seal": None,
            "subject": "s",
            "channel": "kiosk",
            "nonce": None,
            "card": None,
        }
        raw.update(bad)
        fake = FPDF()
        fake.add_page()
        fake.embed_file(bytes=canonical_json(raw), basename=ATTACHMENT)
        check = platform.verify_document(bytes(fake.output()))
        assert not check.ok and check.content_problem == "document.content", bad
    rc = register(platform)
    assert code_of(
        lambda: platform.issuance.issue(IssueRequest(DocumentKind.residence, "999999", rc, "窓口1"))
    ) == ("municipality.not_found")
    assert not (platform.settings.data_dir / "signers" / "999999-cert.pem").exists()
    issued = platform.issuance.issue(request(rc))
    record = platform.issuance.record(issued.document_id)
    assert record is not None and record["issued_at"] == issued.issued_at


def test_the_cli_checks_the_output_before_issuing(platform: Platform, tmp_path: Path) -> None:
    """Found in review: the PDF could not be written after the fee was charged. Now a path
    that cannot be written (its "directory" is a file: refused even to root) issues nothing."""
    rc = register(platform)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    r = run_cli(platform, "certificate", "issue", "--resident-code", rc,
                "--operator", "窓口3", "--out", str(blocker / "x.pdf"))  # fmt: skip
    assert r.returncode == 1 and "file.unwritable" in r.stderr and "Traceback" not in r.stderr
    assert issuances(platform) == 0
    unreadable = run_cli(platform, "verify-document", str(tmp_path))  # a directory
    assert unreadable.returncode == 1 and "Traceback" not in unreadable.stderr


def test_lgpki_certificates_name_their_crl_and_no_ocsp(platform: Platform) -> None:
    """LGPKI answers by CRL alone: an organisation certificate points to LGPKI's CRL and names
    no OCSP responder (JPKI's would not know it, and a verifier would get no answer)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    cert = platform.lgpki.issue(
        MUNI, "テスト市", ec.generate_private_key(ec.SECP256R1()).public_key()
    )
    points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    urls = [n.value for p in points for n in (p.full_name or [])]
    assert len(urls) == 1 and urls[0].endswith("/api/jlis/lgpki/crl")
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess)


def test_the_fast_font_subset_is_fonttools_subset_byte_for_byte() -> None:
    """documents.fontsubset cuts a document's glyphs from the CFF parsed once; what it compiles
    must be what fontTools' Subsetter makes with fpdf2's options (as fpdf2 embedded before),
    byte for byte — a fontTools upgrade that changes either shows here."""
    from fontTools import subset as ftsubset
    from fontTools.ttLib import TTFont

    from mynumber.documents.font import font_path
    from mynumber.documents.fontsubset import CffSource

    path = font_path()
    source = CffSource(path)
    cmap = TTFont(str(path), lazy=True).getBestCmap()
    text = "住民票の写し 髙橋 﨑 渡邉 齋藤 東京都新宿区西新宿二丁目8番1号 ABCxyz 0123（）〒"
    names = sorted({cmap[ord(ch)] for ch in text})
    order, data = source.subset(names)
    font = TTFont(str(path), lazy=True, recalcBBoxes=False, recalcTimestamp=False)
    options = ftsubset.Options(notdef_outline=True, recommended_glyphs=True)
    options.drop_tables += ["GDEF", "GPOS", "GSUB"]  # as fpdf2 does
    subsetter = ftsubset.Subsetter(options)
    subsetter.populate(glyphs=names)
    subsetter.subset(font)
    assert order == font.getGlyphOrder() and order[0] == ".notdef"
    assert data == font["CFF "].compile(font)
