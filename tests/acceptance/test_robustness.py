"""Hostile and broken clients: the server answers with proper codes, keeps the session usable
where it should, disconnects after too many errors, and never crashes."""

import secrets
import socket
import struct
import time

from conftest import (DOMAIN, HOST, SENDER, ConnectionClosed, RawSmtp, assert_reply,
                      make_message, with_token)

ALICE = f"alice@{DOMAIN}"


def assert_error(r, codes=(500, 501), what=""):
    assert r.code in codes, f"{what}: expected one of {codes}, got: {r}"
    assert r.enhanced is not None and r.enhanced.startswith(f"{r.code // 100}."), (
        f"{what}: reply lacks a matching enhanced status code (RFC 2034): {r}")


def assert_server_healthy(srv):
    assert srv.running(), f"server died; log:\n{srv.log_tail()}"
    # A connection we just closed may not be counted down yet: allow a few 421 greetings.
    for _ in range(20):
        raw = srv.raw()
        try:
            if raw.greeting.code == 421:
                time.sleep(0.5)
                continue
            assert raw.greeting.code == 220, f"unexpected greeting: {raw.greeting}"
            raw.ehlo()
            assert_reply(raw.cmd("NOOP"), 250, what="NOOP on a fresh connection")
            return
        finally:
            raw.close()
    raise AssertionError("server keeps answering 421 to new connections")


def test_garbage_commands_get_500_or_501_and_the_session_goes_on(server):
    raw = server.raw()
    try:
        raw.ehlo()
        assert_error(raw.cmd("XYZZY plugh"), (500,), "unknown verb")
        assert_error(raw.cmd("MAIL"), (501,), "MAIL without argument")
        assert_error(raw.cmd("MAIL FROM:<<<>>>"), (501, 553), "MAIL with mangled address")
        assert_error(raw.cmd("RCPT TO:"), (501, 503), "RCPT without path")
        assert_error(raw.cmd("NOOP\x00\x01\x02"), (500, 501), "control bytes")
        assert_error(raw.cmd(""), (500, 501), "empty line")
        assert_reply(raw.cmd("NOOP"), 250, what="NOOP after errors")
        token = secrets.token_hex(8)
        assert_reply(raw.transaction([ALICE], make_message(token)), 250,
                     what="delivery after errors")
    finally:
        raw.close()
    assert len(with_token(server.export(ALICE), token)) == 1


def test_commands_out_of_sequence_get_503(server):
    raw = server.raw()
    try:
        raw.ehlo()
        assert_error(raw.cmd(f"RCPT TO:<{ALICE}>"), (503,), "RCPT before MAIL")
        assert_error(raw.cmd("DATA"), (503,), "DATA before MAIL")
        assert_reply(raw.cmd(f"MAIL FROM:<{SENDER}>"), 250)
        assert_error(raw.cmd(f"MAIL FROM:<{SENDER}>"), (503,), "nested MAIL")
    finally:
        raw.close()


def test_ten_kilobyte_command_line_gets_500_5_5_2_and_session_survives(server):
    raw = server.raw()
    try:
        raw.ehlo()
        # The long line and a normal command in one write: the server must resynchronise at
        # the CRLF after the overlong line.
        raw.send(b"NOOP " + b"A" * 10240 + b"\r\nNOOP\r\n")
        assert_reply(raw.reply(), 500, "5.5.2", "10 kB command line")
        assert_reply(raw.reply(), 250, what="NOOP right after the long line")
        long_rcpt = "RCPT TO:<" + "b" * 10000 + f"@{DOMAIN}>"
        assert_reply(raw.cmd(f"MAIL FROM:<{SENDER}>"), 250)
        assert_reply(raw.cmd(long_rcpt), 500, "5.5.2", "10 kB RCPT line")
        token = secrets.token_hex(8)
        assert_reply(raw.cmd(f"RCPT TO:<{ALICE}>"), 250, what="RCPT after long line")
        assert_reply(raw.cmd("DATA"), 354)
        msg = make_message(token, "after long line")
        raw.send(msg + b".\r\n")
        assert_reply(raw.reply(), 250, what="delivery after long line")
    finally:
        raw.close()
    assert len(with_token(server.export(ALICE), token)) == 1


