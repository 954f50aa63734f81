"""Sender authentication of inbound mail (SPF, DKIM, DMARC, ARC) against real peers: an
authoritative DNS server (NSD) on a loopback port publishes MX, SPF, DKIM and DMARC records for
a.test (DMARC p=reject) and b.test (p=quarantine); mail is DKIM-signed by dkimpy and sent with
smtplib from 127.0.0.1, the address both SPF records allow.

What is checked: the Authentication-Results header postkeep prepends (RFC 8601), the removal
of forged ones claiming its authserv-id, DMARC enforcement (550 5.7.1 for p=reject, Junk for
p=quarantine: the copy is stored but not in INBOX, which POP3 serves), verification of a
spooled (> 1 MiB) message, and bounded temperror when DNS does not answer."""

from __future__ import annotations

import email.utils
import poplib
import re
import secrets
import smtplib
import socket
import sys
import time
from pathlib import Path

import dkim
import pytest

from conftest import (DOMAIN, HOST, IO_TIMEOUT, PASSWORD, auth_results, set_toml_value,
                      with_token)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dns"))
from authdns import AuthoritativeDns, DkimKey, MailDomain  # noqa: E402
from imap_helpers import enable_listeners  # noqa: E402

ALICE = f"alice@{DOMAIN}"
SELECTOR = "sel2026"
SIGNED_HEADERS = [b"from", b"to", b"subject", b"date", b"message-id"]
# [dns] timeout_secs for the silent-DNS test: two rounds of three queries bound the wait.
SILENT_DNS_TIMEOUT = 1
SILENT_DNS_BOUND = 30.0


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, DkimKey]:
    workdir = tmp_path_factory.mktemp("dkim-keys")
    return {domain: DkimKey.generate(SELECTOR, workdir) for domain in ("a.test", "b.test")}


@pytest.fixture(scope="module")
def authdns(tmp_path_factory, keys):
    server = AuthoritativeDns(tmp_path_factory.mktemp("nsd"), [
        MailDomain("a.test", "v=DMARC1; p=reject", dkim=[keys["a.test"]]),
        MailDomain("b.test", "v=DMARC1; p=quarantine", dkim=[keys["b.test"]]),
    ])
    server.start()
    yield server
    server.stop()


def configure(srv, nameserver: str, timeout_secs: int = 2) -> None:
    """Turns sender authentication on (the dev config has it off), points it at
    `nameserver` and makes sure pop3s is on, so INBOX can be told apart from Junk."""
    text = srv.config_text()
    text = set_toml_value(text, "inbound_auth", "enabled", "true")
    text = set_toml_value(text, "dns", "nameservers", f'["{nameserver}"]')
    text = set_toml_value(text, "dns", "timeout_secs", str(timeout_secs))
    srv.config_path.write_text(text)
    enable_listeners(srv, "pop3s")


@pytest.fixture
def auth_server(make_server, authdns):
    srv = make_server(users=("alice",), start=False)
    configure(srv, authdns.address)
    srv.start()
    return srv


def hostname(srv) -> str:
    m = re.search(r'^hostname\s*=\s*"([^"]+)"', srv.config_text(), re.M)
    assert m, f"no hostname in postkeep.toml:\n{srv.config_text()}"
    return m.group(1)


# --------------------------------------------------------------------------- mail


