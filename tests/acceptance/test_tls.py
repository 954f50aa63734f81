"""STARTTLS (RFC 3207): TLS 1.2 and 1.3 only, the dev certificate verifies, and no plaintext
pipelined before the handshake leaks into the TLS session."""

import shutil
import socket
import ssl
import subprocess
import threading

import pytest

from conftest import (DOMAIN, HOST, SENDER, ConnectionClosed, assert_reply, make_message,
                      with_token)

ALICE = f"alice@{DOMAIN}"


def pinned_context(version: ssl.TLSVersion, cafile=None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile=str(cafile))
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if version < ssl.TLSVersion.TLSv1_2:
        # OpenSSL 3 refuses old protocols at the default security level; lower it so the
        # client really offers TLS 1.1 and only the server can say no.
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = version
    ctx.maximum_version = version
    return ctx


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
                         ids=["tls1.2", "tls1.3"])
def test_starttls_works_with_tls_1_2_and_1_3_and_verifies(server, version):
    raw = server.raw()
    try:
        raw.ehlo()
        raw.starttls(pinned_context(version, cafile=server.cert_path), "localhost")
        expected = {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}
        assert raw.sock.version() == expected[version]
        r = raw.ehlo()
        assert not any(line.upper().startswith("STARTTLS") for line in r.lines[1:]), (
            f"STARTTLS advertised again inside TLS: {r.lines}")
        r = raw.cmd("STARTTLS")
        assert 500 <= r.code < 600 and r.enhanced, f"STARTTLS inside TLS should fail: {r}"
        token = f"{version.name}-{server.port}"
        assert_reply(raw.transaction([ALICE], make_message(token, "over tls")), 250)
        assert_reply(raw.cmd("QUIT"), 221)
    finally:
        raw.close()
    assert len(with_token(server.export(ALICE), token)) == 1


def control_handshake_tls11(ctx: ssl.SSLContext, cert, key) -> str:
    """Proves the client can do TLS 1.1 at all, against a local Python server allowing it."""
    srv_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv_ctx.load_cert_chain(str(cert), str(key))
    srv_ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    srv_ctx.minimum_version = ssl.TLSVersion.TLSv1_1
    listener = socket.create_server((HOST, 0))
    result = {}

    def accept():
        conn, _ = listener.accept()
        try:
            with srv_ctx.wrap_socket(conn, server_side=True) as tls:
                result["server"] = tls.version()
        except (ssl.SSLError, OSError) as e:
            result["server"] = repr(e)

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        with socket.create_connection(listener.getsockname(), timeout=30) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as tls:
                return tls.version()
    finally:
        t.join(30)
        listener.close()


def rsa_cert_and_key(tmp_path):
    openssl = shutil.which("openssl")
    assert openssl, "no openssl binary to build an RSA control certificate"
    cert, key = tmp_path / "rsa-cert.pem", tmp_path / "rsa-key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def test_tls_1_1_client_is_refused(server, tmp_path):
    ctx = pinned_context(ssl.TLSVersion.TLSv1_1)
    try:
        control = control_handshake_tls11(ctx, server.cert_path, server.key_path)
    except (ssl.SSLError, OSError):
        # The dev key type may not be usable with TLS 1.1 (e.g. Ed25519): use RSA instead.
        control = control_handshake_tls11(ctx, *rsa_cert_and_key(tmp_path))
    assert control == "TLSv1.1", f"control handshake negotiated {control}, not TLS 1.1"

    raw = server.raw()
    try:
        raw.ehlo()
        with pytest.raises((ssl.SSLError, ConnectionClosed, ConnectionResetError,
                            BrokenPipeError)) as info:
            raw.starttls(ctx, "localhost")
            raw.cmd("NOOP")  # in case the failure only shows on first use
        assert "NO_PROTOCOLS_AVAILABLE" not in str(info.value), (
            "the client refused by itself; the test proves nothing")
    finally:
        raw.close()
    # The failed handshake did no harm.
    fresh = server.raw()
    try:
        assert fresh.greeting.code == 220
        fresh.ehlo()
    finally:
        fresh.close()


def test_plaintext_pipelined_after_starttls_is_not_executed_inside_tls(server):
    """CVE-2011-0411 class: bytes sent in clear right after STARTTLS must be discarded (or
    the connection dropped), never treated as commands of the encrypted session."""
    raw = server.raw()
    try:
        raw.ehlo()
        raw.send(f"STARTTLS\r\nMAIL FROM:<{SENDER}>\r\nNOOP\r\n".encode())
        r = raw.reply()
        if r.code != 220:
            assert r.code >= 400, f"unexpected reply to pipelined STARTTLS: {r}"
            return  # refusing a pipelined STARTTLS outright is safe
        try:
            raw.sock = server.tls_context(verify=False).wrap_socket(
                raw.sock, server_hostname="localhost")
            raw.buf = b""
            r = raw.ehlo()
        except (ssl.SSLError, ConnectionClosed, ConnectionResetError, BrokenPipeError) as e:
            print(f"handshake failed, which is safe: {e!r}")
            return
        assert len(r.lines) > 1, (
            f"first reply inside TLS is not the EHLO reply (injected command ran?): {r}")
        # Had the injected MAIL FROM run inside TLS, this one would get 503.
        assert_reply(raw.cmd(f"MAIL FROM:<{SENDER}>"), 250, what="MAIL after STARTTLS")
        assert raw.pending(1.0) == b"", "stray replies inside the TLS session"
    finally:
        raw.close()