def test_invalid_utf8_in_commands_is_an_error_not_a_crash(server):
    raw = server.raw()
    try:
        assert_error(raw.cmd(b"EHLO \xff\xfe\xfd"), (500, 501), "EHLO with invalid UTF-8")
        raw.ehlo()
        assert_error(raw.cmd(b"\xc3\x28\xa0\xa1 what"), (500, 501), "invalid UTF-8 verb")
        assert_error(raw.cmd(b"MAIL FROM:<\xc3\x28@remote.test>"), (500, 501, 553),
                     "MAIL FROM with invalid UTF-8")
        assert_reply(raw.cmd(f"MAIL FROM:<{SENDER}>"), 250)
        assert_error(raw.cmd(b"RCPT TO:<\xff\xfe@example.test>"), (500, 501, 550, 553),
                     "RCPT TO with invalid UTF-8")
        assert_reply(raw.cmd("NOOP"), 250, what="NOOP after invalid UTF-8")
    finally:
        raw.close()
    assert_server_healthy(server)


def test_too_many_errors_get_421_and_disconnect(make_server):
    max_errors = 5
    srv = make_server(smtp={"max_errors": max_errors})
    raw = srv.raw()
    try:
        raw.ehlo()
        errors, final = 0, None
        # Strictly one command per reply: a pipelined burst could be reset before we read.
        for i in range(max_errors + 3):
            # The 421 may already be buffered right behind the last error reply.
            r = raw.reply() if raw.buf else raw.cmd(f"BOGUS{i}")
            if r.code == 421:
                final = r
                break
            assert_error(r, (500,), f"bogus command #{i + 1}")
            errors += 1
        assert final is not None, f"no 421 after {errors} errors (max_errors = {max_errors})"
        assert max_errors - 1 <= errors <= max_errors, (
            f"421 came after {errors} errors; max_errors is {max_errors}")
        assert final.enhanced is not None and final.enhanced.startswith("4."), (
            f"421 lacks an enhanced status code: {final}")
        raw.expect_closed()
    finally:
        raw.close()
    assert_server_healthy(srv)


def test_huge_line_without_newline_does_not_exhaust_the_server(server):
    raw = server.raw()
    try:
        raw.ehlo()
        try:
            raw.send(b"NOOP " + b"C" * (2 * 1024 * 1024) + b"\r\n")
            r = raw.reply()
            assert r.code in (500, 421), f"2 MB line: expected 500 or 421, got {r}"
        except (ConnectionClosed, ConnectionResetError, BrokenPipeError):
            pass  # closing on an absurd line is acceptable too
    finally:
        raw.close()
    assert_server_healthy(server)


def test_clients_vanishing_mid_transaction_store_nothing(server):
    token = secrets.token_hex(8)
    # Mid-DATA.
    raw = server.raw()
    raw.ehlo()
    raw.cmd(f"MAIL FROM:<{SENDER}>")
    raw.cmd(f"RCPT TO:<{ALICE}>")
    assert_reply(raw.cmd("DATA"), 354)
    raw.send(make_message(token, "half")[:60])
    raw.close()
    # Mid-BDAT chunk.
    raw = server.raw()
    raw.ehlo()
    raw.cmd(f"MAIL FROM:<{SENDER}>")
    raw.cmd(f"RCPT TO:<{ALICE}>")
    raw.send(b"BDAT 5000 LAST\r\n" + make_message(token, "half bdat")[:100])
    raw.close()
    # Reset instead of FIN.
    s = socket.create_connection((HOST, server.port), timeout=30)
    s.recv(1024)
    s.sendall(b"EHLO x\r\nMAIL FROM:<a@b.test>\r\n")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    # Binary noise.
    raw = server.raw()
    try:
        raw.send(bytes(range(256)) * 16 + b"\r\n")
    finally:
        raw.close()
    assert_server_healthy(server)
    assert with_token(server.export(ALICE), token) == [], "a truncated message was stored"


def test_many_concurrent_idle_connections_do_not_block_others(make_server):
    srv = make_server(smtp={"max_connections_per_ip": 50})
    idle = []
    try:
        for _ in range(30):
            idle.append(RawSmtp(srv.port))
        token = secrets.token_hex(8)
        srv.send([ALICE], make_message(token, "while others idle"))
    finally:
        for r in idle:
            r.close()
    assert len(with_token(srv.export(ALICE), token)) == 1


def test_connections_over_per_ip_limit_are_turned_away(make_server):
    srv = make_server(smtp={"max_connections_per_ip": 3})
    held = []
    try:
        for _ in range(3):
            held.append(RawSmtp(srv.port))
        try:
            extra = RawSmtp(srv.port, timeout=30)
        except (ConnectionClosed, ConnectionResetError):
            extra = None  # closed without a greeting: also a refusal
        except TimeoutError:
            raise AssertionError("4th connection over the per-IP limit got no answer in 30 s; "
                                 "it should be told 421 (or closed)") from None
        if extra is not None:
            try:
                assert extra.greeting.code in (421, 554), (
                    f"4th connection with max_connections_per_ip=3 got: {extra.greeting}")
            finally:
                extra.close()
    finally:
        for r in held:
            r.close()
    assert_server_healthy(srv)
