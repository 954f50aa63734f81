"""Encryption at rest: nothing derived from a message may be readable in the data directory
or the server log, even after undoing common encodings and compressions."""

import base64
import gzip
import secrets
import string
import zlib

import zstandard

from conftest import DOMAIN, make_message, split_received, with_token

VAULT = f"vault@{DOMAIN}"
MAX_OUTPUT = 64 * 1024 * 1024  # per decompressed stream
FEED = 64 * 1024
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b\x08"
ZLIB_HEADERS = (b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda")


def make_canary() -> str:
    alphabet = string.ascii_letters + string.digits
    while True:
        c = "".join(secrets.choice(alphabet) for _ in range(32))
        # Mixed case, so a lowercased search index is caught by the lower() needle.
        if c.lower() != c and c.upper() != c:
            return c


def base64_needles(raw: bytes) -> set[bytes]:
    """Substrings every base64 encoding of a stream containing `raw` must contain, for each of
    the three byte alignments (standard and URL-safe alphabets)."""
    out = set()
    for pad in range(3):
        enc = base64.b64encode(b"\0" * pad + raw)
        # Drop the group mixing padding bytes with ours, and a trailing partial group.
        start = 4 if pad else 0
        end = len(enc) - (4 if (pad + len(raw)) % 3 else 0)
        core = enc[start:end]
        out.add(core)
        out.add(core.replace(b"+", b"-").replace(b"/", b"_"))
    return out


def needles(canary: str) -> dict[bytes, str]:
    found: dict[bytes, str] = {}
    for variant, label in ((canary, "raw"), (canary.lower(), "lowercase"),
                           (canary.upper(), "uppercase")):
        b = variant.encode()
        found[b] = label
        for enc in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
            found[variant.encode(enc)] = f"{label} {enc}"
        found[b.hex().encode()] = f"{label} hex"
        found[b.hex().upper().encode()] = f"{label} HEX"
    for n in base64_needles(canary.encode()):
        found[n] = "base64"
    return found


def find_needles(data: bytes, table: dict[bytes, str]) -> list[str]:
    hits = [label for needle, label in table.items() if needle in data]
    # Base64 in mail bodies is wrapped at 76 columns: look again with line breaks removed.
    if not hits and (b"\n" in data):
        flat = data.replace(b"\r", b"").replace(b"\n", b"")
        hits = [label + " (line-wrapped)" for needle, label in table.items()
                if label == "base64" and needle in flat]
    return hits


def drain_zlib(view: memoryview, wbits: int) -> bytes:
    d = zlib.decompressobj(wbits)
    out = bytearray()
    try:
        for pos in range(0, len(view), FEED):
            out += d.decompress(view[pos:pos + FEED], MAX_OUTPUT - len(out))
            if d.eof or len(out) >= MAX_OUTPUT:
                break
    except zlib.error:
        pass  # keep what decoded before the garbage
    return bytes(out)


def drain_zstd(view: memoryview, across_frames: bool = False) -> bytes:
    out = bytearray()
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(view, read_across_frames=across_frames)
        while len(out) < MAX_OUTPUT:
            chunk = reader.read(FEED)
            if not chunk:
                break
            out += chunk
    except zstandard.ZstdError:
        pass
    return bytes(out)


def offsets(data: bytes, magic: bytes):
    i = data.find(magic)
    while i >= 0:
        yield i
        i = data.find(magic, i + 1)


def decompressed_streams(data: bytes):
    """(description, bytes) for everything in `data` that merely decompresses."""
    view = memoryview(data)
    for label, wbits in (("whole file zlib", 15), ("whole file gzip", 31),
                         ("whole file raw deflate", -15)):
        yield label, drain_zlib(view, wbits)
    yield "whole file zstd", drain_zstd(view, across_frames=True)
    for off in offsets(data, ZSTD_MAGIC):
        yield f"zstd frame at {off}", drain_zstd(view[off:])
    for off in offsets(data, GZIP_MAGIC):
        yield f"gzip member at {off}", drain_zlib(view[off:], 31)
    for header in ZLIB_HEADERS:
        for off in offsets(data, header):
            yield f"zlib stream at {off}", drain_zlib(view[off:], 15)


def scan(data: bytes, table: dict[bytes, str], where: str, depth: int = 0) -> list[str]:
    problems = [f"{where}: {label}" for label in find_needles(data, table)]
    if depth >= 2:
        return problems
    for label, out in decompressed_streams(data):
        if len(out) >= 32:
            problems += scan(out, table, f"{where} -> {label}", depth + 1)
    return problems


def big_canary_message(canary: str, size: int) -> bytes:
    line = f"{canary} is the secret, line {{:08d}} of the large message\r\n"
    body = "".join(line.format(i) for i in range(size // len(line) + 1)).encode()
    return make_message(f"big{secrets.token_hex(4)}", f"large {canary}", body,
                        to=VAULT, extra_headers=[f"X-Canary: {canary}"])


def test_canary_is_nowhere_in_the_data_dir_or_log_yet_export_returns_it(make_server):
    srv = make_server(users=[VAULT])
    canary = make_canary()
    small = make_message(
        f"small{secrets.token_hex(4)}", f"Quarterly figures {canary}",
        f"Dear vault,\r\nthe code word is {canary}.\r\nUnicode too: {canary} \u2603\r\n",
        to=VAULT, extra_headers=[f"X-Secret-Note: {canary}",
                                 "Content-Type: text/plain; charset=utf-8"])
    big = big_canary_message(canary, 5 * 1024 * 1024)
    srv.send([VAULT], small)
    srv.send([VAULT], big, tls=True)
    srv.stop()

    table = needles(canary)
    files = sorted(p for p in srv.data.rglob("*") if p.is_file())
    assert files, "the data directory is empty?"
    problems = []
    for path in files + [srv.log_path]:
        problems += scan(path.read_bytes(), table, str(path.relative_to(srv.root)))
    scanned = ", ".join(str(p.relative_to(srv.data)) for p in files)
    assert not problems, (
        f"canary {canary} found in clear (or trivially encoded) form:\n  "
        + "\n  ".join(problems[:50]) + f"\nfiles scanned: {scanned}")

    # Nothing was found because it is encrypted, not because it was lost.
    msgs = srv.export(VAULT)
    assert len(msgs) == 2, f"expected 2 messages in the export, got {len(msgs)}"
    for sent in (small, big):
        found = [m for m in msgs if m.endswith(sent)]
        assert len(found) == 1, "a canary message did not come back intact from export"
        split_received(found[0], sent)
    assert len(with_token(msgs, canary)) == 2


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def test_scanner_finds_canary_in_compressed_and_encoded_forms():
    """Guards the scanner itself: each hiding place it claims to check is really checked."""
    canary = make_canary()
    table = needles(canary)
    payload = (f"header\r\nSubject: {canary}\r\n\r\n" + "filler " * 200).encode()
    noise = secrets.token_bytes
    hidden = {
        "raw": b"xx" + payload,
        "lowercase": payload.lower(),
        "utf-16": b"xx" + payload.decode().encode("utf-16-le"),
        "base64": b"x" + base64.b64encode(b"ab" + payload),
        "base64 wrapped": b"x" + base64.encodebytes(b"a" + payload),
        "zstd in the middle": noise(1000) + zstandard.ZstdCompressor().compress(payload)
        + noise(1000),
        "zlib in the middle": noise(777) + zlib.compress(payload) + noise(50),
        "gzip in the middle": noise(99) + gzip.compress(payload) + b"zz",
        "whole-file raw deflate": raw_deflate(payload),
        "zstd inside gzip": gzip.compress(zstandard.ZstdCompressor().compress(payload)),
    }
    for label, data in hidden.items():
        assert scan(data, table, label), f"scanner missed the canary hidden as: {label}"
    assert scan(noise(200_000), table, "random") == [], "scanner false positive"
