"""Size and recipient limits from [smtp] in postkeep.toml."""

import secrets

from conftest import (DOMAIN, SENDER, ConnectionClosed, assert_reply, make_message,
                      split_received, with_token)

ALICE = f"alice@{DOMAIN}"
LIMIT = 200_000


def big_message(token: str, size: int) -> bytes:
    line = b"x" * 998 + b"\r\n"
    body = line * (size // len(line) + 1)
    return make_message(token, "big", body)


def test_size_limit_is_advertised_and_enforced_at_mail_from(make_server):
    srv = make_server(smtp={"max_message_size": LIMIT})
    raw = srv.raw()
    try:
        r = raw.ehlo()
        sizes = [line.split() for line in r.lines[1:] if line.upper().startswith("SIZE")]
        assert sizes == [["SIZE", str(LIMIT)]], f"EHLO should advertise SIZE {LIMIT}: {r.lines}"
        r = raw.cmd(f"MAIL FROM:<{SENDER}> SIZE={LIMIT + 1}")
        assert_reply(r, 552, "5.3.4", "MAIL FROM with SIZE over the limit")
        # The session goes on, and a declared size within the limit is fine.
        assert_reply(raw.cmd(f"MAIL FROM:<{SENDER}> SIZE={LIMIT // 2}"), 250, what="MAIL")
    finally:
        raw.close()


def test_body_over_the_limit_is_refused_with_552_and_not_stored(make_server):
    srv = make_server(smtp={"max_message_size": LIMIT})
    token = secrets.token_hex(8)
    raw = srv.raw()
    try:
        raw.ehlo()
        # No SIZE parameter: the server can only find out while reading the data.
        r = raw.transaction([ALICE], big_message(token, LIMIT + 100_000))
        assert_reply(r, 552, "5.3.4", "body over max_message_size")
        try:
            same_session = raw.cmd("NOOP").code == 250
        except (ConnectionClosed, OSError):
            same_session = False
    finally:
        raw.close()
    # Whether or not that session survived, the server still takes a small message.
    ok_token = secrets.token_hex(8)
    small = make_message(ok_token, "small after big")
    srv.send([ALICE], small)
    msgs = srv.export(ALICE)
    assert with_token(msgs, token) == [], "the oversized message was stored"
    assert len(with_token(msgs, ok_token)) == 1
    print(f"session continued after 552: {same_session}")


def test_bdat_over_the_limit_is_refused_with_552(make_server):
    srv = make_server(smtp={"max_message_size": LIMIT})
    token = secrets.token_hex(8)
    chunk = big_message(token, LIMIT // 2 + 10_000)
    raw = srv.raw()
    try:
        raw.ehlo()
        assert_reply(raw.cmd(f"MAIL FROM:<{SENDER}>"), 250)
        assert_reply(raw.cmd(f"RCPT TO:<{ALICE}>"), 250)
        replies = []
        raw.send(f"BDAT {len(chunk)}\r\n".encode() + chunk)
        replies.append(raw.reply())
        if replies[0].code == 250:
            raw.send(f"BDAT {len(chunk)} LAST\r\n".encode() + chunk)
            replies.append(raw.reply())
        assert replies[-1].code == 552 and replies[-1].enhanced == "5.3.4", (
            f"BDAT chunks totalling {2 * len(chunk)} > {LIMIT} should end in 552 5.3.4: "
            f"{[str(r) for r in replies]}")
    finally:
        raw.close()
    assert with_token(srv.export(ALICE), token) == []


def test_too_many_recipients_get_452_and_the_rest_are_delivered(make_server):
    users = [f"r{i}@{DOMAIN}" for i in range(4)]
    srv = make_server(users=users, smtp={"max_recipients": 3})
    token = secrets.token_hex(8)
    msg = make_message(token, "max recipients")
    raw = srv.raw()
    try:
        raw.ehlo()
        assert_reply(raw.cmd(f"MAIL FROM:<{SENDER}>"), 250)
        for rcpt in users[:3]:
            assert_reply(raw.cmd(f"RCPT TO:<{rcpt}>"), 250, what=rcpt)
        assert_reply(raw.cmd(f"RCPT TO:<{users[3]}>"), 452, "4.5.3", "fourth recipient of 3")
        assert_reply(raw.cmd("DATA"), 354)
        raw.send(msg + b".\r\n")
        assert_reply(raw.reply(), 250, what="end of data")
    finally:
        raw.close()
    for rcpt in users[:3]:
        found = with_token(srv.export(rcpt), token)
        assert len(found) == 1, f"{rcpt} should have the message once, has {len(found)}"
        split_received(found[0], msg)
    assert with_token(srv.export(users[3]), token) == [], "the refused recipient got a copy"