def message(token: str, author: str, body: bytes = b"Hello.\r\n",
            extra_headers: tuple[str, ...] = ()) -> bytes:
    headers = [
        *extra_headers,
        f"From: {author}",
        f"To: {ALICE}",
        f"Subject: inbound auth {token}",
        f"Message-ID: <{token}@{author.split('@')[1]}>",
        f"Date: {email.utils.formatdate()}",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


def signed(raw: bytes, domain: str, key: DkimKey) -> bytes:
    """`raw` with a DKIM-Signature of `domain` on top, made by dkimpy as a real signer would."""
    signature = dkim.sign(raw, key.selector.encode(), domain.encode(), key.private_pem,
                          include_headers=SIGNED_HEADERS)
    return signature + raw


def send(srv, mail_from: str, raw: bytes) -> None:
    with srv.smtp() as s:
        refused = s.sendmail(mail_from, [ALICE], raw)
    assert not refused, f"recipient refused: {refused}"


def stored(srv, token: str) -> bytes:
    found = with_token(srv.export(ALICE), token)
    assert len(found) == 1, f"expected one stored copy of {token}, found {len(found)}"
    return found[0]


def header_fields(block: bytes) -> list[bytes]:
    """Splits a header block into whole fields (continuation lines joined)."""
    fields: list[bytes] = []
    for line in block.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        else:
            fields.append(line)
    return fields


def trace_fields(stored_raw: bytes, sent: bytes) -> tuple[str, bytes]:
    """Asserts `stored_raw` is exactly our Authentication-Results, our Received and `sent`;
    returns the Authentication-Results field (unfolded) and the Received field."""
    assert stored_raw.endswith(sent), (
        f"stored message does not end with the bytes sent:\n{stored_raw[:1500]!r}")
    fields = header_fields(stored_raw[:len(stored_raw) - len(sent)])
    assert len(fields) == 2, f"expected Authentication-Results + Received, got {fields!r}"
    ar, received = fields
    assert ar.startswith(b"Authentication-Results: "), fields
    assert received.startswith(b"Received: "), fields
    return re.sub(r"\r\n[ \t]+", " ", ar.decode()), received


def methods(ar: str) -> dict[str, str]:
    """{'spf': 'pass smtp.mailfrom=...', ...} of an unfolded Authentication-Results field
    (the first result of each method)."""
    out: dict[str, str] = {}
    for name, value in auth_results(ar):
        out.setdefault(name, value)
    return out


def inbox(srv) -> list[bytes]:
    """Every message of alice's INBOX, through POP3 (which serves INBOX only)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            pop = poplib.POP3_SSL(HOST, srv.ports["pop3s"], context=srv.tls_context(),
                                  timeout=IO_TIMEOUT)
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    try:
        pop.user(ALICE)
        pop.pass_(PASSWORD)
        count, _ = pop.stat()
        return [b"\r\n".join(pop.retr(i)[1]) for i in range(1, count + 1)]
    finally:
        pop.quit()


# --------------------------------------------------------------------------- tests


def test_dkim_signed_mail_passes_and_carries_the_header(auth_server, keys):
    token = secrets.token_hex(8)
    raw = signed(message(token, "news@a.test"), "a.test", keys["a.test"])
    send(auth_server, "bounces@a.test", raw)

    ar, received = trace_fields(stored(auth_server, token), raw)
    assert ar.startswith(f"Authentication-Results: {hostname(auth_server)}; "), ar
    got = methods(ar)
    assert got["spf"] == "pass smtp.mailfrom=bounces@a.test", ar
    assert got["dkim"] == f"pass header.d=a.test header.s={SELECTOR}", ar
    assert got["dmarc"] == "pass (p=reject) header.from=a.test", ar
    assert got["arc"] == "none", ar
    assert with_token(inbox(auth_server), token), "a passing message belongs in INBOX"


def test_forged_from_of_a_p_reject_domain_is_refused_with_550_5_7_1(auth_server, keys):
    token = secrets.token_hex(8)
    # Signed, but by b.test: not aligned with From: a.test, and SPF vouches for c.test only.
    raw = signed(message(token, "ceo@a.test"), "b.test", keys["b.test"])
    with auth_server.smtp() as s:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            s.sendmail("spoofer@c.test", [ALICE], raw)
    code, text = refused.value.smtp_code, refused.value.smtp_error.decode(errors="replace")
    assert code == 550 and text.startswith("5.7.1 "), f"expected 550 5.7.1, got {code} {text}"
    assert "a.test" in text and "DMARC" in text, text
    assert with_token(auth_server.export(ALICE), token) == [], "a refused message was stored"


def test_forged_from_of_a_p_quarantine_domain_lands_in_junk(auth_server, keys):
    forged, genuine = secrets.token_hex(8), secrets.token_hex(8)
    forged_raw = message(forged, "billing@b.test")
    send(auth_server, "spoofer@c.test", forged_raw)
    genuine_raw = signed(message(genuine, "billing@b.test"), "b.test", keys["b.test"])
    send(auth_server, "billing@b.test", genuine_raw)

    ar, _ = trace_fields(stored(auth_server, forged), forged_raw)
    got = methods(ar)
    assert got["spf"] == "none smtp.mailfrom=spoofer@c.test", ar
    assert got["dkim"] == "none", ar
    assert got["dmarc"] == "fail (p=quarantine) header.from=b.test", ar
    ar, _ = trace_fields(stored(auth_server, genuine), genuine_raw)
    assert methods(ar)["dmarc"] == "pass (p=quarantine) header.from=b.test", ar

    in_inbox = inbox(auth_server)
    assert with_token(in_inbox, genuine), "the authenticated b.test message is not in INBOX"
    assert not with_token(in_inbox, forged), (
        "the DMARC-failing p=quarantine message is in INBOX instead of Junk")


def test_forged_authentication_results_claiming_our_id_are_removed(auth_server, keys):
    token = secrets.token_hex(8)
    ours = hostname(auth_server)
    forged = [
        f"Authentication-Results: {ours}; spf=pass smtp.mailfrom=ceo@a.test;\r\n"
        "\tdkim=pass header.d=a.test; dmarc=pass header.from=a.test",
        f"authentication-results: (looks official) {ours.upper()}; dmarc=pass",
    ]
    kept = "Authentication-Results: relay.elsewhere.test; spf=pass smtp.mailfrom=x@a.test"
    raw = signed(message(token, "news@a.test", extra_headers=(*forged, kept)), "a.test",
                 keys["a.test"])
    send(auth_server, "bounces@a.test", raw)

    without_forged = raw
    for field in forged:
        without_forged = without_forged.replace(field.encode() + b"\r\n", b"", 1)
    assert without_forged != raw and len(without_forged) < len(raw) - 100
    ar, _ = trace_fields(stored(auth_server, token), without_forged)
    assert methods(ar)["dkim"] == f"pass header.d=a.test header.s={SELECTOR}", (
        f"removing unsigned forged fields must not break the signature: {ar}")
    assert kept.encode() in stored(auth_server, token), "another server's field was removed"


def test_large_signed_message_is_verified_from_the_spool(auth_server, keys):
    token = secrets.token_hex(8)
    line = b"A long body line of a large, DKIM-signed message.  Trailing space \r\n"
    body = line * (3 * 1024 * 1024 // len(line))
    raw = signed(message(token, "news@a.test", body=body), "a.test", keys["a.test"])
    assert len(raw) > 3 * 1024 * 1024
    send(auth_server, "bounces@a.test", raw)
    ar, _ = trace_fields(stored(auth_server, token), raw)
    got = methods(ar)
    assert got["dkim"] == f"pass header.d=a.test header.s={SELECTOR}", ar
    assert got["dmarc"] == "pass (p=reject) header.from=a.test", ar


def test_dns_that_does_not_answer_gives_temperror_and_delivers_in_bounded_time(
        make_server, keys):
    # A nameserver that takes every query and never answers.
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind((HOST, 0))
    try:
        srv = make_server(users=("alice",), start=False)
        configure(srv, f"{HOST}:{silent.getsockname()[1]}", timeout_secs=SILENT_DNS_TIMEOUT)
        srv.start()
        token = secrets.token_hex(8)
        # From a p=reject domain: with DNS silent nothing can be enforced, only recorded.
        raw = signed(message(token, "news@a.test"), "a.test", keys["a.test"])
        started = time.monotonic()
        send(srv, "bounces@a.test", raw)
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert elapsed < SILENT_DNS_BOUND, f"delivery waited {elapsed:.1f}s for silent DNS"
    ar, _ = trace_fields(stored(srv, token), raw)
    got = methods(ar)
    assert got["spf"] == "temperror smtp.mailfrom=bounces@a.test", ar
    assert got["dkim"].startswith("temperror "), ar
    assert f"header.d=a.test header.s={SELECTOR}" in got["dkim"], ar
    assert got["dmarc"].startswith("temperror"), ar
    assert with_token(inbox(srv), token), "temperror must not quarantine"


def test_arc_sealed_forward_reports_arc_pass(auth_server, keys):
    token = secrets.token_hex(8)
    original = signed(message(token, "news@a.test"), "a.test", keys["a.test"])
    # A forwarder at b.test verified it, recorded that, and sealed the chain (RFC 8617 §5.1).
    received_there = (b"Authentication-Results: mx.b.test; dkim=pass header.d=a.test;"
                      b" spf=pass smtp.mailfrom=bounces@a.test\r\n" + original)
    seal = dkim.arc_sign(received_there, SELECTOR.encode(), b"b.test", keys["b.test"].private_pem,
                         b"mx.b.test", include_headers=SIGNED_HEADERS)
    assert seal, "dkimpy produced no ARC set"
    forwarded = b"".join(seal) + received_there
    send(auth_server, "forwarder@b.test", forwarded)
    ar, _ = trace_fields(stored(auth_server, token), forwarded)
    got = methods(ar)
    assert got["arc"] == "pass", ar
    assert got["spf"] == "pass smtp.mailfrom=forwarder@b.test", ar
    assert got["dmarc"] == "pass (p=reject) header.from=a.test", ar
