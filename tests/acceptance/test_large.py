"""A large message is streamed through the server: received, spooled, sealed and filed in
chunks, so its size never has to fit in the server's memory, and it comes back intact."""

import base64
import hashlib
import os
import secrets

from conftest import DOMAIN, make_message, split_received

MESSAGE_BYTES = 40 * 1024 * 1024


def peak_rss_bytes(pid: int) -> int:
    """VmHWM: the most resident memory the process ever had."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def attachment_body(size: int) -> bytes:
    """A multipart body with one base64 attachment of about `size` bytes (random: it does not
    compress, like real attachments)."""
    raw = os.urandom(size * 3 // 4)
    b64 = base64.encodebytes(raw).replace(b"\n", b"\r\n")
    return (b"--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
            b"--b1\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=\"big.bin\"\r\n\r\n"
            + b64 + b"--b1--\r\n")


def test_large_message_is_filed_without_holding_it_in_memory(server):
    alice = f"alice@{DOMAIN}"
    token = secrets.token_hex(8)
    message = make_message(
        token, "large", attachment_body(MESSAGE_BYTES),
        extra_headers=["MIME-Version: 1.0", 'Content-Type: multipart/mixed; boundary="b1"'])
    assert len(message) > MESSAGE_BYTES
    server.send([alice], message)
    peak = peak_rss_bytes(server.proc.pid)
    print(f"peak resident memory {peak >> 20} MiB for a {len(message) >> 20} MiB message")
    assert peak < MESSAGE_BYTES, (
        f"server peaked at {peak >> 20} MiB resident while filing a {len(message) >> 20} MiB "
        "message: the body is being held in memory")
    stored = [m for m in server.export(alice) if token.encode() in m[:4096]]
    assert len(stored) == 1, f"expected the large message once, found {len(stored)}"
    split_received(stored[0], message)
    assert hashlib.sha256(stored[0][-len(message):]).digest() == hashlib.sha256(message).digest()
