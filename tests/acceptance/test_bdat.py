"""CHUNKING (RFC 3030): BDAT delivers the exact bytes sent, with no dot handling at all."""

import secrets

from conftest import DOMAIN, SENDER, assert_reply, split_received, with_token

ALICE, BOB = f"alice@{DOMAIN}", f"bob@{DOMAIN}"


def bdat_message(token: str) -> bytes:
    """Bytes that DATA would mangle or reject: dot lines, a CRLF.CRLF in the middle,
    UTF-8 and non-UTF-8 8-bit bytes, something that looks like a BDAT command."""
    return (
        f"From: sender@remote.test\r\nTo: {ALICE}\r\nSubject: bdat {token}\r\n"
        "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode() + (
        b".\r\n"
        b"..two dots stay two dots\r\n"
        b"\r\n.\r\n"
        b"BDAT 5 LAST\r\n"
        + "gr\u00fc\u00df dich \u2713\r\n".encode()
        + bytes(range(0x80, 0x100)) + b"\r\n"
        + b"tail line\r\n"
    )


def crlf_split_point(data: bytes) -> int:
    """An index between the CR and LF of a line ending, to split a chunk there."""
    i = data.index(b"\r\n", len(data) // 2)
    return i + 1


def test_bdat_three_chunks_ending_with_bdat_0_last_is_byte_exact(server):
    token = secrets.token_hex(8)
    msg = bdat_message(token)
    cut1 = crlf_split_point(msg)
    chunks = [msg[:cut1], msg[cut1:cut1 + 7], msg[cut1 + 7:]]
    raw = server.raw()
    try:
        raw.ehlo()
        assert_reply(raw.cmd(f"MAIL FROM:<{SENDER}> BODY=8BITMIME"), 250)
        assert_reply(raw.cmd(f"RCPT TO:<{ALICE}>"), 250)
        for i, chunk in enumerate(chunks):
            raw.send(f"BDAT {len(chunk)}\r\n".encode() + chunk)
            assert_reply(raw.reply(), 250, what=f"BDAT chunk {i + 1}")
        assert_reply(raw.cmd("BDAT 0 LAST"), 250, what="BDAT 0 LAST")
        # A second transaction in the same session, pipelined in one write, LAST on the data.
        token2 = secrets.token_hex(8)
        msg2 = bdat_message(token2)
        half = len(msg2) // 2
        raw.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{ALICE}>\r\nRCPT TO:<{BOB}>\r\n".encode()
                 + f"BDAT {half}\r\n".encode() + msg2[:half]
                 + f"BDAT {len(msg2) - half} LAST\r\n".encode() + msg2[half:])
        for what in ("MAIL", "RCPT alice", "RCPT bob", "BDAT", "BDAT LAST"):
            assert_reply(raw.reply(), 250, what=f"pipelined {what}")
        assert_reply(raw.cmd("QUIT"), 221)
    finally:
        raw.close()

    alice = server.export(ALICE)
    for tok, sent in ((token, msg), (token2, msg2)):
        found = with_token(alice, f"bdat {tok}")
        assert len(found) == 1, f"alice should hold BDAT message {tok} once, holds {len(found)}"
        split_received(found[0], sent)
    bob = with_token(server.export(BOB), f"bdat {token2}")
    assert len(bob) == 1
    split_received(bob[0], msg2)


def test_bdat_then_data_in_same_transaction_is_a_sequence_error(server):
    raw = server.raw()
    try:
        raw.ehlo()
        assert_reply(raw.cmd(f"MAIL FROM:<{SENDER}>"), 250)
        assert_reply(raw.cmd(f"RCPT TO:<{ALICE}>"), 250)
        raw.send(b"BDAT 4\r\nabcd")
        assert_reply(raw.reply(), 250)
        r = raw.cmd("DATA")
        # RFC 3030 §2: DATA after BDAT in one transaction gets 503.
        assert r.code == 503, f"DATA after BDAT should be 503, got {r}"
    finally:
        raw.close()
