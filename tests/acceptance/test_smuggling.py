"""SMTP smuggling: the only end of data is CRLF.CRLF (RFC 5321 §4.1.1.4); a bare CR or LF
anywhere in DATA makes the server refuse the message with 554 5.6.11 and store nothing, so a
second message hidden behind a fake terminator can never be delivered."""

import secrets

import pytest

from conftest import DOMAIN, SENDER, assert_reply, make_message, with_token

ALICE, BOB = f"alice@{DOMAIN}", f"bob@{DOMAIN}"

# Fake end-of-data sequences that lenient servers (or the next hop) accept.
FAKE_TERMINATORS = {
    "lf-dot-lf": b"\n.\n",
    "lf-dot-crlf": b"\n.\r\n",
    "cr-dot-crlf": b"\r.\r\n",
    "crlf-dot-cr": b"\r\n.\r",
    "crlf-dot-lf": b"\r\n.\n",
    "cr-dot-cr": b"\r.\r",
}


def smuggling_payload(token: str, fake_end: bytes) -> bytes:
    outer = (f"From: mallory@remote.test\r\nTo: {ALICE}\r\nSubject: outer {token}\r\n"
             "\r\nouter body").encode()
    smuggled = (f"MAIL FROM:<admin@{DOMAIN}>\r\nRCPT TO:<{BOB}>\r\nDATA\r\n"
                f"From: admin@{DOMAIN}\r\nTo: {BOB}\r\nSubject: smuggled {token}\r\n"
                "\r\nsmuggled body\r\n").encode()
    # The smuggled part ends in CRLF, so this is the one real CRLF.CRLF of the outer DATA.
    return outer + fake_end + smuggled + b".\r\n"


def run_session(srv, token: str, payload: bytes) -> None:
    """Sends the payload as one DATA, checks the 554 5.6.11, then a clean message in the same
    session (which must go through)."""
    raw = srv.raw()
    try:
        raw.ehlo()
        assert_reply(raw.cmd("MAIL FROM:<mallory@remote.test>"), 250, what="MAIL")
        assert_reply(raw.cmd(f"RCPT TO:<{ALICE}>"), 250, what="RCPT")
        assert_reply(raw.cmd("DATA"), 354, what="DATA")
        raw.send(payload)
        r = raw.reply()
        assert_reply(r, 554, "5.6.11", f"end of data containing a bare CR/LF: {payload!r}")
        extra = raw.pending(1.5)
        assert extra == b"", (
            f"server sent more replies after the 554, so it ran the smuggled commands: {extra!r}")
        clean = make_message(f"clean{token}", "clean after smuggling")
        r = raw.transaction([ALICE], clean)
        assert_reply(r, 250, what="clean message in the same session after the 554")
        assert_reply(raw.cmd("QUIT"), 221, what="QUIT")
    finally:
        raw.close()


def assert_only_clean_message_delivered(srv, token: str) -> None:
    alice = srv.export(ALICE)
    bob = srv.export(BOB)
    demo = srv.export(f"demo@{DOMAIN}")
    everything = alice + bob + demo
    smuggled = [m for m in everything if b"smuggled" in m]
    assert smuggled == [], f"a smuggled message was delivered: {smuggled[0][:400]!r}"
    assert with_token(everything, f"outer {token}") == [], "the refused outer message was stored"
    assert bob == [], f"bob received {len(bob)} message(s); he was only a smuggled recipient"
    assert len(with_token(alice, f"clean{token}")) == 1, "the clean follow-up message is missing"
    assert len(alice) == 1, f"alice should hold only the clean message, holds {len(alice)}"


@pytest.mark.parametrize("fake_end", FAKE_TERMINATORS.values(), ids=FAKE_TERMINATORS.keys())
def test_smuggled_message_behind_fake_terminator_is_never_delivered(server, fake_end):
    token = secrets.token_hex(8)
    run_session(server, token, smuggling_payload(token, fake_end))
    assert_only_clean_message_delivered(server, token)


BARE_ENDINGS = {
    "bare-lf-in-body": b"Subject: bare lf\r\n\r\nline one\nline two\r\n.\r\n",
    "bare-cr-in-body": b"Subject: bare cr\r\n\r\nline one\rline two\r\n.\r\n",
    "bare-lf-in-header": b"Subject: bare lf\nX-Other: 1\r\n\r\nbody\r\n.\r\n",
    "bare-lf-last-line": b"Subject: bare lf\r\n\r\nbody\n\r\n.\r\n",
}


@pytest.mark.parametrize("payload", BARE_ENDINGS.values(), ids=BARE_ENDINGS.keys())
def test_bare_cr_or_lf_anywhere_in_data_is_refused(server, payload):
    token = secrets.token_hex(8)
    run_session(server, token, payload)
    msgs = server.export(ALICE)
    assert len(msgs) == 1 and f"clean{token}".encode() in msgs[0], (
        f"expected only the clean follow-up in alice's mailbox, got {len(msgs)} message(s)")


def test_smuggling_attempt_via_sender_from_other_session_fails_too(server):
    """Two connections interleaved: the smuggled bytes of one session must not leak into
    another session's transaction (each session parses only its own stream)."""
    token = secrets.token_hex(8)
    a, b = server.raw(), server.raw()
    try:
        a.ehlo()
        b.ehlo()
        assert_reply(a.cmd("MAIL FROM:<mallory@remote.test>"), 250)
        assert_reply(a.cmd(f"RCPT TO:<{ALICE}>"), 250)
        assert_reply(a.cmd("DATA"), 354)
        a.send(smuggling_payload(token, b"\n.\n")[:-3])  # hold back the real terminator
        clean = make_message(f"other{token}", "other session")
        assert_reply(b.transaction([ALICE], clean), 250, what="concurrent clean session")
        a.send(b".\r\n")
        assert_reply(a.reply(), 554, "5.6.11")
    finally:
        a.close()
        b.close()
    alice = server.export(ALICE)
    assert len(alice) == 1 and f"other{token}".encode() in alice[0], (
        f"alice should hold only the other session's message; holds {len(alice)}")
    assert server.export(BOB) == []
